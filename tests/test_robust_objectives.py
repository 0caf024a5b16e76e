"""Robust fine-tuning objectives against hand-computed values, and ε rescaling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.errors import UserError
from clip_t2i.robust.finetune import effective_eps
from clip_t2i.robust.objectives import BatchTargets, get_objective

torch.set_num_threads(1)


def test_clipag_equals_clip_loss_and_row_ce():
    # two images, two captions, unique positives: L = s * [[1, 0], [0.6, 0.8]] (features already unit norm)
    feats = torch.tensor([[2.0, 0.0], [3.0, 4.0]])  # normalised: [1, 0], [0.6, 0.8]
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = BatchTargets(scale=2.0, text=text, positives=torch.eye(2))
    obj = get_objective("clipag")
    logits = torch.tensor([[2.0, 0.0], [1.2, 1.6]])
    # per-image (inner) loss: -log softmax_i(L_i.)
    row0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    row1 = -math.log(math.exp(1.6) / (math.exp(1.2) + math.exp(1.6)))
    assert torch.allclose(obj.per_sample(feats, t), torch.tensor([row0, row1]), atol=1e-6)
    # outer: symmetric CLIP loss
    col0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1.2)))
    col1 = -math.log(math.exp(1.6) / (math.exp(0) + math.exp(1.6)))
    expect = 0.5 * ((row0 + row1) / 2 + (col0 + col1) / 2)
    assert abs(float(obj(feats, t)) - expect) < 1e-6
    ref = 0.5 * (F.cross_entropy(logits, torch.arange(2)) + F.cross_entropy(logits.T, torch.arange(2)))
    assert abs(float(obj(feats, t)) - float(ref)) < 1e-6


def test_clipag_duplicate_positives_share_target_mass():
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = BatchTargets(scale=1.0, text=text, positives=torch.ones(2, 2))
    lsm = torch.log_softmax(torch.tensor([1.0, 0.0]), 0)
    expect = -(0.5 * lsm[0] + 0.5 * lsm[1])
    got = get_objective("clipag").per_sample(feats, t)
    assert torch.allclose(got, expect.expand(2), atol=1e-6)


def test_tecoa_cross_entropy_over_classes():
    feats = torch.tensor([[0.0, 5.0], [1.0, 0.0]])  # unit: [0, 1], [1, 0]
    classes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    t = BatchTargets(scale=10.0, classes=classes, labels=torch.tensor([1, 2]))
    l0 = -math.log(math.exp(10) / (math.exp(0) + math.exp(10) + math.exp(8)))
    l1 = -math.log(math.exp(6) / (math.exp(10) + math.exp(0) + math.exp(6)))
    obj = get_objective("tecoa")
    assert torch.allclose(obj.per_sample(feats, t), torch.tensor([l0, l1]), atol=1e-5)
    assert abs(float(obj(feats, t)) - (l0 + l1) / 2) < 1e-5


def test_fare_squared_l2_unnormalised():
    feats = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    t = BatchTargets(scale=1.0, reference=ref)
    obj = get_objective("fare")
    assert torch.equal(obj.per_sample(feats, t), torch.tensor([5.0, 25.0]))
    assert float(obj(feats, t)) == 15.0


def test_objective_errors():
    with pytest.raises(UserError, match="unknown objective"):
        get_objective("trades")
    with pytest.raises(UserError, match="needs reference"):
        get_objective("fare").check(BatchTargets(scale=1.0))


def test_eps_rescaling():
    assert effective_eps(1.5, 224) == pytest.approx(1.5)
    assert effective_eps(1.5, 64) == pytest.approx(1.5 * 64 / 224)  # 0.4286
    assert effective_eps(4.0, 32) == pytest.approx(4.0 / 7)
    assert effective_eps(1.0, (112, 448)) == pytest.approx(1.0)  # same pixel count as 224²
    assert effective_eps(0.03, 64, "linf") == 0.03  # per-pixel radius: no rescaling
    with pytest.raises(UserError, match="norm"):
        effective_eps(1.0, 64, "l1")
