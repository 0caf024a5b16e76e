r"""Vendi score (Friedman & Dieng, 2023) with a cosine-similarity kernel, overall and per prompt.

With L2-normalised features :math:`\hat x_i`, :math:`K_{ij} = \hat x_i^\top\hat x_j` and :math:`\lambda` the
eigenvalues of :math:`K/n` (they sum to 1):

.. math::
    \mathrm{VS}_1 = \exp\Big(-\sum_i \lambda_i\log\lambda_i\Big), \qquad
    \mathrm{VS}_q = \exp\Big(\frac{\log\sum_i\lambda_i^q}{1-q}\Big), \qquad
    \mathrm{VS}_\infty = 1/\max_i\lambda_i

(``0 log 0 = 0``). VS is 1 for n identical samples and n for n orthogonal ones: an "effective number of
distinct samples". For n > d the non-zero eigenvalues are taken from the d x d matrix
:math:`\hat X^\top\hat X/n` instead of the n x n kernel. Per-prompt Vendi groups images by prompt id (the
per-class Vendi of dgm-eval); its mean over prompts is reported alongside.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from clip_t2i.errors import UserError
from clip_t2i.metrics.diversity import PerPromptResult, _grouped_rows, _unit_rows, prompt_groups
from clip_t2i.metrics.features import as_feature_matrix, small_linalg_threads

__all__ = ["VendiScore", "per_prompt_vendi", "vendi_from_eigenvalues", "vendi_score"]


def _check_q(q: float) -> float:
    q = float(q)
    if not (q >= 0 and not math.isnan(q)):
        raise UserError(f"Vendi order q must be >= 0 (or inf), got {q}")
    return q


def vendi_from_eigenvalues(eigs: Tensor, q: float = 1.0) -> Tensor:
    """``exp(H_q(p))`` with ``p`` = clamped eigenvalues renormalised to sum 1; batched over leading dims."""
    q = _check_q(q)
    p = eigs.double().clamp_min(0.0)
    p = p / p.sum(-1, keepdim=True)
    if q == 1.0:
        return torch.exp(-torch.special.xlogy(p, p).sum(-1))
    if math.isinf(q):
        return 1.0 / p.amax(-1)
    if q == 0.0:
        return (p > 0).sum(-1).double()
    return torch.exp(torch.log(p.pow(q).sum(-1)) / (1.0 - q))


def _gram_eigs(u: Tensor) -> Tensor:
    """Eigenvalues of ``K/n`` for unit rows ``u`` ``[..., n, d]``, via the smaller Gram matrix."""
    n, d = u.shape[-2], u.shape[-1]
    g = u.transpose(-1, -2) @ u if n > d else u @ u.transpose(-1, -2)
    with small_linalg_threads(g.shape[-1]):
        return torch.linalg.eigvalsh(g / n)


def vendi_score(features: Tensor, q: float = 1.0) -> Tensor:
    """Vendi score of ``[N, D]`` features with the cosine kernel (float64 scalar)."""
    x = as_feature_matrix(features, "features").double()
    if x.shape[0] == 0:
        raise UserError("Vendi score needs at least 1 feature vector")
    return vendi_from_eigenvalues(_gram_eigs(_unit_rows(x)), q)


def per_prompt_vendi(
    features: Tensor, prompt_ids: Sequence[int] | Sequence[str] | Tensor, q: float = 1.0
) -> PerPromptResult:
    """Vendi score of each prompt's images (cosine kernel) and the mean over prompts."""
    _check_q(q)
    x = as_feature_matrix(features, "features").double()
    ids, inverse, counts = prompt_groups(prompt_ids, x.shape[0])
    if not ids:
        raise UserError("no features given to per_prompt_vendi")
    u = _unit_rows(x)
    values = torch.empty(len(ids), dtype=torch.float64)
    for _, (groups, rows) in _grouped_rows(inverse, counts).items():
        values[groups] = vendi_from_eigenvalues(_gram_eigs(u[rows.to(u.device)]), q).cpu()
    return PerPromptResult(mean=float(values.mean()), prompt_ids=ids, values=values, counts=counts)


class VendiScore(Metric):
    r"""Streaming Vendi score (cosine kernel); equations in the module docstring.

    Overall score from sufficient statistics (float64 ``sum x̂ x̂^T`` [D, D] and the count, summed across
    processes). With ``per_prompt=True`` it also keeps features and integer prompt ids (``cat`` states) and
    :meth:`compute` adds ``"vendi_per_prompt"`` (mean of per-prompt scores). Returns a dict of tensors.
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 1.0

    gram: Tensor
    count: Tensor
    features: list[Tensor]
    prompt_ids: list[Tensor]

    def __init__(
        self,
        num_features: int | None = None,
        q: float = 1.0,
        per_prompt: bool = False,
        feature_extractor: Callable[[Tensor], Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_features is None and feature_extractor is not None:
            num_features = getattr(feature_extractor, "dim", None) or getattr(feature_extractor, "num_features", None)
        if not isinstance(num_features, int) or num_features < 1:
            raise UserError("VendiScore needs num_features=D (feature size) when the extractor has no .dim")
        self.num_features = num_features
        self.q = _check_q(q)
        self.per_prompt = bool(per_prompt)
        self.feature_extractor = feature_extractor
        self.add_state("gram", torch.zeros(num_features, num_features, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        if self.per_prompt:
            self.add_state("features", [], dist_reduce_fx="cat")
            self.add_state("prompt_ids", [], dist_reduce_fx="cat")

    def update(self, x: Tensor, prompt_ids: Sequence[int] | Tensor | None = None) -> None:
        """Add images (with an extractor) or features ``[B, D]``; integer ``prompt_ids`` if ``per_prompt``."""
        if self.feature_extractor is not None:
            with torch.no_grad():
                x = self.feature_extractor(x)
        u = _unit_rows(as_feature_matrix(x, "features", dim=self.num_features).double().to(self.gram.device))
        self.gram.addmm_(u.T, u)
        self.count.add_(u.shape[0])
        if self.per_prompt:
            if prompt_ids is None:
                raise UserError("VendiScore(per_prompt=True).update needs prompt_ids (one int per row)")
            ids = prompt_ids if isinstance(prompt_ids, Tensor) else torch.tensor(list(prompt_ids), dtype=torch.long)
            if ids.ndim != 1 or ids.is_floating_point() or ids.numel() != u.shape[0]:
                raise UserError(f"prompt_ids must be {u.shape[0]} integers (one per row), got {tuple(ids.shape)}")
            self.features.append(u)
            self.prompt_ids.append(ids.long().to(u.device))

    def compute(self) -> dict[str, Tensor]:
        """``{"vendi": overall}`` plus ``"vendi_per_prompt"`` (mean over prompts) when ``per_prompt``."""
        n = int(self.count)
        if n == 0:
            raise UserError("VendiScore has no features yet; call update() first")
        with small_linalg_threads(self.num_features):
            eigs = torch.linalg.eigvalsh(self.gram / n)
        out = {"vendi": vendi_from_eigenvalues(eigs, self.q)}
        if self.per_prompt:
            res = per_prompt_vendi(dim_zero_cat(self.features), dim_zero_cat(self.prompt_ids), self.q)
            out["vendi_per_prompt"] = torch.tensor(res.mean, dtype=torch.float64)
        return out
