"""Test-session settings: generation caches go to a temporary folder, never the user's ~/.cache."""

from __future__ import annotations

import os
import tempfile

_CACHE = tempfile.mkdtemp(prefix="clip-t2i-test-cache-")
os.environ.setdefault("CLIP_T2I_CACHE", _CACHE)
