r"""Fréchet distance between Gaussian fits of two feature sets (FID, FD_DINOv2, ... on any features).

.. math::
    \mathrm{FD} = \lVert\mu_1-\mu_2\rVert^2
        + \operatorname{Tr}\big(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2}\big)

The trace of the matrix square root is computed without ``sqrtm`` and without a non-symmetric
eigensolver: with :math:`\Sigma_1 = V\Lambda V^\top` and :math:`L = V\Lambda^{1/2}`,
:math:`\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \sum_i \sqrt{\lambda_i(L^\top\Sigma_2 L)}` (a symmetric PSD
matrix). Eigenvalues below ``d * eps * max`` (including small negative ones from round-off) are set to
0, so rank-deficient covariances (N < D, duplicated or low-rank features) are handled. When both sets
are given as features and have at most D rows, the equivalent small-sample form
:math:`\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \lVert A_1A_2^\top\rVert_* / \sqrt{(n_1-1)(n_2-1)}`
(:math:`A` = centred features, :math:`\lVert\cdot\rVert_*` = nuclear norm) is used instead.
All accumulation and linear algebra is float64; covariances use the unbiased ``1/(n-1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from clip_t2i.errors import UserError
from clip_t2i.metrics.features import as_feature_matrix, small_linalg_threads

__all__ = [
    "FrechetDistance",
    "frechet_distance",
    "frechet_distance_from_stats",
    "mean_and_covariance",
    "trace_sqrt_product",
]

_EPS = torch.finfo(torch.float64).eps


def _sym(m: Tensor) -> Tensor:
    return (m + m.T) * 0.5


def _clamp_small(w: Tensor) -> Tensor:
    """Zero eigenvalues below ``len(w) * eps * max|w|`` (round-off level, including negative ones)."""
    tol = w.numel() * _EPS * float(w.abs().max()) if w.numel() else 0.0
    return torch.where(w > tol, w, torch.zeros_like(w))


def mean_and_covariance(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``mu = sum x / n`` and unbiased covariance ``Sigma = A^T A / (n-1)``, ``A = X - mu`` (float64)."""
    x = as_feature_matrix(features).double()
    if x.shape[0] < 2:
        raise UserError(f"need at least 2 feature vectors for a covariance, got {x.shape[0]}")
    mu = x.mean(0)
    a = x - mu
    return mu, a.T @ a / (x.shape[0] - 1)


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    r"""``Tr((Sigma1 Sigma2)^{1/2})`` (PSD) = ``sum sqrt(eig(L^T Sigma2 L))``, ``Sigma1 = L L^T``."""
    s1, s2 = _sym(sigma1.double()), _sym(sigma2.double())
    with small_linalg_threads(s1.shape[0]):
        w, v = torch.linalg.eigh(s1)
        w = _clamp_small(w)
        keep = w > 0
        if not bool(keep.any()):
            return s1.new_zeros(())
        lo = v[:, keep] * w[keep].sqrt()  # drop the null space of Sigma1: smaller problem when rank-deficient
        m = _sym(lo.T @ s2 @ lo)
        return _clamp_small(torch.linalg.eigvalsh(m)).sqrt().sum()


