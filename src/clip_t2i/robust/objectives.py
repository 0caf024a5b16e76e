"""Robust fine-tuning objectives for the image tower of a CLIP whose text tower is frozen.

Every objective sees *unnormalised* image embeddings ``F = f_θ(x) [B, D]`` of the (adversarial or clean)
images and a :class:`BatchTargets` built once per micro-batch without gradients (frozen text embeddings,
labels, the frozen reference model's embeddings). It offers

* ``per_sample(F, t) -> [B]``: the loss the inner maximisation (PGD / FGSM / free AT) ascends, one value per
  image so that the attack of image ``i`` depends on image ``i`` only;
* ``__call__(F, t) -> scalar``: the outer loss minimised over θ.

Notation: ``f̂ = f / ||f||₂``, ``s = exp(logit_scale)`` (frozen), text embeddings ``T`` are L2-normalised.

``clipag``  contrastive image-caption loss against the batch's frozen caption embeddings. With
            ``L = s · F̂ Tᵀ`` and positive mask ``P`` (same label, or same caption when unlabelled), the outer
            loss is the symmetric multi-positive InfoNCE of :func:`~clip_t2i.training.losses.multi_positive_info_nce`;
            the inner loss is its image→text half per image,
            ``l_i = −Σ_j (P_ij / Σ_k P_ik) log softmax_j(L_i·)``.
``tecoa``   cross-entropy over fixed class prompts ``C [K, D]`` (e.g. the canonical captions of all
            combinations): ``l_i = −log softmax_y_i(s · f̂_i Cᵀ)``; outer = mean.
``fare``    ``l_i = ||f_θ(x_i) − f_0(x_i^clean)||₂²`` (unnormalised, summed over dimensions) to the frozen
            initial model ``f_0`` on the clean image; outer = mean over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.robust.config import OBJECTIVE_NAMES
from clip_t2i.training.losses import multi_positive_info_nce


@dataclass
class BatchTargets:
    """Frozen, per-micro-batch quantities an objective compares image embeddings with (all detached)."""

    scale: float  # s = exp(logit_scale)
    text: Tensor | None = None  # clipag: [B, D] normalised caption embeddings
    positives: Tensor | None = None  # clipag: [B, B] positive mask
    classes: Tensor | None = None  # tecoa: [K, D] normalised class-prompt embeddings
    labels: Tensor | None = None  # tecoa: [B] class index per image
    reference: Tensor | None = None  # fare: [B, D] f_0(x_clean), unnormalised


class Objective:
    """Base class: ``per_sample`` for the attack, ``__call__`` for the outer step (see module docstring)."""

    name: str = ""
    needs: tuple[str, ...] = ()  # fields of BatchTargets that must be set

    def check(self, t: BatchTargets) -> None:
        missing = [k for k in self.needs if getattr(t, k) is None]
        if missing:
            raise UserError(f"objective {self.name!r} needs {', '.join(missing)} for every batch")

    def per_sample(self, feats: Tensor, t: BatchTargets) -> Tensor:
        raise NotImplementedError

    def __call__(self, feats: Tensor, t: BatchTargets) -> Tensor:
        return self.per_sample(feats, t).mean()


class ClipagObjective(Objective):
    """Contrastive image-caption loss (CLIP's InfoNCE with frozen text embeddings).

    Outer: ``½[−Σ_ij (P_ij/Σ_k P_ik) log softmax_j(L_i·) − Σ_ij (P_ij/Σ_k P_kj) log softmax_i(L_·j)] / B``
    with ``L = s · F̂ Tᵀ``. Inner (per image): ``l_i = −Σ_j (P_ij/Σ_k P_ik) log softmax_j(L_i·)``.
    """

    name = "clipag"
    needs = ("text", "positives")

    def _logits(self, feats: Tensor, t: BatchTargets) -> Tensor:
        return t.scale * F.normalize(feats.float(), dim=-1) @ t.text.T

    def per_sample(self, feats: Tensor, t: BatchTargets) -> Tensor:
        row = t.positives / t.positives.sum(1, keepdim=True)
        return -(row * F.log_softmax(self._logits(feats, t), dim=1)).sum(1)

    def __call__(self, feats: Tensor, t: BatchTargets) -> Tensor:
        return multi_positive_info_nce(self._logits(feats, t), t.positives)


class TecoaObjective(Objective):
    """Cross-entropy over class prompts: ``l_i = −log softmax_{y_i}(s · f̂_i Cᵀ)``; outer = mean_i l_i."""

    name = "tecoa"
    needs = ("classes", "labels")

    def per_sample(self, feats: Tensor, t: BatchTargets) -> Tensor:
        logits = t.scale * F.normalize(feats.float(), dim=-1) @ t.classes.T
        return F.cross_entropy(logits, t.labels, reduction="none")


class FareObjective(Objective):
    """Embedding anchoring: ``l_i = ||f_θ(x_i) − f_0(x_i^clean)||₂²`` (unnormalised); outer = mean_i l_i."""

    name = "fare"
    needs = ("reference",)

    def per_sample(self, feats: Tensor, t: BatchTargets) -> Tensor:
        return (feats.float() - t.reference).pow(2).sum(-1)


_OBJECTIVES: dict[str, type[Objective]] = {
    "clipag": ClipagObjective,
    "tecoa": TecoaObjective,
    "fare": FareObjective,
}


def get_objective(name: str) -> Objective:
    """An objective by name (``clipag``, ``tecoa``, ``fare``)."""
    if name not in _OBJECTIVES:
        raise UserError(f"unknown objective {name!r}; use one of {', '.join(OBJECTIVE_NAMES)}")
    return _OBJECTIVES[name]()
