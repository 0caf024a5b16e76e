"""The VQGAN's architecture, :class:`VQGANConfig`, read from taming-transformers' YAML layout (torch-free).

A taming config reads ``model: {target: taming.models.vqgan.VQModel | GumbelVQ, params: {embed_dim, n_embed,
ddconfig: {double_z, z_channels, resolution, in_channels, out_ch, ch, ch_mult, num_res_blocks, attn_resolutions,
dropout}, lossconfig: ...}}``; ``lossconfig`` (LPIPS + discriminator) is never built here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clip_t2i.errors import UserError

GROUPS = 32  # taming's GroupNorm(32, C, eps=1e-6): every channel count must be a multiple of 32
TARGETS = {
    "taming.models.vqgan.VQModel": "vq",
    "taming.models.vqgan.GumbelVQ": "gumbel",
    "taming.models.vqgan.VQNoDiscModel": "vq",
}
_DD_KEYS = (
    "ch",
    "out_ch",
    "ch_mult",
    "num_res_blocks",
    "attn_resolutions",
    "dropout",
    "in_channels",
    "resolution",
    "z_channels",
    "double_z",
)


@dataclass(frozen=True)
class VQGANConfig:
    """Encoder / decoder / codebook shape (taming's ``ddconfig`` plus ``embed_dim``, ``n_embed``)."""

    ch: int = 32  # base channels
    ch_mult: tuple[int, ...] = (1, 2, 2)  # channel multiplier per level; downsampling factor 2^(levels-1)
    num_res_blocks: int = 1  # residual blocks per level (decoder: + 1)
    attn_resolutions: tuple[int, ...] = ()  # feature-map sides that get a self-attention block
    z_channels: int = 64  # encoder output / decoder input channels
    embed_dim: int = 32  # codebook vector size
    n_embed: int = 256  # codebook size
    resolution: int = 64  # training image side (decides where attention sits)
    in_channels: int = 3
    out_ch: int = 3
    double_z: bool = False  # taming's VQModel needs False (quant_conv takes z_channels inputs)
    dropout: float = 0.0
    quantizer: str = "vq"  # vq (VQModel) | gumbel (GumbelVQ)

    @property
    def factor(self) -> int:
        """Downsampling factor of the encoder: ``2^(len(ch_mult) - 1)``."""
        return 2 ** (len(self.ch_mult) - 1)

    def latent_side(self, size: int) -> int:
        """Side of the code grid for images of side ``size``."""
        return size // self.factor

    def validate(self) -> VQGANConfig:
        """Raise :class:`UserError` naming the first impossible field; return self."""
        if not isinstance(self.n_embed, int) or self.n_embed < 1:
            raise UserError(f"VQGAN codebook size n_embed must be >= 1, got {self.n_embed}")
        for name in ("ch", "num_res_blocks", "z_channels", "embed_dim", "resolution", "in_channels", "out_ch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UserError(f"VQGAN {name} must be a positive integer, got {v!r}")
        if not self.ch_mult or any(not isinstance(m, int) or m < 1 for m in self.ch_mult):
            raise UserError(f"VQGAN ch_mult must be a non-empty list of positive integers, got {list(self.ch_mult)}")
        bad = sorted({self.ch * m for m in (1, *self.ch_mult) if (self.ch * m) % GROUPS})
        if bad:
            raise UserError(
                f"VQGAN channel counts must be multiples of {GROUPS} (GroupNorm), got {bad} from ch {self.ch}"
            )
        if self.double_z:
            raise UserError("VQGAN double_z must be false: taming's VQModel quantises z_channels, not 2 x z_channels")
        if self.quantizer not in ("vq", "gumbel"):
            raise UserError(f"VQGAN quantizer must be vq or gumbel, got {self.quantizer!r}")
        if self.quantizer == "gumbel" and self.z_channels != self.embed_dim:
            raise UserError("a GumbelVQ needs z_channels == embed_dim (its projection reads quant_conv's output)")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"VQGAN dropout must lie in [0, 1), got {self.dropout}")
        if self.resolution % self.factor:
            raise UserError(f"VQGAN resolution {self.resolution} is not divisible by the factor {self.factor}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_taming(self) -> dict[str, Any]:
        """This config in taming's YAML layout (``model.target`` / ``model.params``; no loss config)."""
        target = "taming.models.vqgan.GumbelVQ" if self.quantizer == "gumbel" else "taming.models.vqgan.VQModel"
        dd = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.to_dict().items() if k in _DD_KEYS}
        return {
            "model": {
                "target": target,
                "params": {"embed_dim": self.embed_dim, "n_embed": self.n_embed, "ddconfig": dd},
            }
        }


def config_from_dict(data: dict[str, Any], where: str = "VQGAN config") -> VQGANConfig:
    """A validated :class:`VQGANConfig` from a flat dict (its own fields) or taming's nested layout."""
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping")
    if "model" in data or "params" in data or "ddconfig" in data:
        model = data.get("model", data)
        if not isinstance(model, dict):
            raise UserError(f"{where}: model must be a mapping")
        target = model.get("target", "taming.models.vqgan.VQModel")
        if target not in TARGETS:
            raise UserError(f"{where}: unsupported model.target {target!r}; supported: {', '.join(TARGETS)}")
        params = model.get("params", model)
        dd = params.get("ddconfig") if isinstance(params, dict) else None
        if not isinstance(dd, dict):
            raise UserError(f"{where}: missing model.params.ddconfig")
        missing = [k for k in ("n_embed", "embed_dim") if k not in params]
        if missing:
            raise UserError(f"{where}: missing model.params.{', model.params.'.join(missing)}")
        flat = {k: dd[k] for k in _DD_KEYS if k in dd}
        flat.update(n_embed=params["n_embed"], embed_dim=params["embed_dim"], quantizer=TARGETS[target])
        data = flat
    from clip_t2i.utils.config import dataclass_from_dict

    return dataclass_from_dict(VQGANConfig, data, where).validate()


def read_config_file(path: str | Path) -> VQGANConfig:
    """A :class:`VQGANConfig` from a taming ``.yaml`` or a JSON file; one-line errors for unreadable files."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"VQGAN config {p} does not exist")
    try:
        text = p.read_text()
        if p.suffix.lower() == ".json":
            import json

            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - yaml / json / OS errors, all reported the same way
        raise UserError(f"cannot read VQGAN config {p}: {type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
    return config_from_dict(data, f"VQGAN config {p}")
