"""Perceptually aligned gradients (PAG), measured against ground truth from the shapes world.

For a rendered scene ``x`` and a caption ``c*`` that differs in ONE attribute (colour, shape or position),
the renderer gives the ground-truth edit ``x*`` = the same scene (background, jitter, size) with that
attribute changed (:meth:`~clip_t2i.data.shapes.Scenes.replace`). The model's gradient toward the target
caption is compared with the edit::

    a(x, c*) = cos( vec ∇ₓ sim(x, c*),  vec (x* − x) ),    sim(x, c) = cos(f(x), g(c))

flattened over channels and pixels, averaged over ``n`` seeded pairs (attributes balanced). ``smoothed``
repeats the measure after a per-channel Gaussian blur of the gradient (σ in pixels at the model's
resolution), which discounts high-frequency gradient noise: a vanilla model's gradient is mostly such noise;
a perceptually aligned one already points at the region and colour that must change.

``a = 1``: the gradient *is* the edit (up to scale); ``a ≈ 0``: unrelated (a random direction in
``3·H·W`` dimensions has ``|a| ≈ 1/√(3HW)``, 0.009 at 64 px).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError

PAG_ATTRIBUTES: tuple[str, ...] = ("colour", "shape", "position")


@dataclass
class PagPairs:
    """``n`` (image, edited image) pairs: ``x``, ``x_star`` ``[n, 3, S, S]``; captions of both; which attribute."""

    x: Tensor
    x_star: Tensor
    caption: list[str]
    target_caption: list[str]
    attribute: list[str]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, s: slice) -> PagPairs:
        return PagPairs(self.x[s], self.x_star[s], self.caption[s], self.target_caption[s], self.attribute[s])


def make_pag_pairs(size: int = 64, n: int = 300, seed: int = 0) -> PagPairs:
    """``n`` seeded one-object scenes (all 240 combinations possible), each with one attribute changed.

    Attributes cycle colour, shape, position (balanced, order shuffled); the new value is uniform over the
    attribute's other values.
    """
    from clip_t2i.data.shapes import COLOURS, POSITIONS, SHAPES, ShapesWorld

    if not isinstance(n, int) or n < 1:
        raise UserError(f"number of PAG pairs must be a positive integer, got {n!r}")
    world = ShapesWorld(size=size, level="one", split="all")
    g = torch.Generator().manual_seed(int(seed))
    scenes = world.sample_scenes(n, g)
    which = torch.arange(n) % len(PAG_ATTRIBUTES)
    which = which[torch.randperm(n, generator=g)]
    changed = {}
    for a, (name, values) in enumerate(zip(PAG_ATTRIBUTES, (COLOURS, SHAPES, POSITIONS), strict=True)):
        old = getattr(scenes, name)[:, 0]
        shift = torch.randint(1, len(values), (n,), generator=g)
        changed[name] = torch.where(which == a, (old + shift) % len(values), old)
    edited = scenes.replace(**changed)
    return PagPairs(
        x=world.render(scenes),
        x_star=world.render(edited),
        caption=world.canonical_captions(scenes),
        target_caption=world.canonical_captions(edited),
        attribute=[PAG_ATTRIBUTES[int(i)] for i in which],
    )


def text_gradient_fn(clip) -> Callable[[PagPairs], Tensor]:
    """``pairs -> ∇ₓ cos(f(x), g(target caption))`` per pair, for any ``ClipModel`` (in eval mode)."""

    def fn(pairs: PagPairs) -> Tensor:
        with torch.no_grad():
            text = clip.encode_text(pairs.target_caption)
        with torch.enable_grad():
            x = pairs.x.detach().clone().requires_grad_(True)
            sim = (clip.encode_image(x) * text).sum(-1)
            (grad,) = torch.autograd.grad(sim.sum(), x)
        return grad

    return fn


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Per-channel Gaussian blur of ``[B, C, H, W]`` (kernel radius ``⌈3σ⌉``, reflect padding)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, min(x.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def flat_cosine(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample cosine of flattened tensors, ``[B]`` (0 where either is zero)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den)).float()


def _summarise(values: Tensor, attributes: list[str]) -> dict[str, float]:
    out = {}
    for a in PAG_ATTRIBUTES:
        mask = torch.tensor([x == a for x in attributes])
        out[a] = float(values[mask].mean()) if mask.any() else float("nan")
    out["mean"] = float(values.mean())
    return out


def pag_alignment(
    clip=None,
    *,
    n: int = 300,
    seed: int = 0,
    sigmas: Sequence[float] = (1.0, 2.0, 4.0),
    batch_size: int = 100,
    size: int | None = None,
    gradient_fn: Callable[[PagPairs], Tensor] | None = None,
    progress: bool = False,
) -> dict:
    """PAG alignment of ``clip`` (any ``load_clip`` model), or of any ``gradient_fn(pairs) -> [B, 3, S, S]``.
    ``progress`` shows a bar over the image pairs.

    Returns ``{"alignment": {colour, shape, position, mean}, "smoothed": {"σ": {...}}, "n", "seed", "size"}``.
    """
    if clip is None and gradient_fn is None:
        raise UserError("pag_alignment needs a model or a gradient_fn")
    if any(s < 0 for s in sigmas):
        raise UserError("smoothing σ must be ≥ 0")
    size = int(size or (clip.image_size if clip is not None else 64))
    if gradient_fn is None:
        clip.eval()
        gradient_fn = text_gradient_fn(clip)
    pairs = make_pag_pairs(size=size, n=n, seed=seed)
    raw, smooth = [], {s: [] for s in sigmas}
    from tqdm.auto import tqdm

    bar = tqdm(total=n, desc="pag", unit="pair", disable=not progress, dynamic_ncols=True)
    for start in range(0, n, batch_size):
        p = pairs[start : start + batch_size]
        grad = gradient_fn(p).detach().float()
        edit = p.x_star - p.x
        raw.append(flat_cosine(grad, edit))
        for s in sigmas:
            smooth[s].append(flat_cosine(gaussian_blur(grad, s), edit))
        bar.update(len(edit))
    bar.close()
    return {
        "alignment": _summarise(torch.cat(raw), pairs.attribute),
        "smoothed": {f"{s:g}": _summarise(torch.cat(v), pairs.attribute) for s, v in smooth.items()},
        "n": n,
        "seed": seed,
        "size": size,
    }
