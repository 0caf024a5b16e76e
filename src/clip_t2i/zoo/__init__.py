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


def zoo_dir() -> Path:
    """The folder holding the bundled models (inside the installed package)."""
    return Path(str(resources.files("clip_t2i.zoo")))


def write_entry(
    name: str,
    *,
    kind: str,
    metrics: dict,
    command: str,
    train_time_s: float,
    description: str,
    notes: str = "",
    file: str | None = None,
) -> Path:
    """Write ``<name>.json`` (entry) and ``<name>.md`` (model card) beside ``<name>.safetensors``."""
    from clip_t2i.utils.io import atomic_write_text

    file = file or f"{name}.safetensors"
    weights = zoo_dir() / file
    if not weights.is_file():
        raise UserError(f"write the weights {weights} before the zoo entry")
    entry = {
        "file": file,
        "kind": kind,
        "description": description,
        "command": command,
        "train_time_s": round(train_time_s, 1),
        "size_bytes": weights.stat().st_size,
        "metrics": metrics,
    }
    rows = "\n".join(f"| {k} | {v} |" for k, v in _flatten(metrics).items())
    card = (
        f"# {name}\n\n{description}\n\n"
        f"* kind: `{kind}`\n* file: `{file}` ({weights.stat().st_size / 1e6:.2f} MB, fp16)\n"
        f"* training time: {train_time_s / 60:.1f} min on the 2-core CPU\n\n"
        f"## Reproduce\n\n```bash\n{command}\n```\n\n## Metrics\n\n| metric | value |\n|---|---|\n{rows}\n"
        + (f"\n## Notes\n\n{notes}\n" if notes else "")
    )
    atomic_write_text(zoo_dir() / f"{name}.json", json.dumps(entry, indent=2) + "\n")
    atomic_write_text(zoo_dir() / f"{name}.md", card)
    _index.cache_clear()
    return zoo_dir() / f"{name}.json"


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = f"{v:.4f}" if isinstance(v, float) else str(v)
    return out
