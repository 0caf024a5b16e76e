r"""Per-prompt diversity: PPD and mPPD.

For a prompt :math:`p` with images :math:`x_1..x_N` generated from different seeds and features
:math:`\phi_i` (DINOv2 CLS by convention; any extractor works),

.. math::
    \mathrm{PPD}(p) = \binom{N}{2}^{-1} \sum_{i<j} d(\phi_i, \phi_j), \qquad
    \mathrm{mPPD} = \frac1{|P|}\sum_{p\in P} \mathrm{PPD}(p)

with ``distance="cosine"`` (default): :math:`d = 1 - \cos(\phi_i, \phi_j)`, in ``[0, 2]``; or
``distance="l2"``: :math:`d = \lVert\phi_i - \phi_j\rVert_2` (not squared). SCAD's exact definition is
unpublished; this is the project's reconstruction (see docs), so record N, the extractor and the distance
with every number. Cosine PPD is computed in O(N D) per prompt from the identity
:math:`\sum_{i<j}\cos = (\lVert\sum_i\hat\phi_i\rVert^2 - N)/2`; L2 uses batched pairwise distances over
prompts with the same N. All arithmetic is float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from clip_t2i.errors import UserError
from clip_t2i.metrics.features import as_feature_matrix

__all__ = ["DISTANCES", "MPPD", "PerPromptResult", "mppd", "per_prompt_distance", "prompt_groups"]

DISTANCES = ("cosine", "l2")
PromptIds = Sequence[int] | Sequence[str] | Tensor


@dataclass(frozen=True)
class PerPromptResult:
    """A per-prompt metric: ``values[i]`` belongs to ``prompt_ids[i]`` (sorted); ``mean`` is over prompts."""

    mean: float
    prompt_ids: list[Any]
    values: Tensor
    counts: Tensor

    def as_dict(self) -> dict[Any, float]:
        return {p: float(v) for p, v in zip(self.prompt_ids, self.values, strict=True)}


def prompt_groups(prompt_ids: PromptIds, n: int) -> tuple[list[Any], Tensor, Tensor]:
    """Sorted unique prompt ids, each row's group index ``[n]`` and the group sizes ``[P]``."""
    if isinstance(prompt_ids, Tensor):
        if prompt_ids.ndim != 1 or prompt_ids.is_floating_point() or prompt_ids.is_complex():
            raise UserError(
                f"prompt_ids must be a 1-D integer tensor, got {prompt_ids.dtype} {tuple(prompt_ids.shape)}"
            )
        if prompt_ids.numel() != n:
            raise UserError(f"got {prompt_ids.numel()} prompt ids for {n} feature rows; give one id per image")
        uniq, inverse, counts = torch.unique(prompt_ids.long().cpu(), return_inverse=True, return_counts=True)
        return uniq.tolist(), inverse, counts
    if isinstance(prompt_ids, (str, bytes)) or not isinstance(prompt_ids, Sequence):
        raise UserError(f"prompt_ids must be a list or a 1-D LongTensor, got {type(prompt_ids).__name__}")
    if len(prompt_ids) != n:
        raise UserError(f"got {len(prompt_ids)} prompt ids for {n} feature rows; give one id per image")
    try:
        uniq_list = sorted(set(prompt_ids))
    except TypeError:
        raise UserError("prompt_ids must all be ints or all be strings (they could not be sorted)") from None
    lookup = {p: i for i, p in enumerate(uniq_list)}
    inverse = torch.tensor([lookup[p] for p in prompt_ids], dtype=torch.long)
    counts = torch.bincount(inverse, minlength=len(uniq_list))
    return uniq_list, inverse, counts


def _check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise UserError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    return distance


def _unit_rows(x: Tensor) -> Tensor:
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise UserError("features contain all-zero rows; cosine distance is undefined for them")
    return x / norms


def _grouped_rows(inverse: Tensor, counts: Tensor) -> dict[int, tuple[Tensor, Tensor]]:
    """For each group size n: (group indices [G], row indices [G, n]) into the original rows."""
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    out: dict[int, tuple[Tensor, Tensor]] = {}
    for size in torch.unique(counts).tolist():
        groups = torch.nonzero(counts == size).flatten()
        rows = order[starts[groups][:, None] + torch.arange(size)]
        out[int(size)] = (groups, rows)
    return out


