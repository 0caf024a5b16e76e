"""Guidance losses between image-view embeddings and weighted prompt embeddings.

All embeddings are L2-normalised. Notation: ``e`` an image-view embedding, ``t_k`` the embedding of
sub-prompt ``k`` with weight ``w_k`` (negative = negative prompt).
"""

from __future__ import annotations

import torch
from torch import Tensor

from clip_t2i.guidance.prompts import PromptTargets

LOSS_KINDS = ("cosine", "spherical")
REJECTION_MODES = ("worst", "best")


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """``d(a, b) = 1 - <a, b>`` for unit vectors (last dimension), in [0, 2]."""
    return 1.0 - (a * b).sum(-1)


def spherical_distance(a: Tensor, b: Tensor) -> Tensor:
    """``d(a, b) = 2 arcsin(||a - b|| / 2)^2`` for unit vectors: half the squared great-circle angle.

    (pixray / VQGAN+CLIP's ``Prompt`` loss; ``||a - b|| / 2`` is clamped below 1 so the gradient stays finite.)
    """
    half_chord = ((a - b).norm(dim=-1) / 2).clamp(0.0, 1.0 - 1e-6)
    return 2.0 * torch.arcsin(half_chord).pow(2)


_DISTANCES = {"cosine": cosine_distance, "spherical": spherical_distance}


class PromptDistance:
    """Weighted distance of each view to its image's prompts: ``D(e) = sum_k w_k d(e, t_k)``.

    ``__call__(views [B, V, D], targets) -> [B, V]``; padded sub-prompts have ``w_k = 0``.
    """

    def __init__(self, kind: str = "cosine") -> None:
        if kind not in _DISTANCES:
            raise ValueError(f"loss must be one of {LOSS_KINDS}, got {kind!r}")
        self.kind = kind
        self.fn = _DISTANCES[kind]

    def __call__(self, views: Tensor, targets: PromptTargets) -> Tensor:
        t = targets.embeddings.to(views.device)  # [B, K, D]
        w = targets.weights.to(views.device)  # [B, K]
        d = self.fn(views.unsqueeze(2), t.unsqueeze(1))  # [B, V, K]
        return (d * w.unsqueeze(1)).sum(-1)


def reject_views(d: Tensor, quantile: float, mode: str = "worst") -> Tensor:
    """Boolean mask ``[B, V]`` of views kept after rejection by per-image quantile.

    ``mode="worst"`` drops the ``quantile`` fraction of views with the *largest* distance (views that miss
    the object give the noisiest gradients): keep ``d <= Q_b(1 - quantile)``. ``mode="best"`` is the CLIPAG
    notebook's ``rejection``: views whose distance is *below* ``Q_b(quantile)`` are zeroed, keep
    ``d >= Q_b(quantile)``. ``quantile = 0`` keeps everything.
    """
    if quantile <= 0:
        return torch.ones_like(d, dtype=torch.bool)
    if mode == "worst":
        q = torch.quantile(d.detach(), 1.0 - quantile, dim=1, keepdim=True)
        return d.detach() <= q
    if mode == "best":
        q = torch.quantile(d.detach(), quantile, dim=1, keepdim=True)
        return d.detach() >= q
    raise ValueError(f"rejection mode must be one of {REJECTION_MODES}, got {mode!r}")


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic L1 total variation per image, a class-agnostic piecewise-constant prior (Rudin, Osher, Fatemi):
    ``TV(x) = mean_{c,h,w} |x[c,h+1,w] - x[c,h,w]| + mean_{c,h,w} |x[c,h,w+1] - x[c,h,w]|`` over ``[B, C, H, W]``,
    returning ``[B]``; 0 for a constant image, about 2·(edge length)/(H·W)·contrast for a flat object."""
    dh = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


class GuidanceLoss:
    """Per-image loss of global and patch views.

    ``L_b = w_g * mean_v D(g_bv) + w_p * mean_{v in K_b} D(p_bv)``, where ``g_bv`` / ``p_bv`` are the global /
    patch view embeddings of image ``b``, ``D`` is :class:`PromptDistance` (cosine ``1 - <e, t>`` or spherical
    ``2 arcsin(||e - t|| / 2)^2``) and ``K_b`` the patch views kept by :func:`reject_views`.

    ``__call__(global_views [B, Vg, D], patch_views [B, Vp, D] | None, targets)`` returns
    ``{"loss", "global", "patch", "similarity"}``, each ``[B]``; ``similarity`` is the mean cosine of the
    global views to the image's positive prompt direction (for progress display and keep-best reports).
    """

    def __init__(
        self,
        kind: str = "cosine",
        global_weight: float = 1.0,
        patch_weight: float = 5.0,
        patch_rejection: float = 0.0,
        rejection_mode: str = "worst",
    ) -> None:
        if rejection_mode not in REJECTION_MODES:
            raise ValueError(f"rejection mode must be one of {REJECTION_MODES}, got {rejection_mode!r}")
        if not 0.0 <= patch_rejection < 1.0:
            raise ValueError(f"patch_rejection must lie in [0, 1), got {patch_rejection}")
        self.distance = PromptDistance(kind)
        self.global_weight, self.patch_weight = float(global_weight), float(patch_weight)
        self.patch_rejection, self.rejection_mode = float(patch_rejection), rejection_mode

    def __call__(self, global_views: Tensor, patch_views: Tensor | None, targets: PromptTargets) -> dict[str, Tensor]:
        g = self.distance(global_views, targets).mean(1)  # [B]
        loss = self.global_weight * g
        p = torch.zeros_like(g)
        if patch_views is not None and patch_views.shape[1] > 0 and self.patch_weight != 0:
            d = self.distance(patch_views, targets)  # [B, Vp]
            keep = reject_views(d, self.patch_rejection, self.rejection_mode).to(d.dtype)
            p = (d * keep).sum(1) / keep.sum(1).clamp_min(1.0)
            loss = loss + self.patch_weight * p
        with torch.no_grad():
            direction = targets.positive_direction().to(global_views.device)
            sim = (global_views * direction.unsqueeze(1)).sum(-1).mean(1)
        return {"loss": loss, "global": g, "patch": p, "similarity": sim}
