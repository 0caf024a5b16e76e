"""clip-t2i: text-to-image with CLIP alone (robust CLIP / CLIPAG) or with a small CLIP-aided GAN (SCAD).

The public functions are imported on first use (PEP 562), so ``import clip_t2i`` stays light while
``help(clip_t2i.generate)`` and ``inspect.signature`` show the real signatures and docstrings:

* :func:`load_clip` — any CLIP (zoo, files, open_clip names, official CLIPAG / FARE / TeCoA checkpoints);
* :func:`generate` — text to images with CLIP guidance (pixels, pyramid, strokes renderers);
* :func:`stylize` — text-driven style transfer (CLIPStyler).
"""

from __future__ import annotations

from clip_t2i.errors import UserError
from clip_t2i.utils.lazy import lazy_getattr

__version__ = "0.1.0"

_WHERE = {"load_clip": "backbones", "generate": "pipeline", "stylize": "renderers.style"}

__getattr__ = lazy_getattr(__name__, _WHERE, globals())

__all__ = ["UserError", "generate", "load_clip", "stylize", "__version__"]
