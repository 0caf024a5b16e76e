"""VQGAN+CLIP (``--renderer vqgan``): optimise a VQGAN's latent grid z; each render quantises it to the nearest
codes with a straight-through gradient, ``z_q = z + sg(e_k − z)``, and decodes ``x = D(z_q)``, clamped to [0, 1]
with the identity's gradient (Crowson's ``clamp_with_grad``). After every step z is clamped per dimension to the
codebook's ``[min, max]`` (nerdyrodent's ``z.clamp_(z_min, z_max)``), so it cannot drift where no code lies.

Starts (``init``): ``random_codes`` (a uniform random code per cell, the notebook's default), ``random_image``
(uniform noise pixels, encoded) or ``image`` (``init_image``, encoded); ``init_noise`` adds Gaussian noise to z.
The decoded side must be a multiple of the VQGAN's downsampling factor; ``decode_size`` decodes at another side
than the image's (e.g. the VQGAN's training side) and resizes the decoded image bilinearly to the image size.

``equalize`` preconditions the latent. A decoder is not equally sensitive everywhere: at a flat grey start a small
VQGAN's pixels can respond 20-40x more to some code positions than to others, and with Adam (whose step is about
``lr`` per coordinate whatever the gradient's scale) the object grows where the decoder responds most, not where
the prompt asks. With ``equalize`` the start's sensitivity map ``S_ij = E_v ||∂⟨D(z), v⟩/∂z_ij||²`` (v ~ N(0, I)
pixel cotangents, ``equalize_probes`` of them, each image's from its generator) gives a per-position factor
``P_ij ∝ S_ij^(-1/2)`` (mean 1, kept within ``[1/equalize_max, equalize_max]``), and the optimised parameter is u in
``z = z_0 + P ⊙ u`` (u starts at 0). A step of u then moves the decoded pixels by about the same amount at every
position. ``params`` is ``[u, z_0, P]``; only u is optimised.
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
    if o.equalize and (o.equalize_probes < 1 or not o.equalize_max >= 1):
        raise UserError("equalize needs equalize_probes >= 1 and equalize_max >= 1")


@register_renderer
class VQGANRenderer:
    """``params = [z]``, ``z [B, embed_dim, size/f, size/f]`` (``[u, z_0, P]`` with ``equalize``); see the module
    docstring."""

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
        z0 = torch.cat(zs).clone()
        if not o.equalize:
            return [z0.requires_grad_(True)]
        factor = torch.cat([self.step_factor(z0[i : i + 1], g) for i, g in enumerate(gens)])
        return [torch.zeros_like(z0).requires_grad_(True), z0, factor]

    def sensitivity(self, z: Tensor, generator: torch.Generator) -> Tensor:
        """``S_ij = mean_v ||∂⟨D(q(z)), v⟩/∂z_ij||²``, ``equalize_probes`` cotangents v ~ N(0, I): ``[1, 1, h, w]``."""
        z = z.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            x = self._decode(z)
            total = torch.zeros(z.shape[0], 1, *z.shape[2:])
            for _ in range(self.options.equalize_probes):
                v = torch.randn(x.shape, generator=generator)
                (g,) = torch.autograd.grad(x, z, v, retain_graph=True)
                total += g.pow(2).sum(1, keepdim=True)
        return total / self.options.equalize_probes

    def step_factor(self, z: Tensor, generator: torch.Generator) -> Tensor:
        """``P ∝ S^(-1/2)`` with mean 1, clamped to ``[1/equalize_max, equalize_max]``: ``[1, 1, h, w]``."""
        s = self.sensitivity(z, generator)
        p = (s + 1e-12 * s.mean()).rsqrt()
        p = p / p.mean()
        cap = float(self.options.equalize_max)
        return p.clamp(1.0 / cap, cap)

    def latent(self, params: list[Tensor]) -> Tensor:
        """The latent z the parameters stand for (``z_0 + P ⊙ u`` with ``equalize``)."""
        return params[1] + params[2] * params[0] if self.options.equalize else params[0]

    def _decode(self, z: Tensor) -> Tensor:
        zq = straight_through(z, self.model.codebook)[0] if self.options.quantize else z
        return self.model.decode_latent(zq)

    def render(self, params: list[Tensor]) -> Tensor:
        x = self._decode(self.latent(params))
        if self.decode_size != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return clamp_with_grad(x)

    @torch.no_grad()
    def project(self, params: list[Tensor], projection: Callable[[Tensor], Tensor]) -> None:
        """z clamped per dimension to the codebook's range (the decoded image is clamped in :meth:`render`)."""
        if not self.options.clamp:
            return
        z = self.latent(params)
        clamped = torch.maximum(torch.minimum(z, self.z_max), self.z_min)
        if self.options.equalize:  # u such that z_0 + P ⊙ u is the clamped latent
            params[0].copy_((clamped - params[1]) / params[2])
        else:
            params[0].copy_(clamped)

    def param_groups(self, params: list[Tensor]) -> list[dict[str, Any]]:
        return [{"params": [params[0]]}]

    def codes(self, params: list[Tensor]) -> Tensor:
        """The code indices ``[B, h, w]`` z currently quantises to."""
        return straight_through(self.latent(params).detach(), self.model.codebook)[1]
