"""Fréchet distance: closed forms, edge cases, streaming object, torchmetrics FID on the same features."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from clip_t2i.errors import UserError
from clip_t2i.metrics import (
    FrechetDistance,
    frechet_distance,
    frechet_distance_from_stats,
    mean_and_covariance,
    trace_sqrt_product,
)


def _feats(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix) * scale + shift


def _rotation(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


class _Passthrough(nn.Module):
    """'Images' [B, D, 1, 1] -> features [B, D]: lets torchmetrics' FID see exactly our features."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


def _torchmetrics_fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Passthrough(real.shape[1]), normalize=True)
    for x, is_real in ((real, True), (fake, False)):
        for chunk in x.split(97):
            fid.update(chunk[:, :, None, None], real=is_real)
    return float(fid.compute())


@pytest.mark.parametrize(("n_real", "n_fake", "d"), [(600, 500, 32), (300, 400, 64), (40, 50, 64)])
def test_matches_torchmetrics_fid(n_real: int, n_fake: int, d: int) -> None:
    real = _feats(n_real, d, 0)
    fake = _feats(n_fake, d, 1, scale=1.3, shift=0.2)
    ours = float(frechet_distance(real, fake))
    ref = _torchmetrics_fid(real, fake)
    assert ours == pytest.approx(ref, rel=1e-3)
    metric = FrechetDistance(num_features=d)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert float(metric.compute()) == pytest.approx(ref, rel=1e-3)


def test_closed_form_commuting_covariances_with_zero_eigenvalues() -> None:
    # Sigma_k = Q diag(a_k) Q^T  =>  FD = |dmu|^2 + sum (sqrt(a1) - sqrt(a2))^2, also when some a = 0
    d = 12
    q = _rotation(d, 3)
    a1 = torch.tensor([4.0, 1.0, 0.25, 9.0, 0.0, 0.0, 2.0, 3.0, 0.0, 1.0, 5.0, 0.5], dtype=torch.float64)
    a2 = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 4.0, 2.0, 0.5, 0.0, 3.0, 5.0, 0.5], dtype=torch.float64)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.linspace(0, 1, d, dtype=torch.float64)
    s1, s2 = q @ torch.diag(a1) @ q.T, q @ torch.diag(a2) @ q.T
    expected = float((mu1 - mu2).square().sum() + (a1.sqrt() - a2.sqrt()).square().sum())
    assert float(frechet_distance_from_stats(mu1, s1, mu2, s2)) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert float(trace_sqrt_product(s1, s2)) == pytest.approx(float((a1 * a2).sqrt().sum()), rel=1e-9)


@pytest.mark.parametrize(("n", "d"), [(2000, 64), (30, 256), (500, 128)])
def test_identical_sets_give_zero(n: int, d: int) -> None:
    x = _feats(n, d, 7, scale=5.0, shift=3.0)
    assert float(frechet_distance(x, x.clone())) == pytest.approx(0.0, abs=1e-6)
    mu, cov = mean_and_covariance(x)
    assert float(frechet_distance_from_stats(mu, cov, mu, cov)) == pytest.approx(0.0, abs=1e-6)
    metric = FrechetDistance(num_features=d)
    for chunk in x.split(64):
        metric.update(chunk, real=True)
        metric.update(chunk, real=False)
    assert float(metric.compute()) == pytest.approx(0.0, abs=1e-6)


def test_rank_deficient_low_rank_features() -> None:
    g = torch.Generator().manual_seed(5)
    basis = torch.randn(6, 48, generator=g, dtype=torch.float64)
    x = torch.randn(300, 6, generator=g, dtype=torch.float64) @ basis  # rank 6 in 48-D
    y = torch.randn(250, 6, generator=g, dtype=torch.float64) @ (basis * 1.1) + 0.1
    assert float(frechet_distance(x, x.clone())) == pytest.approx(0.0, abs=1e-6)
    via_stats = frechet_distance_from_stats(*mean_and_covariance(x), *mean_and_covariance(y))
    _, cov_x = mean_and_covariance(x)
    _, cov_y = mean_and_covariance(y)
    assert float(frechet_distance(x, y)) == pytest.approx(float(via_stats), rel=1e-9)
    assert float(trace_sqrt_product(cov_x, cov_y)) == pytest.approx(float(trace_sqrt_product(cov_y, cov_x)), rel=1e-9)


def test_fewer_samples_than_dims_uses_same_value_as_covariance_route() -> None:
    x, y = _feats(20, 100, 11), _feats(25, 100, 12, scale=0.7)
    small = float(frechet_distance(x, y))  # n <= d: cross-Gram route
    big = float(frechet_distance_from_stats(*mean_and_covariance(x), *mean_and_covariance(y)))
    assert small == pytest.approx(big, rel=1e-9)
    assert small == pytest.approx(float(frechet_distance(y, x)), rel=1e-12)


def test_metric_streaming_equals_function_and_keeps_real_stats() -> None:
    real, fake, fake2 = _feats(300, 16, 1), _feats(200, 16, 2, shift=0.5), _feats(250, 16, 3, scale=2.0)
    metric = FrechetDistance(num_features=16, reset_real_features=False)
    for chunk in real.split(70):
        metric.update(chunk, real=True)
    for chunk in fake.split(33):
        metric.update(chunk, real=False)
    assert float(metric.compute()) == pytest.approx(float(frechet_distance(real, fake)), rel=1e-9)
    metric.reset()
    assert int(metric.real_n) == 300 and int(metric.fake_n) == 0
    metric.update(fake2, real=False)
    assert float(metric.compute()) == pytest.approx(float(frechet_distance(real, fake2)), rel=1e-9)
    full = FrechetDistance(num_features=16)
    full.update(real, real=True)
    full.reset()
    assert int(full.real_n) == 0
    assert FrechetDistance.higher_is_better is False and FrechetDistance.is_differentiable is False


def test_metric_with_feature_extractor() -> None:
    proj = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))

    def extractor(images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)) @ proj

    extractor.dim = 8  # type: ignore[attr-defined]
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(40, 3, 8, 8, generator=g), torch.rand(30, 3, 8, 8, generator=g) * 0.5
    metric = FrechetDistance(extractor)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    expected = frechet_distance(extractor(real), extractor(fake))
    assert float(metric.compute()) == pytest.approx(float(expected), rel=1e-5)


def test_bad_input_raises_user_error() -> None:
    x = _feats(10, 4, 0)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        frechet_distance(x, bad)
    metric = FrechetDistance(num_features=4)
    with pytest.raises(UserError, match="NaN"):
        metric.update(bad, real=True)
    with pytest.raises(UserError, match="dims"):
        metric.update(_feats(10, 5, 0), real=True)
    with pytest.raises(UserError, match="at least 2"):
        metric.compute()
    with pytest.raises(UserError, match="at least 2"):
        frechet_distance(x[:1], x)
    with pytest.raises(UserError, match="num_features"):
        FrechetDistance()
    with pytest.raises(UserError, match="2-D"):
        frechet_distance(x[0], x)


def test_merged_states_equal_single_pass() -> None:
    # merge_state applies the dist_reduce_fx of every state, as a multi-process sync would
    real, fake = _feats(200, 8, 1), _feats(180, 8, 2, shift=1.0)
    a, b, whole = (FrechetDistance(num_features=8) for _ in range(3))
    a.update(real[:120], real=True)
    a.update(fake[:50], real=False)
    b.update(real[120:], real=True)
    b.update(fake[50:], real=False)
    whole.update(real, real=True)
    whole.update(fake, real=False)
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(whole.compute()), rel=1e-10)
