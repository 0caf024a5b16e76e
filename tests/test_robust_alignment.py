"""The gradient-alignment term: neutral starts, sources, the loss's value on a model with a known gradient, and its
use in robustify (second-order backward, logging, resume, bad input)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from clip_t2i.backbones import load_clip
from clip_t2i.errors import UserError
from clip_t2i.robust.alignment import alignment_loss, alignment_sources, flat_cos, neutral_starts
from clip_t2i.robust.finetune import RobustTrainConfig, robustify, validate

torch.set_num_threads(1)


def test_neutral_starts_are_seeded_in_range_and_shapeless():
    a = neutral_starts(64, 32, torch.Generator().manual_seed(3))
    b = neutral_starts(64, 32, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (64, 3, 32, 32)
    assert a.min() >= 0 and a.max() <= 1
    # no shape information: the grey level sits in its range, structure on the 8x8 grid is at most the coarse
    # noise (std 0.12), and nothing finer than it beyond white pixel noise (std <= 0.08)
    grid = torch.nn.functional.avg_pool2d(a, 4)  # 8x8 cells
    assert grid.flatten(1).std(1).max() < 0.2
    fine = a - torch.nn.functional.interpolate(grid, size=32, mode="bilinear", align_corners=False)
    assert fine.flatten(1).std(1).max() < 0.08 * 1.2 + 0.05
    level = a.mean((1, 2, 3))
    assert level.min() > 0.05 - 0.06 and level.max() < 0.70 + 0.06


def test_sources_edit_only_towards_another_label():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 3, 8, 8)
    keys = torch.arange(50) % 5
    src = alignment_sources(x, keys, edit_prob=1.0, generator=g)
    edits = 0
    for i in range(50):
        match = [j for j in range(50) if torch.equal(src[i], x[j])]
        assert all(keys[j] != keys[i] for j in match)  # never an image of the same label
        edits += bool(match)
    assert edits >= 30  # the rest drew a same-label partner and kept their neutral start
    none = alignment_sources(x, keys, edit_prob=0.0, generator=torch.Generator().manual_seed(0))
    assert not any(torch.equal(none[i], x[j]) for i in range(50) for j in range(50))


class _Quadratic(torch.nn.Module):
    """``f(x) = [1, −k·||x − m||²]`` against text ``[0, 1]``: sim rises toward ``m``, so ∇ₓ sim ∝ m − x."""

    def __init__(self, m: torch.Tensor) -> None:
        super().__init__()
        self.m = torch.nn.Parameter(m.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = (x - self.m).flatten(1).pow(2).sum(1)
        return torch.stack([torch.ones_like(d), -0.01 * d], 1)


def test_loss_value_on_a_model_whose_gradient_is_known():
    """With f's gradient ∝ m − x: alignment 1 when m is the target image, and its known cosine otherwise."""
    g = torch.Generator().manual_seed(1)
    x_star = torch.rand(6, 3, 8, 8, generator=g)
    text = torch.tensor([[0.0, 1.0]]).expand(6, 2)  # sim = cos(f, text) grows as ||x − m|| shrinks
    keys = torch.arange(6)
    # m = x* for every image at once: gradient of image i points at x*_i exactly -> a = 1 (per image, m broadcast)
    model = _Quadratic(x_star)
    loss, a = alignment_loss(model, x_star, text, keys, torch.Generator().manual_seed(2), edit_prob=0.0)
    assert torch.allclose(a, torch.ones(6), atol=1e-5) and abs(float(loss.detach())) < 1e-5
    # m = a fixed other image: a = cos(m − x_t, x* − x_t), recomputed here from the same draws
    m = torch.rand(1, 3, 8, 8, generator=g)
    model = _Quadratic(m)
    gen = torch.Generator().manual_seed(4)
    loss, a = alignment_loss(model, x_star, text, keys, gen, edit_prob=0.0)
    gen = torch.Generator().manual_seed(4)
    src = alignment_sources(x_star, keys, 0.0, gen)
    t = torch.rand(6, 1, 1, 1, generator=gen)
    x_t = (1 - t) * src + t * x_star
    want = flat_cos(m - x_t, x_star - x_t)
    assert torch.allclose(a, want, atol=1e-5)
    assert math.isclose(float(loss.detach()), float((1 - want).mean()), abs_tol=1e-5)


def test_loss_trains_the_gradient_second_order():
    """The loss back-propagates into the parameters (a second-order path), and descending it raises alignment."""
    g = torch.Generator().manual_seed(5)
    x_star = torch.rand(1, 3, 8, 8, generator=g)  # one target: the best m is x* itself (alignment 1)
    model = _Quadratic(torch.rand(1, 3, 8, 8, generator=g))
    text = torch.tensor([[0.0, 1.0]])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for step in range(60):
        loss, a = alignment_loss(model, x_star, text, torch.arange(1), torch.Generator().manual_seed(step % 3))
        first = float(a.mean()) if first is None else first
        opt.zero_grad()
        loss.backward()
        assert model.m.grad is not None and model.m.grad.abs().sum() > 0
        opt.step()
    _, a = alignment_loss(model, x_star, text, torch.arange(1), torch.Generator().manual_seed(7))
    assert float(a.mean()) > max(0.9, first + 0.1)


@pytest.fixture(scope="module")
def start_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "start.safetensors"
    load_clip("vit-t32").save(path)
    return path


def _cfg(out: Path, model: Path, **kw) -> RobustTrainConfig:
    base = dict(
        data="shapes", model=str(model), out=str(out), steps=4, batch_size=8, warmup_steps=1, ckpt_every=2,
        progress=False, log_every=1, lr=1e-3, eps=3.0, attack="none", align_weight=2.0,
    )  # fmt: skip
    base.update(kw)
    return RobustTrainConfig(**base)


def test_robustify_with_alignment_logs_trains_and_resumes(tmp_path, start_model):
    straight = robustify(_cfg(tmp_path / "a", start_model), echo=None)
    logs = [
        json.loads(line) for line in (tmp_path / "a" / "train.log").read_text().splitlines() if '"align_cos"' in line
    ]
    assert len(logs) == 4 and all(-1 <= r["align_cos"] <= 1 for r in logs)
    plain = robustify(_cfg(tmp_path / "p", start_model, align_weight=0.0), echo=None)
    a, p = load_clip(straight).model.state_dict(), load_clip(plain).model.state_dict()
    assert any(not torch.allclose(a[k], p[k]) for k in a if k.startswith("visual."))  # the term moved the weights
    part = _cfg(tmp_path / "b", start_model)
    robustify(dataclasses.replace(part, max_minutes=0.0), echo=None)
    resumed = robustify(dataclasses.replace(part, resume=True), echo=None)
    b = load_clip(resumed).model.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert load_clip(straight).config["robust"]["align_weight"] == 2.0


@pytest.mark.parametrize(
    ("kw", "msg"),
    [({"align_weight": -1.0}, "align-weight"), ({"align_edit_prob": 1.5}, "align-edit-prob"),
     ({"align_t_power": 0.0}, "align-t-power")],
)  # fmt: skip
def test_bad_alignment_settings(tmp_path, start_model, kw, msg):
    with pytest.raises(UserError, match=msg):
        validate(_cfg(tmp_path / "bad", start_model, **kw))
    assert not (tmp_path / "bad").exists()
