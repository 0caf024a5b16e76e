"""Contrastive losses for CLIP training."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def positive_mask(keys: list | torch.Tensor) -> torch.Tensor:
    """P[i, j] = 1 if sample i and j share a key (caption string or label), else 0; diagonal always 1."""
    if isinstance(keys, torch.Tensor):
        return (keys[:, None] == keys[None, :]).float()
    ids: dict = {}
    idx = torch.tensor([ids.setdefault(k, len(ids)) for k in keys])
    return (idx[:, None] == idx[None, :]).float()


def multi_positive_info_nce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every pair sharing a caption counts as a positive.

    With logits L = s · Î Tᵀ (s = exp(logit_scale)) and positive mask P (P_ii = 1), targets are P
    normalised per row (image→text) and per column (text→image):

        L = ½ [ −Σ_i Σ_j (P_ij / Σ_k P_ik) log softmax_j(L_i·)
               −Σ_j Σ_i (P_ij / Σ_k P_kj) log softmax_i(L_·j) ] / B

    With unique captions (P = I) this is exactly CLIP's loss; duplicates are not pushed apart as negatives.
    """
    row_t = positives / positives.sum(1, keepdim=True)
    col_t = positives / positives.sum(0, keepdim=True)
    loss_i = -(row_t * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(col_t * F.log_softmax(logits, dim=0)).sum(0).mean()
    return 0.5 * (loss_i + loss_t)
