r"""Precision / recall (Kynkäänniemi et al., 2019) and density / coverage (Naeem et al., 2020).

Real features :math:`r_1..r_N`, fake features :math:`f_1..f_M`, :math:`\rho_k(x)` = Euclidean distance from
:math:`x` to its k-th nearest neighbour in its own set (itself excluded), :math:`B(x, \rho)` = closed ball:

.. math::
    \mathrm{precision} = \tfrac1M \textstyle\sum_j \mathbb 1[\exists i:\ f_j \in B(r_i, \rho_k(r_i))] \qquad
    \mathrm{recall} = \tfrac1N \textstyle\sum_i \mathbb 1[\exists j:\ r_i \in B(f_j, \rho_k(f_j))]

    \mathrm{density} = \tfrac{1}{kM} \textstyle\sum_j \sum_i \mathbb 1[f_j \in B(r_i, \rho_k(r_i))] \qquad
    \mathrm{coverage} = \tfrac1N \textstyle\sum_i \mathbb 1[\min_j \lVert r_i - f_j\rVert \le \rho_k(r_i)]

Balls are closed (``<=``) as in Kynkäänniemi's code and torch-fidelity; clovaai's prdc / dgm-eval use ``<``
(they differ only on exact ties). Default ``k = 3`` (torch-fidelity); Naeem et al. and dgm-eval use 5.
Distances are computed in float64 in row chunks, so memory is ``chunk_size x max(N, M)``, never N x N.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from clip_t2i.errors import UserError
from clip_t2i.metrics.features import as_feature_matrix

__all__ = ["PRDC", "PRDCResult", "knn_radii", "compute_prdc", "precision_recall", "density_coverage"]

DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class PRDCResult:
    """Precision, recall, density and coverage (floats; density can exceed 1)."""

    precision: float
    recall: float
    density: float
    coverage: float
    k: int

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "density": self.density,
            "coverage": self.coverage,
        }


def _sqnorms(x: Tensor) -> Tensor:
    return x.square().sum(1)


def _dist(a: Tensor, a_sq: Tensor, b: Tensor, b_sq: Tensor) -> Tensor:
    """Euclidean distances ``[len(a), len(b)]`` via ``|a|^2 + |b|^2 - 2 a.b`` (float64 inputs)."""
    d2 = torch.addmm(a_sq[:, None] + b_sq[None, :], a, b.T, alpha=-2.0)
    return d2.clamp_min_(0.0).sqrt_()


def _prepare(x: Tensor, what: str, dim: int | None = None) -> Tensor:
    return as_feature_matrix(x, what, dim=dim).double()


def knn_radii(features: Tensor, k: int = 3, chunk_size: int = DEFAULT_CHUNK) -> Tensor:
    """Distance from each row to its k-th nearest other row ``[N]`` (self excluded; duplicates count)."""
    x = _prepare(features, "features")
    n = x.shape[0]
    if not 1 <= k < n:
        raise UserError(f"k-NN radii need 1 <= k < number of samples, got k={k} with {n} samples")
    sq = _sqnorms(x)
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    for s in range(0, n, chunk_size):
        d = _dist(x[s : s + chunk_size], sq[s : s + chunk_size], x, sq)
        rows = torch.arange(d.shape[0], device=x.device)
        d[rows, rows + s] = float("inf")  # exclude self
        out[s : s + chunk_size] = d.kthvalue(k, dim=1).values
    return out


def _prdc(real: Tensor, fake: Tensor, k: int, chunk_size: int) -> PRDCResult:
    r = _prepare(real, "real features")
    f = _prepare(fake, "fake features", dim=r.shape[1])
    if chunk_size < 1:
        raise UserError(f"chunk_size must be >= 1, got {chunk_size}")
    real_r = knn_radii(r, k, chunk_size)
    fake_r = knn_radii(f, k, chunk_size)
    r_sq, f_sq = _sqnorms(r), _sqnorms(f)
    in_real_ball = torch.zeros(f.shape[0], dtype=torch.long, device=f.device)  # per fake: # real balls
    recalled = torch.zeros((), dtype=torch.long, device=r.device)
    covered = torch.zeros((), dtype=torch.long, device=r.device)
    for s in range(0, r.shape[0], chunk_size):
        d = _dist(r[s : s + chunk_size], r_sq[s : s + chunk_size], f, f_sq)  # [chunk of real, M]
        rad = real_r[s : s + chunk_size, None]
        in_real_ball += (d <= rad).sum(0)
        recalled += (d <= fake_r[None, :]).any(1).sum()
        covered += (d.min(1).values <= rad[:, 0]).sum()
    n, m = r.shape[0], f.shape[0]
    return PRDCResult(
        precision=float((in_real_ball > 0).double().mean()),
        recall=float(recalled) / n,
        density=float(in_real_ball.double().sum()) / (k * m),
        coverage=float(covered) / n,
        k=k,
    )


def compute_prdc(real: Tensor, fake: Tensor, k: int = 3, chunk_size: int = DEFAULT_CHUNK) -> PRDCResult:
    """Precision, recall, density and coverage of ``fake`` ``[M, D]`` against ``real`` ``[N, D]``."""
    return _prdc(real, fake, k, chunk_size)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk_size: int = DEFAULT_CHUNK) -> tuple[float, float]:
    """Kynkäänniemi et al. improved precision and recall with k-NN balls (see module docstring)."""
    res = _prdc(real, fake, k, chunk_size)
    return res.precision, res.recall


def density_coverage(real: Tensor, fake: Tensor, k: int = 5, chunk_size: int = DEFAULT_CHUNK) -> tuple[float, float]:
    """Naeem et al. density and coverage (default k = 5 as in the paper)."""
    res = _prdc(real, fake, k, chunk_size)
    return res.density, res.coverage


class PRDC(Metric):
    r"""Streaming precision / recall / density / coverage; stores all features (``cat`` states).

    :meth:`compute` returns ``{"precision", "recall", "density", "coverage"}`` as float64 scalar tensors
    (equations in the module docstring). ``feature_extractor`` is a callable ``images -> [B, D]`` or None
    (``update`` receives features). With ``reset_real_features=False`` the real features survive ``reset``.
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0

    real_features: list[Tensor]
    fake_features: list[Tensor]

    def __init__(
        self,
        k: int = 3,
        feature_extractor: Callable[[Tensor], Tensor] | None = None,
        reset_real_features: bool = True,
        chunk_size: int = DEFAULT_CHUNK,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(k, int) or k < 1:
            raise UserError(f"k must be a positive int, got {k!r}")
        self.k = k
        self.chunk_size = chunk_size
        self.feature_extractor = feature_extractor
        self.reset_real_features = bool(reset_real_features)
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, x: Tensor, real: bool) -> None:
        """Add a batch of images (with an extractor) or features ``[B, D]`` to the real or fake side."""
        if self.feature_extractor is not None:
            with torch.no_grad():
                x = self.feature_extractor(x)
        f = as_feature_matrix(x, "features").double()
        (self.real_features if real else self.fake_features).append(f)

    def compute(self) -> dict[str, Tensor]:
        """Precision, recall, density and coverage of all fake vs all real features so far."""
        if not self.real_features or not self.fake_features:
            raise UserError("PRDC needs both real and fake features; call update(x, real=True/False) first")
        res = _prdc(dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features), self.k, self.chunk_size)
        return {key: torch.tensor(v, dtype=torch.float64) for key, v in res.as_dict().items()}

    def reset(self) -> None:
        """Clear the state; keep the real features if ``reset_real_features`` is False."""
        kept = None
        if not self.reset_real_features and len(self.real_features):
            kept = [dim_zero_cat(self.real_features)]
        super().reset()
        if kept is not None:
            self.real_features = kept
