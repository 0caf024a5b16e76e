"""VQGAN+CLIP (``--renderer vqgan``): optimise a VQGAN's latent grid z; each render quantises it to the nearest
codes with a straight-through gradient, ``z_q = z + sg(e_k − z)``, and decodes ``x = D(z_q)``, clamped to [0, 1]
with the identity's gradient (Crowson's ``clamp_with_grad``). After every step z is clamped per dimension to the
codebook's ``[min, max]`` (nerdyrodent's ``z.clamp_(z_min, z_max)``), so it cannot drift where no code lies.

Starts (``init``): ``random_codes`` (a uniform random code per cell, the notebook's default), ``random_image``
(uniform noise pixels, encoded) or ``image`` (``init_image``, encoded); ``init_noise`` adds Gaussian noise to z.
The decoded side must be a multiple of the VQGAN's downsampling factor; ``decode_size`` decodes at another side
than the image's (e.g. the VQGAN's training side) and resizes the decoded image bilinearly to the image size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.renderers.base import InitContext, per_image_generators, register_renderer
from clip_t2i.renderers.options import VQGANOptions
from clip_t2i.renderers.vqgan.model import VQGAN, straight_through

INITS = ("random_codes", "random_image", "image")


def clamp_with_grad(x: Tensor, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    """Forward ``clamp(x, lo, hi)``, backward the identity: ``x + sg(clamp(x) − x)``."""
    return x + (x.clamp(lo, hi) - x).detach()


@lru_cache(maxsize=4)
def _cached_vqgan(source: str, config: str | None, stamp: float) -> VQGAN:
    from clip_t2i.renderers.vqgan.loading import load_vqgan

    model = load_vqgan(source, config)
    model.requires_grad_(False)
    return model.eval()


def cached_vqgan(source: str, config: str | None = None) -> VQGAN:
    """The VQGAN ``source`` (loaded once per file version), frozen, in eval mode."""
    from pathlib import Path

    p = Path(source).expanduser()
    stamp = p.stat().st_mtime if p.is_file() else 0.0
    return _cached_vqgan(source, config, stamp)


def _check(o: VQGANOptions) -> None:
    if o.init not in INITS:
        raise UserError(f"unknown vqgan init {o.init!r}; choose one of {', '.join(INITS)}")
    if o.init == "image" and not o.init_image:
        raise UserError("vqgan init 'image' needs init_image=PATH")
    if not o.init_noise >= 0:
        raise UserError(f"init_noise must be >= 0, got {o.init_noise}")


@register_renderer
class VQGANRenderer:
    """``params = [z]``, ``z [B, embed_dim, size/f, size/f]``; see the module docstring."""

    name: ClassVar[str] = "vqgan"
    Options = VQGANOptions

    def __init__(self, *, size: int, options: VQGANOptions | None = None) -> None:
        self.options = o = options or VQGANOptions()
        _check(o)
        self.model = cached_vqgan(o.vqgan, o.vqgan_config)
        f = self.model.config.factor
        self.size = int(size)
        self.decode_size = int(o.decode_size or size)
        what = "decode_size" if o.decode_size else "image size"
        if self.decode_size < f or self.decode_size % f:
            raise UserError(
                f"{what} {self.decode_size} must be a positive multiple of the VQGAN's downsampling factor {f}"
            )
        self.side = self.decode_size // f
        cb = self.model.codebook.detach()
        self.z_min = cb.min(0).values.view(1, -1, 1, 1)
        self.z_max = cb.max(0).values.view(1, -1, 1, 1)
        self.z_std = float(cb.std())
        self._init_image: Tensor | None = None
        if o.init == "image":
            from clip_t2i.renderers.priors import load_init_image

            self._init_image = load_init_image(o.init_image, self.decode_size)  # type: ignore[arg-type]

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Quantised latents ``[B, D, h, w]`` of images in [0, 1] (the codes the encoder picks)."""
        zq, _ = self.model.quantise(self.model.encode_latent(images))
        return zq

    def init(
        self, batch: int, generator: torch.Generator | Sequence[torch.Generator], context: InitContext | None = None
    ) -> list[Tensor]:
        o, n = self.options, self.model.config.n_embed
        gens = per_image_generators(batch, generator)
        zs = []
        for g in gens:
            if o.init == "random_codes":
                idx = torch.randint(0, n, (1, self.side, self.side), generator=g)
                z = self.model.codebook.detach()[idx].permute(0, 3, 1, 2)
            else:
                side = self.decode_size
                img = self._init_image if o.init == "image" else torch.rand(3, side, side, generator=g)
                z = self.encode(img.unsqueeze(0))  # type: ignore[union-attr]
            if o.init_noise > 0:
                z = z + torch.randn(z.shape, generator=g) * o.init_noise * self.z_std
            zs.append(z)
        return [torch.cat(zs).clone().requires_grad_(True)]

    def render(self, params: list[Tensor]) -> Tensor:
        z = params[0]
        zq = straight_through(z, self.model.codebook)[0] if self.options.quantize else z
        x = self.model.decode_latent(zq)
        if self.decode_size != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return clamp_with_grad(x)

    @torch.no_grad()
    def project(self, params: list[Tensor], projection: Callable[[Tensor], Tensor]) -> None:
        """z clamped per dimension to the codebook's range (the decoded image is clamped in :meth:`render`)."""
        if self.options.clamp:
            params[0].copy_(torch.maximum(torch.minimum(params[0], self.z_max), self.z_min))

    def param_groups(self, params: list[Tensor]) -> list[dict[str, Any]]:
        return [{"params": [params[0]]}]

    def codes(self, params: list[Tensor]) -> Tensor:
        """The code indices ``[B, h, w]`` z currently quantises to."""
        return straight_through(params[0].detach(), self.model.codebook)[1]
