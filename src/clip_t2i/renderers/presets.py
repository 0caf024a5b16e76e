"""Generation presets: JSON files in ``renderers/configs/``, loaded once into a registry.

A preset file is ``{"description": str, "renderer": NAME, "renderer_options": {...}, "guidance": {...}}``;
``renderer_options`` is validated against the renderer's ``Options`` dataclass and ``guidance`` against
:class:`~clip_t2i.guidance.config.GuidanceConfig` (unknown keys and wrong types are errors; no torch import). API:
:func:`list_presets`, :func:`get_preset` (a fresh copy), :func:`add_preset` (a file of your own).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from clip_t2i.errors import UserError
from clip_t2i.guidance.config import GuidanceConfig
from clip_t2i.renderers.base import dataclass_from_dict, dataclass_to_dict, renderer_options_class

_KEYS = ("description", "renderer", "renderer_options", "guidance")


@dataclass(frozen=True)
class Preset:
    """A named, validated generation setting."""

    name: str
    renderer: str
    guidance: GuidanceConfig
    renderer_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def with_overrides(
        self,
        *,
        guidance: dict[str, Any] | None = None,
        renderer: str | None = None,
        renderer_options: dict[str, Any] | None = None,
    ) -> Preset:
        """A validated copy with some guidance fields, the renderer or renderer options replaced."""
        g = {**dataclass_to_dict(self.guidance), **(guidance or {})}
        base = dict(self.renderer_options)
        if renderer and renderer != self.renderer:  # keep the options of a related renderer (pixels <-> pyramid)
            old_cls, new_cls = renderer_options_class(self.renderer), renderer_options_class(renderer)
            related = issubclass(old_cls, new_cls) or issubclass(new_cls, old_cls)
            known = {f.name for f in dataclasses.fields(new_cls)} if related else set()
            base = {k: v for k, v in base.items() if k in known}
        return preset_from_dict(
            self.name,
            {
                "description": self.description,
                "renderer": renderer or self.renderer,
                "renderer_options": {**base, **(renderer_options or {})},
                "guidance": g,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "renderer": self.renderer,
            "renderer_options": copy.deepcopy(self.renderer_options),
            "guidance": dataclass_to_dict(self.guidance),
        }


def preset_from_dict(name: str, data: dict[str, Any]) -> Preset:
    """Validate a preset dict (see the module docstring)."""
    where = f"preset {name!r}"
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a JSON object")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(_KEYS)}")
    renderer = data.get("renderer", "pixels")
    if not isinstance(renderer, str):
        raise UserError(f"{where}.renderer must be a renderer name")
    opts = dataclass_from_dict(
        renderer_options_class(renderer), data.get("renderer_options", {}), f"{where}.renderer_options"
    )
    guidance = dataclass_from_dict(GuidanceConfig, data.get("guidance", {}), f"{where}.guidance")
    try:
        guidance.validate()
    except ValueError as e:
        raise UserError(f"{where}.guidance: {e}") from None
    return Preset(
        name=name,
        renderer=renderer,
        guidance=guidance,
        renderer_options={k: v for k, v in dataclass_to_dict(opts).items() if k in data.get("renderer_options", {})},
        description=str(data.get("description", "")),
    )


def _read(path: Path) -> Preset:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read preset {path}: {e}") from None
    return preset_from_dict(path.stem, data)


@lru_cache(maxsize=1)
def _registry() -> dict[str, Preset]:
    root = Path(str(resources.files("clip_t2i.renderers") / "configs"))
    return {p.stem: _read(p) for p in sorted(root.glob("*.json"))}


_EXTRA: dict[str, Preset] = {}
DEFAULT_PRESET = "draw"  # shapes from the gradients alone (grey start); "retrieval" starts from a CLIP-picked pool
RENAMED = {"fast": "retrieval"}  # old name -> new name; the old one still works, with a warning


def list_presets() -> list[str]:
    """Names of the bundled and added presets."""
    return sorted({**_registry(), **_EXTRA})


def get_preset(name: str) -> Preset:
    """A copy of preset ``name``, or of the preset file ``name`` if it is a path to a ``.json``."""
    if name.endswith(".json") and Path(name).is_file():
        return _read(Path(name))
    table = {**_registry(), **_EXTRA}
    if name in RENAMED and name not in table:
        warnings.warn(f"preset {name!r} is now called {RENAMED[name]!r}; the old name will go away", stacklevel=2)
        name = RENAMED[name]
    if name not in table:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(sorted(table))} or a .json file")
    p = table[name]
    return dataclasses.replace(p, renderer_options=copy.deepcopy(p.renderer_options))


def add_preset(path: str | Path) -> str:
    """Register a preset file of your own under its file stem; returns the name."""
    preset = _read(Path(path))
    _EXTRA[preset.name] = preset
    return preset.name
