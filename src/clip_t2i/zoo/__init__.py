"""The zoo: small models trained by this project, shipped as fp16 safetensors inside the package.

Each model is three files: ``<name>.safetensors`` (weights), ``<name>.json`` (entry: ``file``, ``kind``,
``metrics``, ``command``) and ``<name>.md`` (model card: the command that reproduces it, time, metrics).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from clip_t2i.errors import UserError


@lru_cache(maxsize=1)
def _index() -> dict[str, dict]:
    root = Path(str(resources.files("clip_t2i.zoo")))
    return {f.stem: json.loads(f.read_text()) for f in sorted(root.glob("*.json"))}


def list_zoo() -> list[str]:
    """Names of the bundled models."""
    return sorted(_index())


def zoo_path(name: str) -> Path:
    """Path of a bundled model's weights file."""
    entry = _index().get(name)
    if entry is None:
        raise UserError(f"no zoo model {name!r}; available: {', '.join(list_zoo()) or 'none'}")
    path = Path(str(resources.files("clip_t2i.zoo") / entry["file"]))
    if not path.is_file():
        raise UserError(f"zoo model {name} is listed but its file {path.name} is missing from the package")
    return path


def zoo_entry(name: str) -> dict:
    """The entry (file, kind, metrics, command) of a bundled model."""
    zoo_path(name)
    return dict(_index()[name])
