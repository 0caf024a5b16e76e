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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from clip_t2i.errors import UserError
from clip_t2i.utils.config import dataclass_from_dict

_CONFIGS: dict[str, dict[str, Any]] = {}
_EXTRA_PATHS: list[Path] = []


@dataclass(frozen=True)
class PreprocessConfig:
    """``preprocess_cfg``: the input transform that travels with the weights."""

    size: int | tuple[int, int]  # open_clip models may give (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    resize_mode: str = "shortest"
    fill_color: int = 0


@dataclass(frozen=True)
class TokenizerConfig:
    """``tokenizer``: the built-in word tokenizer (``words``) or open_clip's (``open_clip``)."""

    type: str
    vocab: str | None = None
    name: str | None = None
    context_length: int | None = None


@dataclass(frozen=True)
class ProjectModelConfig:
    """One project config file; ``model_cfg`` goes unchanged to ``open_clip.CLIP`` (checked for its three keys)."""

    model_cfg: dict
    preprocess_cfg: PreprocessConfig
    tokenizer: TokenizerConfig
    description: str = ""
    name: str = ""
    train_data: str | None = None  # checkpoints: the world the weights were trained on (shapes, digits, custom)
    robust: dict | None = None  # checkpoints of robust fine-tunes: objective, attack, eps, ...
    # "batch" (open_clip's own layers) or "group": every BatchNorm2d of the image tower becomes a GroupNorm, so
    # train and eval modes compute the same function (no running statistics; see loading.swap_batchnorm);
    # "group-fixed-stem": the same but the stem's first norm is a fixed affine, so the tower is not invariant to
    # the input's contrast (whose gradient has zero mass from a flat start)
    vision_norm: str = "batch"


def validate_config(cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """Check a project config with the project's one typed parser; raise naming the missing or bad key."""
    parsed = dataclass_from_dict(ProjectModelConfig, cfg, f"model config {where}")
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in parsed.model_cfg:
            raise UserError(f"model config {where}: model_cfg lacks {key!r}")
    if parsed.tokenizer.type not in ("words", "open_clip"):
        raise UserError(f"model config {where}: tokenizer.type must be 'words' or 'open_clip'")
    if parsed.vision_norm not in ("batch", "group", "group-fixed-stem"):
        raise UserError(
            f"model config {where}: vision_norm must be 'batch', 'group' or 'group-fixed-stem', "
            f"not {parsed.vision_norm!r}"
        )
    size = parsed.preprocess_cfg.size
    if min(size if isinstance(size, tuple) else (size,)) < 1:
        raise UserError(f"model config {where}: preprocess_cfg.size must be >= 1")
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