def frechet_distance_from_stats(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    r"""``||mu1 - mu2||^2 + Tr(Sigma1) + Tr(Sigma2) - 2 Tr((Sigma1 Sigma2)^{1/2})`` (float64, >= 0)."""
    mu1, mu2 = mu1.double().reshape(-1), mu2.double().reshape(-1)
    d = mu1.numel()
    if mu2.numel() != d or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise UserError(
            f"statistics disagree in size: mu1 {tuple(mu1.shape)}, sigma1 {tuple(sigma1.shape)}, "
            f"mu2 {tuple(mu2.shape)}, sigma2 {tuple(sigma2.shape)}"
        )
    for name, t in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not bool(torch.isfinite(t).all()):
            raise UserError(f"{name} contains NaN/inf; recompute the statistics from finite features")
    mean_term = (mu1 - mu2).square().sum()
    cov_term = sigma1.double().trace() + sigma2.double().trace() - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return (mean_term + cov_term).clamp_min(0.0)


def frechet_distance(features1: Tensor, features2: Tensor) -> Tensor:
    r"""Fréchet distance between the Gaussian fits of two feature sets ``[N1, D]`` and ``[N2, D]``.

    ``FD = ||mu1 - mu2||^2 + Tr(Sigma1 + Sigma2 - 2 (Sigma1 Sigma2)^{1/2})``; symmetric in its arguments.
    Returns a float64 scalar tensor.
    """
    x1 = as_feature_matrix(features1, "features1", check_finite=False).double()
    x2 = as_feature_matrix(features2, "features2", dim=x1.shape[1], check_finite=False).double()
    n1, n2, d = x1.shape[0], x2.shape[0], x1.shape[1]
    if n1 < 2 or n2 < 2:
        raise UserError(f"Fréchet distance needs at least 2 samples per set, got {n1} and {n2}")
    mu1, mu2 = x1.mean(0), x2.mean(0)
    for name, x, mu in (("features1", features1, mu1), ("features2", features2, mu2)):
        if not bool(torch.isfinite(mu).all()):  # NaN/inf anywhere shows up in the mean
            as_feature_matrix(x, name)  # raises naming how many rows are bad
    a1, a2 = x1 - mu1, x2 - mu2
    if max(n1, n2) > d:
        return frechet_distance_from_stats(mu1, a1.T @ a1 / (n1 - 1), mu2, a2.T @ a2 / (n2 - 1))
    # few samples: work with the n1 x n2 cross-Gram matrix instead of D x D covariances
    tr1 = a1.square().sum() / (n1 - 1)
    tr2 = a2.square().sum() / (n2 - 1)
    cross = a1 @ a2.T
    with small_linalg_threads(min(n1, n2)):
        tr_sqrt = torch.linalg.svdvals(cross).sum() / ((n1 - 1) * (n2 - 1)) ** 0.5
    return ((mu1 - mu2).square().sum() + tr1 + tr2 - 2.0 * tr_sqrt).clamp_min(0.0)


class FrechetDistance(Metric):
    r"""Streaming Fréchet distance, ``||mu_r - mu_f||^2 + Tr(Sigma_r + Sigma_f - 2 (Sigma_r Sigma_f)^{1/2})``.

    States per side (float64, summed across processes): ``sum x``, ``sum x x^T`` and the count; mean
    and covariance are formed in :meth:`compute`.

    Args:
        feature_extractor: callable ``images -> [B, D]`` (e.g. a :class:`~clip_t2i.metrics.FeatureExtractor`);
            ``None`` means :meth:`update` receives features ``[B, D]`` directly.
        num_features: D; read from ``feature_extractor.dim`` / ``.num_features`` when not given.
        reset_real_features: if False, :meth:`reset` keeps the real statistics (compute them once).
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0

    real_sum: Tensor
    real_outer: Tensor
    real_n: Tensor
    fake_sum: Tensor
    fake_outer: Tensor
    fake_n: Tensor

    def __init__(
        self,
        feature_extractor: Callable[[Tensor], Tensor] | None = None,
        num_features: int | None = None,
        reset_real_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if feature_extractor is not None and not callable(feature_extractor):
            raise UserError(f"feature_extractor must be callable or None, got {type(feature_extractor).__name__}")
        if num_features is None and feature_extractor is not None:
            num_features = getattr(feature_extractor, "dim", None) or getattr(feature_extractor, "num_features", None)
        if not isinstance(num_features, int) or num_features < 1:
            raise UserError("FrechetDistance needs num_features=D (feature size) when the extractor has no .dim")
        self.feature_extractor = feature_extractor
        self.num_features = num_features
        self.reset_real_features = bool(reset_real_features)
        d = num_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, x: Tensor, real: bool) -> None:
        """Add a batch: images (with an extractor) or features ``[B, D]``; ``real`` picks the side."""
        if self.feature_extractor is not None:
            with torch.no_grad():
                x = self.feature_extractor(x)
        f = as_feature_matrix(x, "features", dim=self.num_features, check_finite=False)
        f = f.to(self.real_sum.device, torch.float64)
        batch_sum = f.sum(0)
        if not bool(torch.isfinite(batch_sum).all()):  # any NaN/inf in the batch shows up in its column sums
            as_feature_matrix(x, "features")  # raises naming how many rows are bad
        side = "real" if real else "fake"
        getattr(self, f"{side}_sum").add_(batch_sum)
        getattr(self, f"{side}_outer").addmm_(f.T, f)
        getattr(self, f"{side}_n").add_(f.shape[0])

    def _mean_cov(self, side: str) -> tuple[Tensor, Tensor]:
        n = int(getattr(self, f"{side}_n"))
        if n < 2:
            raise UserError(f"FrechetDistance needs at least 2 {side} samples, got {n}; call update() with more")
        mu = getattr(self, f"{side}_sum") / n
        cov = (getattr(self, f"{side}_outer") - n * torch.outer(mu, mu)) / (n - 1)
        return mu, cov

    def compute(self) -> Tensor:
        """The Fréchet distance between the accumulated real and fake features (float64 scalar)."""
        mu_r, cov_r = self._mean_cov("real")
        mu_f, cov_f = self._mean_cov("fake")
        return frechet_distance_from_stats(mu_r, cov_r, mu_f, cov_f)

    def reset(self) -> None:
        """Clear the state; keep the real statistics if ``reset_real_features`` is False."""
        if self.reset_real_features:
            super().reset()
            return
        kept = {k: deepcopy(getattr(self, k)) for k in ("real_sum", "real_outer", "real_n")}
        super().reset()
        for k, v in kept.items():
            setattr(self, k, v)
