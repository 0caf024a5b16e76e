"""Pixel renderers: raw pixels (``pixels``) and a Laplacian pyramid of pixels (``pyramid``).

Both share the initialisations of :class:`PixelOptions`:

* ``grey``: every pixel ``init_grey`` plus Gaussian noise of std ``init_noise`` (a dark grey, e.g. 0.2,
  starts inside the shapes world's background distribution) plus, with ``init_coarse`` > 0, 8×8 Gaussian noise
  of that std upsampled bilinearly (a random start no sharper than 8×8 and the same for every prompt: a seed's
  only source of variety when the guide's gradient field is deterministic);
* ``gmm``: a pool of ``gmm_pool`` samples from a per-class Gaussian prior fitted on ``gmm_data`` (``auto``:
  the guiding CLIP's training world, ``clip.config["train_data"]``; a model of no known world starts from
  ``grey`` with a warning) at
  ``gmm_resolution`` (see :mod:`clip_t2i.renderers.priors`), drawn from all classes; the member closest to
  the prompt under the guiding CLIP starts the run. ``gmm_hue`` (0..1) widens the pool with colour variants:
  each member's colours are rotated about the grey axis by a random angle of up to ``gmm_hue``·180° (greys
  stay grey), so a prompt whose colour/content combination no class of the prior holds (a held-out
  combination) can still find a start with the right content *and* colour;
* ``image``: ``init_image`` (a file), plus ``init_noise``.

``pyramid`` parameterises an image as ``levels`` Laplacian levels (full, 1/2, 1/4, ... resolution):
``x = L0 + up(L1 + up(L2 + ...))``. Coarse levels are few numbers each covering a block of pixels, so a
per-element optimiser such as Adam moves large uniform regions as fast as single pixels: colour and layout
form in a few steps, detail follows at the finer levels. ``level_lr`` scales each level's learning rate
(finest first).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.renderers.base import InitContext, per_image_generators, register_renderer
from clip_t2i.renderers.options import PixelOptions, PyramidOptions

INITS = ("grey", "gmm", "image")
COARSE_SIDE = 8  # side of the init_coarse noise grid


def _check_options(o: PixelOptions) -> None:
    if o.init not in INITS:
        raise UserError(f"unknown init {o.init!r}; choose one of {', '.join(INITS)}")
    if o.init == "image" and not o.init_image:
        raise UserError("init 'image' needs init_image=PATH")
    if not 0.0 <= o.init_grey <= 1.0 or o.init_noise < 0 or o.init_coarse < 0:
        raise UserError("init_grey must lie in [0, 1], and init_noise and init_coarse must be >= 0")
    if o.gmm_pool < 1 or o.gmm_resolution < 2:
        raise UserError("gmm_pool must be >= 1 and gmm_resolution >= 2")
    if not 0.0 <= o.gmm_hue <= 1.0:
        raise UserError(f"gmm_hue must lie in [0, 1], got {o.gmm_hue}")


def _no_world_message(clip: Any) -> str:
    data = (getattr(clip, "config", None) or {}).get("train_data")
    return (
        f"the guiding CLIP names no known training world (train_data={data!r}), so the gmm init has no prior to "
        "follow: starting from grey (set gmm_data=shapes, digits or a folder to choose a prior)"
    )


def initial_images(
    size: int, options: PixelOptions, generators: Sequence[torch.Generator], context: InitContext | None
) -> Tensor:
    """Starting images ``[B, 3, size, size]`` in [0, 1], each drawn from its own generator."""
    o = options
    out = []
    init = o.init
    if init == "image":
        from clip_t2i.renderers.priors import load_init_image

        base = load_init_image(o.init_image, size)  # type: ignore[arg-type]
    elif init == "gmm":
        from clip_t2i.renderers.priors import model_key, pool_start, world_prior

        if context is None or context.clip is None or context.targets is None:
            raise UserError("the gmm init needs the guiding CLIP and the prompts")
        source = world_prior(context.clip) if o.gmm_data == "auto" else o.gmm_data
        if source is None:
            init = "grey"
            warnings.warn(_no_world_message(context.clip), UserWarning, stacklevel=2)
        else:
            directions = context.targets.positive_direction()
            mkey = model_key(context.clip)
    for b, g in enumerate(generators):
        if init == "gmm":
            start = pool_start(
                source,  # type: ignore[arg-type]
                resolution=o.gmm_resolution,
                eps=o.gmm_eps,
                pool=o.gmm_pool,
                hue=o.gmm_hue,
                clip=context.clip,  # type: ignore[union-attr]
                direction=directions[b],
                size=size,
                generator=g,
                model=mkey,
            )
            out.append(start)
            continue
        start = base if init == "image" else torch.full((3, size, size), o.init_grey)
        noise = torch.randn(3, size, size, generator=g) * o.init_noise if o.init_noise > 0 else 0.0
        if o.init_coarse > 0:
            coarse = torch.randn(1, 3, COARSE_SIDE, COARSE_SIDE, generator=g) * o.init_coarse
            noise = noise + F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)[0]
        out.append((start + noise).clamp(0.0, 1.0))
    return torch.stack(out)


@register_renderer
class PixelRenderer:
    """Raw pixels ``[B, 3, H, W]``; ``render`` is the identity, ``project`` overwrites them."""

    name: ClassVar[str] = "pixels"
    Options = PixelOptions

    def __init__(self, *, size: int, options: PixelOptions | None = None) -> None:
        if size < 8:
            raise UserError(f"image size must be >= 8, got {size}")
        self.size = int(size)
        self.options = options or PixelOptions()
        _check_options(self.options)

    def init(
        self, batch: int, generator: torch.Generator | Sequence[torch.Generator], context: InitContext | None = None
    ) -> list[Tensor]:
        x = initial_images(self.size, self.options, per_image_generators(batch, generator), context)
        return [x.requires_grad_(True)]

    def render(self, params: list[Tensor]) -> Tensor:
        return params[0]

    @torch.no_grad()
    def project(self, params: list[Tensor], projection: Callable[[Tensor], Tensor]) -> None:
        params[0].copy_(projection(params[0]))

    def param_groups(self, params: list[Tensor]) -> list[dict[str, Any]]:
        return [{"params": [params[0]]}]


@register_renderer
class PyramidRenderer:
    """A Laplacian pyramid of pixels: ``x = L0 + up(L1 + up(L2 + ...))`` (bilinear ``up`` by 2)."""

    name: ClassVar[str] = "pyramid"
    Options = PyramidOptions

    def __init__(self, *, size: int, options: PyramidOptions | None = None) -> None:
        o = options or PyramidOptions()
        _check_options(o)
        if o.levels < 1:
            raise UserError(f"pyramid levels must be >= 1, got {o.levels}")
        if size % (2 ** (o.levels - 1)) != 0 or size // 2 ** (o.levels - 1) < 2:
            raise UserError(
                f"image size {size} cannot hold {o.levels} pyramid levels (needs size / 2^(levels-1) "
                "to be an integer >= 2)"
            )
        if o.level_lr is not None and len(o.level_lr) != o.levels:
            raise UserError(f"level_lr needs {o.levels} entries (finest first), got {len(o.level_lr)}")
        self.size, self.options = int(size), o
        self.sizes = [size // 2**k for k in range(o.levels)]

    @staticmethod
    def _up(x: Tensor, size: int) -> Tensor:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def decompose(self, x: Tensor) -> list[Tensor]:
        """Laplacian levels of images ``x`` (finest first) such that :meth:`render` returns ``x``."""
        gauss = [x]
        for s in self.sizes[1:]:
            gauss.append(F.interpolate(gauss[-1], size=(s, s), mode="area"))
        levels = [gauss[k] - self._up(gauss[k + 1], self.sizes[k]) for k in range(len(gauss) - 1)]
        return [*levels, gauss[-1]]

    def init(
        self, batch: int, generator: torch.Generator | Sequence[torch.Generator], context: InitContext | None = None
    ) -> list[Tensor]:
        x = initial_images(self.size, self.options, per_image_generators(batch, generator), context)
        return [level.contiguous().requires_grad_(True) for level in self.decompose(x)]

    def render(self, params: list[Tensor]) -> Tensor:
        acc = params[-1]
        for k in range(len(params) - 2, -1, -1):
            acc = self._up(acc, self.sizes[k]) + params[k]
        return acc

    @torch.no_grad()
    def project(self, params: list[Tensor], projection: Callable[[Tensor], Tensor]) -> None:
        x = self.render(params)
        params[0].add_(projection(x) - x)

    def param_groups(self, params: list[Tensor]) -> list[dict[str, Any]]:
        scales = self.options.level_lr or (1.0,) * len(params)
        return [{"params": [p], "lr_scale": float(s)} for p, s in zip(params, scales, strict=True)]
