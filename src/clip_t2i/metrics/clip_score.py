r"""CLIP score with an explicit evaluating model, and a guard against scoring with the guiding model.

.. math:: \mathrm{CS} = \frac1B\sum_b \max\big(100\cos(E_{img}(x_b), E_{txt}(c_b)),\ 0\big)

(the torchmetrics / Hessel et al. convention; GALIP-style papers quote :math:`\cos` without the 100, e.g.
0.33, so divide by 100 to compare). The evaluating model exposes ``encode_image(pixels in [0, 1], any size)
-> [B, D]`` and ``encode_text(list[str]) -> [B, D]``; it does its own resize / normalisation; embeddings are
L2-normalised here. A generator optimised against a CLIP scores inflated CLIP scores under that same
CLIP, so ``guide_model_id`` (the CLIP used during generation/training, or None) and ``eval_model_id``
are required; when they name the same model a warning is emitted and ``same_model`` is set in the result.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from clip_t2i.errors import UserError
from clip_t2i.metrics.features import as_feature_matrix, check_images

__all__ = [
    "CLIPScore",
    "CLIPScoreResult",
    "ClipLike",
    "SameModelWarning",
    "compute_clip_score",
    "same_model_id",
]


class ClipLike(Protocol):
    """What the CLIP score needs from an evaluating model (our ``ClipModel`` satisfies it)."""

    def encode_image(self, pixels: Tensor) -> Tensor: ...

    def encode_text(self, texts: list[str]) -> Tensor: ...


class SameModelWarning(UserWarning):
    """The CLIP score is computed with the model that guided generation (the score is inflated)."""


@dataclass(frozen=True)
class CLIPScoreResult:
    """CLIP score (0-100 scale), per-image scores and the guide/eval provenance."""

    score: float
    per_image: Tensor
    num_images: int
    eval_model_id: str
    guide_model_id: str | None
    same_model: bool


def _norm_id(model_id: str) -> str:
    s = model_id.strip().lower()
    s = re.sub(r"^(hf-hub:|hf_hub:|open_clip:|openclip:|timm/)", "", s)
    return re.sub(r"[^a-z0-9]+", "", s)


def same_model_id(guide_model_id: str | None, eval_model_id: str) -> bool:
    """True if both ids name the same model (case, separators and ``hf-hub:`` prefixes are ignored)."""
    if guide_model_id is None:
        return False
    return _norm_id(guide_model_id) == _norm_id(eval_model_id)


def _check_ids(guide_model_id: str | None, eval_model_id: str) -> bool:
    if not isinstance(eval_model_id, str) or not eval_model_id.strip():
        raise UserError("eval_model_id must name the CLIP used for scoring (e.g. 'ViT-B-32:openai')")
    if guide_model_id is not None and (not isinstance(guide_model_id, str) or not guide_model_id.strip()):
        raise UserError("guide_model_id must name the guiding CLIP, or be None if generation used no CLIP")
    same = same_model_id(guide_model_id, eval_model_id)
    if same:
        warnings.warn(
            f"CLIP score evaluated with the guiding model ({eval_model_id}); the score is inflated, "
            "use a different eval model",
            SameModelWarning,
            stacklevel=3,
        )
    return same


def _check_model(model: Any) -> None:
    for attr in ("encode_image", "encode_text"):
        if not callable(getattr(model, attr, None)):
            raise UserError(f"the CLIP-score model needs {attr}(); got {type(model).__name__}")


def _batch_scores(model: ClipLike, images: Tensor, captions: Sequence[str]) -> Tensor:
    """``max(100 cos(E_img, E_txt), 0)`` per image, float64 ``[B]``."""
    images = check_images(images)
    if isinstance(captions, str) or len(captions) != images.shape[0]:
        raise UserError(f"give one caption per image: {images.shape[0]} images, {len(captions)} captions")
    with torch.no_grad():
        img = as_feature_matrix(model.encode_image(images), "image embeddings").double()
        txt = as_feature_matrix(model.encode_text(list(captions)), "text embeddings").double()
    if img.shape != txt.shape:
        raise UserError(f"image embeddings {tuple(img.shape)} and text embeddings {tuple(txt.shape)} differ")
    cos = (F.normalize(img, dim=-1) * F.normalize(txt.to(img.device), dim=-1)).sum(-1)
    return (100.0 * cos).clamp_min(0.0)


def compute_clip_score(
    images: Tensor,
    captions: Sequence[str],
    model: ClipLike,
    *,
    eval_model_id: str,
    guide_model_id: str | None,
    batch_size: int = 64,
) -> CLIPScoreResult:
    """CLIP score of ``images`` ``[B, 3, H, W]`` in [0, 1] against ``captions`` under the eval ``model``."""
    same = _check_ids(guide_model_id, eval_model_id)
    _check_model(model)
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(captions, str):
        raise UserError("captions must be a list of strings (one per image), not a single string")
    images = check_images(images)
    if images.shape[0] == 0 or len(captions) != images.shape[0]:
        raise UserError(f"give one caption per image: {images.shape[0]} images, {len(captions)} captions")
    parts = [
        _batch_scores(model, images[s : s + batch_size], list(captions[s : s + batch_size]))
        for s in range(0, images.shape[0], batch_size)
    ]
    per_image = torch.cat(parts).cpu()
    return CLIPScoreResult(
        score=float(per_image.mean()),
        per_image=per_image,
        num_images=per_image.numel(),
        eval_model_id=eval_model_id,
        guide_model_id=guide_model_id,
        same_model=same,
    )


class CLIPScore(Metric):
    r"""Streaming CLIP score, ``mean_b max(100 cos(E_img(x_b), E_txt(c_b)), 0)`` (sum and count states).

    ``compute()`` returns the score (float64 scalar); :meth:`result` returns a :class:`CLIPScoreResult`-like
    summary with ``same_model``. Construction warns (:class:`SameModelWarning`) when ``guide_model_id`` and
    ``eval_model_id`` name the same model.
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 100.0

    score_sum: Tensor
    count: Tensor

    def __init__(self, model: ClipLike, *, eval_model_id: str, guide_model_id: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.same_model = _check_ids(guide_model_id, eval_model_id)
        _check_model(model)
        self.model = model
        self.eval_model_id = eval_model_id
        self.guide_model_id = guide_model_id
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, images: Tensor, captions: Sequence[str]) -> None:
        """Add images ``[B, 3, H, W]`` in [0, 1] with one caption each."""
        scores = _batch_scores(self.model, images, captions)
        self.score_sum += scores.sum().to(self.score_sum.device)
        self.count += scores.numel()

    def compute(self) -> Tensor:
        """Mean CLIP score so far (0-100 scale)."""
        if int(self.count) == 0:
            raise UserError("CLIPScore has no images yet; call update(images, captions) first")
        return self.score_sum / self.count

    def result(self) -> dict[str, Any]:
        """``{"clip_score", "num_images", "eval_model_id", "guide_model_id", "same_model"}`` for reports."""
        with self.sync_context():  # a no-op unless torch.distributed is initialised
            if int(self.count) == 0:
                raise UserError("CLIPScore has no images yet; call update(images, captions) first")
            score, n = float(self.score_sum / self.count), int(self.count)
        return {
            "clip_score": score,
            "num_images": n,
            "eval_model_id": self.eval_model_id,
            "guide_model_id": self.guide_model_id,
            "same_model": self.same_model,
        }