def per_prompt_distance(
    features: Tensor, prompt_ids: PromptIds, distance: str = "cosine", chunk_elems: int = 2**25
) -> PerPromptResult:
    """PPD of every prompt and their mean (mPPD); every prompt needs at least 2 images (seeds)."""
    _check_distance(distance)
    x = as_feature_matrix(features, "features").double()
    ids, inverse, counts = prompt_groups(prompt_ids, x.shape[0])
    if not ids:
        raise UserError("no features given; PPD needs at least 2 images per prompt")
    if bool((counts < 2).any()):
        i = int(torch.nonzero(counts < 2)[0])
        raise UserError(f"prompt {ids[i]!r} has {int(counts[i])} image; PPD needs at least 2 images (seeds) per prompt")
    inverse, counts = inverse.to(x.device), counts.to(x.device)
    n = counts.double()
    if distance == "cosine":
        u = _unit_rows(x)
        sums = torch.zeros(len(ids), x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, inverse, u)
        self_sim = torch.zeros(len(ids), dtype=torch.float64, device=x.device).index_add_(0, inverse, u.square().sum(1))
        mean_cos = (sums.square().sum(1) - self_sim) / (n * (n - 1))
        values = (1.0 - mean_cos).clamp(0.0, 2.0)
    else:
        values = torch.empty(len(ids), dtype=torch.float64, device=x.device)
        for size, (groups, rows) in _grouped_rows(inverse.cpu(), counts.cpu()).items():
            step = max(1, chunk_elems // (size * size * x.shape[1]))
            iu = torch.triu_indices(size, size, offset=1)
            for s in range(0, groups.numel(), step):
                g, r = groups[s : s + step].to(x.device), rows[s : s + step].to(x.device)
                block = x[r]  # [G, n, D]
                d = torch.cdist(block, block, compute_mode="donot_use_mm_for_euclid_dist")
                values[g] = d[:, iu[0], iu[1]].mean(1)
    values = values.cpu()
    return PerPromptResult(mean=float(values.mean()), prompt_ids=ids, values=values, counts=counts.cpu())


def mppd(features: Tensor, prompt_ids: PromptIds, distance: str = "cosine") -> Tensor:
    """mPPD: mean over prompts of the mean pairwise feature distance between that prompt's images."""
    return torch.tensor(per_prompt_distance(features, prompt_ids, distance).mean, dtype=torch.float64)


class MPPD(Metric):
    r"""Streaming mPPD (``cat`` states of features and integer prompt ids); equations in the module docstring.

    ``update(x, prompt_ids)`` takes images (with ``feature_extractor``) or features ``[B, D]`` and one
    integer prompt id per row; images of one prompt may arrive in different batches. :meth:`compute`
    returns the mPPD (float64 scalar); :meth:`per_prompt` the full :class:`PerPromptResult`.
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0

    features: list[Tensor]
    prompt_ids: list[Tensor]

    def __init__(
        self,
        distance: str = "cosine",
        feature_extractor: Callable[[Tensor], Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.distance = _check_distance(distance)
        self.feature_extractor = feature_extractor
        self.add_state("features", [], dist_reduce_fx="cat")
        self.add_state("prompt_ids", [], dist_reduce_fx="cat")

    def update(self, x: Tensor, prompt_ids: Sequence[int] | Tensor) -> None:
        """Add images/features of some prompts; ``prompt_ids``: one int per row (list or LongTensor)."""
        if self.feature_extractor is not None:
            with torch.no_grad():
                x = self.feature_extractor(x)
        f = as_feature_matrix(x, "features")
        if not isinstance(prompt_ids, Tensor):
            if any(isinstance(p, bool) or not isinstance(p, int) for p in prompt_ids):
                raise UserError("MPPD.update needs integer prompt ids (map strings to ints first)")
            prompt_ids = torch.tensor(list(prompt_ids), dtype=torch.long)
        if prompt_ids.ndim != 1 or prompt_ids.is_floating_point() or prompt_ids.numel() != f.shape[0]:
            raise UserError(f"prompt_ids must be {f.shape[0]} integers (one per row), got {tuple(prompt_ids.shape)}")
        self.features.append(f.double())
        self.prompt_ids.append(prompt_ids.long().to(f.device))

    def per_prompt(self) -> PerPromptResult:
        """PPD of every prompt seen so far in this process (not synced across processes) and their mean."""
        if not self.features:
            raise UserError("MPPD has no features yet; call update(features, prompt_ids) first")
        return per_prompt_distance(dim_zero_cat(self.features), dim_zero_cat(self.prompt_ids), self.distance)

    def compute(self) -> Tensor:
        """mPPD over all prompts seen so far."""
        return torch.tensor(self.per_prompt().mean, dtype=torch.float64)
