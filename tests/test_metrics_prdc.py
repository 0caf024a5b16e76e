"""Precision/recall/density/coverage: brute-force re-derivation, torch-fidelity cross-check, chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from clip_t2i.errors import UserError
from clip_t2i.metrics import PRDC, compute_prdc, density_coverage, knn_radii, precision_recall


def _data(n_real: int, n_fake: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n_real, d, generator=g, dtype=torch.float64)
    fake = torch.randn(n_fake, d, generator=g, dtype=torch.float64) * 1.2 + 0.3
    return real, fake


def _brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Naeem et al. / Kynkäänniemi et al. from the definitions, with full distance matrices (closed balls)."""
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    rad_r = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    rad_f = np.sort(d_ff, axis=1)[:, k]
    inside = d_rf <= rad_r[:, None]  # [i real, j fake]: fake j in real ball i
    return {
        "precision": float(np.mean([inside[:, j].any() for j in range(fake.shape[0])])),
        "recall": float(np.mean([(d_rf[i] <= rad_f).any() for i in range(real.shape[0])])),
        "density": float(inside.sum() / (k * fake.shape[0])),
        "coverage": float(np.mean(d_rf.min(axis=1) <= rad_r)),
    }


@pytest.mark.parametrize(("k", "d"), [(3, 8), (5, 32), (1, 4)])
def test_matches_brute_force_definitions(k: int, d: int) -> None:
    real, fake = _data(300, 250, d, seed=k)
    res = compute_prdc(real, fake, k=k, chunk_size=64)
    ref = _brute_force(real.numpy(), fake.numpy(), k)
    assert res.as_dict() == pytest.approx(ref, abs=1e-12)
    assert 0 < res.precision < 1 and 0 < res.recall < 1


def test_matches_torch_fidelity() -> None:
    prc = pytest.importorskip("torch_fidelity.metric_prc")
    real, fake = _data(400, 350, 16, seed=9)
    out = prc.prc_features_to_metric(
        fake, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False
    )
    precision, recall = precision_recall(real, fake, k=3)
    # torch-fidelity averages in float32; 1e-6 is far below one sample (1/350), so the counts agree exactly
    assert precision == pytest.approx(out["precision"], abs=1e-6)
    assert recall == pytest.approx(out["recall"], abs=1e-6)


def test_chunking_does_not_change_results() -> None:
    real, fake = _data(257, 131, 10, seed=2)
    a = compute_prdc(real, fake, k=3, chunk_size=7)
    b = compute_prdc(real, fake, k=3, chunk_size=100000)
    assert a == b
    radii = knn_radii(real, k=4, chunk_size=5)
    ref = np.sort(cdist(real.numpy(), real.numpy()), axis=1)[:, 4]
    np.testing.assert_allclose(radii.numpy(), ref, rtol=1e-10)


def test_identical_sets_are_fully_precise_and_covered() -> None:
    real, _ = _data(200, 1, 6, seed=4)
    res = compute_prdc(real, real.clone(), k=3)
    assert res.precision == 1.0 and res.recall == 1.0 and res.coverage == 1.0
    dens, cov = density_coverage(real, real.clone())
    assert cov == 1.0 and dens > 0.5


def test_metric_object_matches_function_and_keeps_real() -> None:
    real, fake = _data(120, 90, 5, seed=6)
    metric = PRDC(k=3, reset_real_features=False)
    for chunk in real.split(50):
        metric.update(chunk, real=True)
    for chunk in fake.split(40):
        metric.update(chunk, real=False)
    out = metric.compute()
    ref = compute_prdc(real, fake, k=3)
    assert {key: float(v) for key, v in out.items()} == pytest.approx(ref.as_dict(), abs=1e-12)
    metric.reset()
    metric.update(fake[:50], real=False)
    assert float(metric.compute()["precision"]) == pytest.approx(compute_prdc(real, fake[:50], k=3).precision)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_errors() -> None:
    real, fake = _data(10, 10, 3, seed=0)
    with pytest.raises(UserError, match="k < number of samples"):
        compute_prdc(real, fake, k=10)
    bad = fake.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        compute_prdc(real, bad)
    with pytest.raises(UserError, match="dims"):
        compute_prdc(real, fake[:, :2])
    with pytest.raises(UserError, match="both real and fake"):
        PRDC().compute()
