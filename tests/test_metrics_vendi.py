"""Vendi score: identical -> 1, orthogonal -> n, n > d shortcut, orders q, per prompt, streaming object."""

from __future__ import annotations

import math

import pytest
import torch

from clip_t2i.errors import UserError
from clip_t2i.metrics import VendiScore, per_prompt_vendi, vendi_score


def _kernel_reference(x: torch.Tensor, q: float = 1.0) -> float:
    """Vendi from the n x n cosine kernel directly (no d x d shortcut)."""
    u = x.double() / x.double().norm(dim=1, keepdim=True)
    lam = torch.linalg.eigvalsh(u @ u.T / x.shape[0]).clamp_min(0)
    lam = lam[lam > 1e-15]
    if q == 1.0:
        return math.exp(float(-(lam * lam.log()).sum()))
    return math.exp(math.log(float(lam.pow(q).sum())) / (1 - q))


def test_identical_vectors_give_one() -> None:
    v = torch.randn(1, 16, generator=torch.Generator().manual_seed(0))
    assert float(vendi_score(v.repeat(50, 1))) == pytest.approx(1.0, abs=1e-6)
    assert float(vendi_score(v.repeat(50, 1) * torch.rand(50, 1) + 0.0)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("n", [1, 5, 32])
def test_orthogonal_vectors_give_n(n: int) -> None:
    q_mat, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(1)))
    x = q_mat[:n] * 3.0
    assert float(vendi_score(x)) == pytest.approx(n, rel=1e-6)
    assert float(vendi_score(x, q=2.0)) == pytest.approx(n, rel=1e-6)
    assert float(vendi_score(x, q=float("inf"))) == pytest.approx(n, rel=1e-6)


@pytest.mark.parametrize(("n", "d", "q"), [(200, 8, 1.0), (10, 64, 1.0), (150, 12, 2.0), (150, 12, 0.5)])
def test_matches_kernel_definition(n: int, d: int, q: float) -> None:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n + d)) + 0.5
    assert float(vendi_score(x, q=q)) == pytest.approx(_kernel_reference(x, q), rel=1e-8)


def test_per_prompt_and_streaming() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(37, 6, generator=g)
    ids = torch.tensor([i % 4 for i in range(30)] + [7] * 7)  # sizes 8, 8, 7, 7, 7
    res = per_prompt_vendi(x, ids)
    assert res.prompt_ids == [0, 1, 2, 3, 7]
    for pid, value in res.as_dict().items():
        assert value == pytest.approx(_kernel_reference(x[ids == pid]), rel=1e-8)
    assert res.mean == pytest.approx(sum(res.as_dict().values()) / 5)

    metric = VendiScore(num_features=6, per_prompt=True)
    for rows in torch.arange(37).split(10):
        metric.update(x[rows], ids[rows].tolist())
    out = metric.compute()
    assert float(out["vendi"]) == pytest.approx(_kernel_reference(x), rel=1e-8)
    assert float(out["vendi_per_prompt"]) == pytest.approx(res.mean, rel=1e-10)
    metric.reset()
    assert int(metric.count) == 0


def test_errors() -> None:
    with pytest.raises(UserError, match="all-zero"):
        vendi_score(torch.zeros(3, 4))
    with pytest.raises(UserError, match="q must be"):
        vendi_score(torch.randn(3, 4), q=-1)
    with pytest.raises(UserError, match="num_features"):
        VendiScore()
    with pytest.raises(UserError, match="prompt_ids"):
        VendiScore(num_features=4, per_prompt=True).update(torch.randn(3, 4))
    with pytest.raises(UserError, match="NaN"):
        vendi_score(torch.tensor([[1.0, float("nan")]]))
