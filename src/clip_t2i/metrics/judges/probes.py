"""Probe images that show no recognisable object: what a judge must call *unrecognisable*.

Every kind is drawn from a seeded generator, ``[n, 3, size, size]`` in [0, 1]. The shapes probes use the world's
own colours and background greys, so colour alone never gives them away; the digits probes are grey.

* ``grey`` — one flat grey level U[0.05, 0.95] (a small per-channel tint for colour probes);
* ``uniform_noise`` — i.i.d. U[0, 1] pixels;
* ``gaussian_blobs`` — 1-3 Gaussian blobs (sigma 4-10 px at 64 px) of world colours (digits: white) on a dark
  background: fuzzy things with no outline;
* ``stripes`` — square- or sine-wave stripes, random angle, period 4-16 px at 64 px;
* ``checkers`` — a checkerboard, random cell size 2-12 px at 64 px, random rotation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from clip_t2i.errors import UserError

PROBE_KINDS = ("grey", "uniform_noise", "gaussian_blobs", "stripes", "checkers")


def _grid(n: int, size: int) -> tuple[Tensor, Tensor]:
    c = torch.arange(size, dtype=torch.float32) + 0.5
    return c.view(1, 1, size).expand(n, size, size), c.view(1, size, 1).expand(n, size, size)


def _two_colours(n: int, g: torch.Generator, colour: bool) -> tuple[Tensor, Tensor]:
    """Foreground (a world colour, or white-ish) and background (a dark world grey) ``[n, 3]``."""
    from clip_t2i.data.shapes import BG_LEVEL, COLOUR_RGB

    bg = BG_LEVEL[0] + torch.rand(n, 1, generator=g) * (BG_LEVEL[1] - BG_LEVEL[0])
    if colour:
        fg = torch.tensor(COLOUR_RGB)[torch.randint(len(COLOUR_RGB), (n,), generator=g)]
        return fg, bg.expand(n, 3)
    return (0.7 + 0.3 * torch.rand(n, 1, generator=g)).expand(n, 3), (bg * 0.2).expand(n, 3)


def probe_images(kind: str, n: int, *, size: int = 64, seed: int = 0, colour: bool = True) -> Tensor:
    """``n`` probe images of one ``kind`` (see the module docstring); ``colour=False`` for digits probes."""
    if kind not in PROBE_KINDS:
        raise UserError(f"unknown probe kind {kind!r}; choose from {', '.join(PROBE_KINDS)}")
    g = torch.Generator().manual_seed(seed * 7919 + PROBE_KINDS.index(kind))
    scale = size / 64
    if kind == "grey":
        level = 0.05 + 0.9 * torch.rand(n, 1, generator=g)
        tint = (torch.rand(n, 3, generator=g) * 2 - 1) * (0.03 if colour else 0.0)
        return (level + tint).clamp(0, 1).view(n, 3, 1, 1).expand(n, 3, size, size).contiguous()
    if kind == "uniform_noise":
        x = torch.rand(n, 3 if colour else 1, size, size, generator=g)
        return x.expand(n, 3, size, size).contiguous()
    fg, bg = _two_colours(n, g, colour)
    X, Y = _grid(n, size)
    if kind == "gaussian_blobs":
        alpha = torch.zeros(n, size, size)
        k = torch.randint(1, 4, (n,), generator=g)
        for j in range(3):
            cx = (0.2 + 0.6 * torch.rand(n, generator=g)) * size
            cy = (0.2 + 0.6 * torch.rand(n, generator=g)) * size
            sigma = (4 + 6 * torch.rand(n, generator=g)) * scale
            blob = torch.exp(
                -((X - cx.view(-1, 1, 1)) ** 2 + (Y - cy.view(-1, 1, 1)) ** 2) / (2 * sigma.view(-1, 1, 1) ** 2)
            )
            alpha = torch.where((j < k).view(-1, 1, 1), torch.maximum(alpha, blob), alpha)
    else:
        theta = torch.rand(n, generator=g) * math.pi
        c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
        u, v = X * c + Y * s, -X * s + Y * c
        if kind == "stripes":
            period = (4 + 12 * torch.rand(n, generator=g)).view(-1, 1, 1) * scale
            wave = torch.sin(2 * math.pi * u / period)
            square = (torch.rand(n, generator=g) < 0.5).view(-1, 1, 1)
            alpha = torch.where(square, (wave > 0).float(), 0.5 + 0.5 * wave)
        else:
            cell = (2 + 10 * torch.rand(n, generator=g)).view(-1, 1, 1) * scale
            alpha = ((torch.floor(u / cell) + torch.floor(v / cell)) % 2).float()
    img = bg.view(n, 3, 1, 1) + alpha.unsqueeze(1) * (fg - bg).view(n, 3, 1, 1)
    return img.clamp(0, 1).contiguous()


def all_probes(n_per_kind: int, *, size: int = 64, seed: int = 0, colour: bool = True) -> dict[str, Tensor]:
    """``{kind: images}`` for every probe kind."""
    return {k: probe_images(k, n_per_kind, size=size, seed=seed, colour=colour) for k in PROBE_KINDS}


def washed_out_renders(n: int, *, seed: int = 0, mix: tuple[float, float] = (0.4, 0.7)) -> dict[str, Tensor]:
    """World renders whose object colour is mixed with white by U[mix] ("red drawn as pink"): a person would not
    name the world colour, so the colour gate must reject them. ``{"image", "label", "mix"}``."""
    from clip_t2i.data.shapes import ShapesWorld

    world = ShapesWorld(size=64, level="one", split="all")
    g = torch.Generator().manual_seed(seed)
    scenes = world.sample_scenes(n, g)
    _, alpha = world.render(scenes, return_alpha=True)
    c = world._coord  # pixel centres, fraction of the side from the image centre (the world's background ramp)
    gx, gy = scenes.bg_gradient[:, 0].view(n, 1, 1, 1), scenes.bg_gradient[:, 1].view(n, 1, 1, 1)
    base = (scenes.bg_level.view(n, 1) + scenes.bg_tint).view(n, 3, 1, 1)
    bg = (base + gx * c.view(1, 1, 1, -1) + gy * c.view(1, 1, -1, 1)).clamp(0, 1)
    t = mix[0] + (mix[1] - mix[0]) * torch.rand(n, generator=g)
    rgb = world._rgb[scenes.colour[:, 0]]
    washed = rgb + t.view(-1, 1) * (1 - rgb)
    img = bg + alpha[:, :1] * (washed.view(n, 3, 1, 1) - bg)
    return {"image": img.clamp(0, 1), "label": world.labels(scenes), "mix": t}
