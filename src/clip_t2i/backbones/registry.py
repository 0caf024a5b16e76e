"""Registry of project model configs: JSON files in ``backbones/model_configs/`` (adding a model is a config).

Each file mirrors open_clip's ``open_clip_config.json`` layout::

    {"model_cfg": {...open_clip CLIP config...},
     "preprocess_cfg": {"size": 64, "mean": [...], "std": [...], "interpolation": "bilinear"},
     "tokenizer": {"type": "words", "vocab": "builtin-words"}   # or {"type": "open_clip"}
     "description": "..."}

``model_cfg`` is passed unchanged to ``open_clip.CLIP``; ``tokenizer`` and ``preprocess_cfg`` travel with
the model (and into every checkpoint we save), so eval transforms follow the weights.
"""

from __future__ import annotations

import copy
import difflib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from clip_t2i.errors import UserError

_CONFIGS: dict[str, dict[str, Any]] = {}
_EXTRA_PATHS: list[Path] = []
REQUIRED_KEYS = ("model_cfg", "preprocess_cfg", "tokenizer")


def validate_config(cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """Check a project config has what loading needs; raise naming the missing key."""
    for key in REQUIRED_KEYS:
        if key not in cfg:
            raise UserError(f"model config {where} lacks the key {key!r} (needs {', '.join(REQUIRED_KEYS)})")
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in cfg["model_cfg"]:
            raise UserError(f"model config {where}: model_cfg lacks {key!r}")
    for key in ("size", "mean", "std"):
        if key not in cfg["preprocess_cfg"]:
            raise UserError(f"model config {where}: preprocess_cfg lacks {key!r}")
    if cfg["tokenizer"].get("type") not in ("words", "open_clip"):
        raise UserError(f"model config {where}: tokenizer.type must be 'words' or 'open_clip'")
    return cfg


def _scan() -> None:
    _CONFIGS.clear()
    files = sorted(Path(str(resources.files("clip_t2i.backbones") / "model_configs")).glob("*.json"))
    for extra in _EXTRA_PATHS:
        files += sorted(extra.glob("*.json")) if extra.is_dir() else [extra]
    for f in files:
        _CONFIGS[f.stem] = validate_config(json.loads(f.read_text()), str(f))


def list_models() -> list[str]:
    """Names of the project's architecture configs."""
    if not _CONFIGS:
        _scan()
    return sorted(_CONFIGS)


def get_model_config(name: str) -> dict[str, Any] | None:
    """A deep copy of config ``name``, or None if unknown."""
    if not _CONFIGS:
        _scan()
    cfg = _CONFIGS.get(name)
    return copy.deepcopy(cfg) if cfg is not None else None


def add_model_config(path: str | Path) -> None:
    """Register one more JSON config file, or every JSON file in a folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model config path {path} does not exist")
    _EXTRA_PATHS.append(path)
    _scan()


def suggest(name: str, choices: list[str]) -> str:
    """' (did you mean X?)' for the closest choices, or ''."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""
