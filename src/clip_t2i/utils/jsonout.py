"""JSON for people and scripts: floats rounded to 6 significant digits, counts as integers, NaN as null.

Every ``--json`` output and report goes through :func:`print_json` / :func:`clean`, so ``0.0729999989271164``
prints as ``0.073`` and ``"n": 1000.0`` as ``1000``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

SIGNIFICANT = 6
_COUNT_KEYS = ("n", "steps", "step", "images", "count", "best_step", "epoch")


def _is_count(key: str | None) -> bool:
    return key is not None and (key in _COUNT_KEYS or key.startswith("n_") or key.endswith("_count"))


def clean(obj: Any, key: str | None = None) -> Any:
    """A JSON-ready copy of ``obj``: rounded floats, integral counts as int, tensors / numpy scalars as numbers."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        if _is_count(key) and obj.is_integer():
            return int(obj)
        return float(f"{obj:.{SIGNIFICANT}g}")
    if isinstance(obj, dict):
        return {str(k): clean(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v, key) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return clean(obj.tolist(), key)
    return str(obj)


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of :func:`clean` (strict JSON: no NaN)."""
    return json.dumps(clean(obj), allow_nan=False, **kw)


def print_json(obj: Any) -> None:
    """One JSON object on one line to stdout."""
    sys.stdout.write(dumps(obj) + "\n")
