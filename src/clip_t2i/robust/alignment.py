"""Gradient alignment (PAG by construction, in the spirit of PAG-ROB, Ganz, Kawar & Elad, ICML 2023).

Robust training makes input gradients *perceptually aligned* as a side effect; this term asks for it directly,
with targets that need no generative model: the training images themselves. For a training image ``x*`` with
caption ``c``, a source ``x_src`` and ``t ~ U(0, 1)^p``::

    x_t = (1 − t) · x_src + t · x*
    a   = cos( vec ∇ₓ cos(f(x_t), g(c)) |_{x_t},  vec (x* − x_t) )
    L_align = mean_i (1 − a_i)

The source is a *neutral start* (a grey level with a faint tint, pixel noise and, for 30 % of the images,
8×8 noise: no shape information; see :func:`neutral_starts`) or, with probability ``edit_prob``, another image of
the batch with a different caption (so the gradient also learns to *edit* one picture into another). The target
direction is the straight line to ``x*`` — the conditional flow of a flow-matching model — so following the
normalised gradient from a neutral start draws the caption. Only the training split is seen: held-out
combinations are never targets.

The term needs a second-order backward (``create_graph=True``); on CPU only the math attention kernel has one, so
the forward runs under ``sdpa_kernel(SDPBackend.MATH)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

NEUTRAL_LEVEL = (0.05, 0.70)  # grey level U[lo, hi] of a neutral start
NEUTRAL_TINT = 0.04  # per-channel offset U[-t, t]
NEUTRAL_NOISE = 0.08  # pixel noise std U[0, s]
NEUTRAL_COARSE = (0.3, 0.12)  # (probability, std) of added 8x8 noise, bilinearly upsampled


def neutral_starts(
    n: int,
    size: int,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    coarse: tuple[float, float] = NEUTRAL_COARSE,
) -> Tensor:
    """``n`` images in [0, 1] with no shape information: grey + tint + pixel noise (+ 8×8 noise for some).

    ``coarse`` = (probability, std) of the added 8×8 noise; the random draws do not depend on it.
    """
    g = generator
    lo, hi = NEUTRAL_LEVEL
    level = lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=g, device=g.device)
    tint = (torch.rand(n, 3, 1, 1, generator=g, device=g.device) * 2 - 1) * NEUTRAL_TINT
    sigma = NEUTRAL_NOISE * torch.rand(n, 1, 1, 1, generator=g, device=g.device)
    x = level + tint + sigma * torch.randn(n, 3, size, size, generator=g, device=g.device)
    p, std = coarse
    use = (torch.rand(n, 1, 1, 1, generator=g, device=g.device) < p).float() * std
    grid = torch.randn(n, 3, 8, 8, generator=g, device=g.device)
    x = x + use * F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
    return x.clamp(0, 1).to(device)


def flat_cos(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample cosine of flattened tensors ``[B]`` (differentiable; 0 where either is zero)."""
    a, b = a.flatten(1), b.flatten(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def alignment_sources(x_star: Tensor, keys: Tensor, edit_prob: float, generator: torch.Generator) -> Tensor:
    """A source per image: a neutral start, or (with ``edit_prob``) a batch image whose key (label) differs."""
    g = generator
    n = x_star.shape[0]
    src = neutral_starts(n, x_star.shape[-1], g, x_star.device).to(x_star.dtype)
    if edit_prob <= 0 or n < 2:
        return src
    perm = torch.randint(1, n, (n,), generator=g, device=g.device).to(x_star.device)
    other = (torch.arange(n, device=x_star.device) + perm) % n  # never the image itself
    differs = keys.to(x_star.device)[other] != keys.to(x_star.device)
    edit = (torch.rand(n, generator=g, device=g.device).to(x_star.device) < edit_prob) & differs
    return torch.where(edit.view(n, 1, 1, 1), x_star[other], src)


def alignment_loss(
    encode: Callable[[Tensor], Tensor],
    x_star: Tensor,
    text: Tensor,
    keys: Tensor,
    generator: torch.Generator,
    *,
    edit_prob: float = 0.3,
    t_power: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """``(L_align, a)``: the module docstring's loss and the per-image alignments ``a`` (detached).

    ``encode(x) -> [B, D]`` image embeddings (normalised or not: the cosine is taken here); ``text [B, D]`` the
    frozen normalised caption embedding of each ``x*``; ``keys [B]`` labels (or caption ids) telling captions apart.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = generator
    src = alignment_sources(x_star, keys, edit_prob, g)
    t = torch.rand(x_star.shape[0], 1, 1, 1, generator=g, device=g.device).to(x_star) ** t_power
    x_t = ((1 - t) * src + t * x_star).detach().requires_grad_(True)
    with sdpa_kernel(SDPBackend.MATH):
        sim = (F.normalize(encode(x_t).float(), dim=-1) * text.float()).sum(-1)
        (grad,) = torch.autograd.grad(sim.sum(), x_t, create_graph=True)
    a = flat_cos(grad.float(), (x_star - x_t).detach().float())
    return (1 - a).mean(), a.detach()
