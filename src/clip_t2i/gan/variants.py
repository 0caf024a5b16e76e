"""GAN variants: one JSON file per preset in ``gan/configs/`` (``galip``, ``scad``, ``scad-mi``, ``scad-dd`` and
ablations), validated into a :class:`GanConfig`; ``--set section.key=value`` overrides single options.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from clip_t2i.errors import UserError
from clip_t2i.gan.losses import LossConfig
from clip_t2i.gan.networks import DiscriminatorConfig, GeneratorConfig

SECTIONS = ("generator", "discriminator", "loss")


@dataclass(frozen=True)
class GanConfig:
    """A complete variant: generator widths, discriminator formulation, loss weights."""

    name: str = "custom"
    description: str = ""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> GanConfig:
        data = copy.deepcopy(data)
        unknown = sorted(set(data) - {"name", "description", *SECTIONS})
        if unknown:
            raise UserError(f"unknown GAN config key(s) {unknown}; valid: name, description, {', '.join(SECTIONS)}")
        for sec in SECTIONS:
            if not isinstance(data.get(sec, {}), dict):
                raise UserError(f"GAN config section {sec!r} must be an object")
        cfg = cls(
            name=name or data.get("name", "custom"),
            description=data.get("description", ""),
            generator=GeneratorConfig.from_dict(data.get("generator", {})),
            discriminator=DiscriminatorConfig.from_dict(data.get("discriminator", {})),
            loss=LossConfig.from_dict(data.get("loss", {})),
        )
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Check every section and the cross-section rules (raises ``UserError``)."""
        self.generator.validate()
        self.discriminator.validate()
        self.loss.validate()
        d, lo = self.discriminator, self.loss
        if lo.formulation == "san" and d.direction == "none":
            raise UserError("loss.formulation 'san' needs discriminator.direction 'text' or 'global', not 'none'")
        if lo.mi_weight > 0 and d.mi_source == "fidelity" and not d.fidelity:
            raise UserError("discriminator.mi_source 'fidelity' needs discriminator.fidelity true")
        if lo.mi_dims > self.generator.z_dim:
            raise UserError(f"loss.mi_dims ({lo.mi_dims}) must be at most generator.z_dim ({self.generator.z_dim})")

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> GanConfig:
        """Apply ``section.key=value`` overrides (value parsed as JSON, else taken as a string)."""
        if not overrides:
            return self
        data = self.to_dict()
        for item in overrides:
            key, sep, raw = item.partition("=")
            sec, dot, opt = key.strip().partition(".")
            if not sep or not dot or sec not in SECTIONS or not opt:
                raise UserError(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION in {list(SECTIONS)}")
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            data[sec][opt] = value
        data["name"] = f"{self.name}+" if not self.name.endswith("+") else self.name
        return GanConfig.from_dict(data)


@lru_cache(maxsize=1)
def _presets() -> dict[str, dict[str, Any]]:
    root = Path(str(resources.files("clip_t2i.gan") / "configs"))
    return {f.stem: json.loads(f.read_text()) for f in sorted(root.glob("*.json"))}


def list_variants() -> list[str]:
    """Names of the preset variants."""
    return sorted(_presets())


def get_variant(name_or_path: str | Path) -> GanConfig:
    """A preset by name (``scad``) or a JSON file of the same form; unknown names list the valid ones."""
    name = str(name_or_path)
    if name in _presets():
        return GanConfig.from_dict(_presets()[name], name=name)
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read GAN config {path}: {e}") from None
        if not isinstance(data, dict):
            raise UserError(f"GAN config {path} must hold a JSON object")
        return GanConfig.from_dict(data, name=data.get("name", path.stem))
    raise UserError(f"unknown GAN variant {name!r}; valid: {', '.join(list_variants())} or a .json file")


def replace_generator(cfg: GanConfig, **kw: Any) -> GanConfig:
    """A copy with generator options changed (e.g. ``resolution``)."""
    new = replace(cfg, generator=replace(cfg.generator, **kw))
    new.validate()
    return new
