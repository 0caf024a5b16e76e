"""Conditional minibatch std (``discriminator.group_std``): the layer's values, grouped shapes batches, the
heads that use it, the rolled mismatch captions, config errors and a training run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.backbones import load_clip
from clip_t2i.data import make_stream
from clip_t2i.errors import UserError
from clip_t2i.gan.config import validate
from clip_t2i.gan.losses import roll_captions
from clip_t2i.gan.networks import Discriminator, DiscriminatorConfig, group_std
from clip_t2i.gan.train import GanTrainConfig, train_gan
from clip_t2i.gan.variants import get_variant

torch.set_num_threads(1)


def test_group_std_values():
    # two groups of two: group 0 differs by ±1 around 0 (std 1 everywhere), group 1 is constant (std 0)
    x = torch.zeros(4, 2, 1, 3)
    x[0], x[1] = 1.0, -1.0
    x[2] = x[3] = 5.0
    y = group_std(x, 2)
    assert y.shape == (4, 3, 1, 3)
    assert torch.equal(y[:, :2], x)  # the input channels pass through unchanged
    s = y[:, 2]
    assert torch.allclose(s[:2], torch.ones(2, 1, 3), atol=1e-6)
    assert torch.allclose(s[2:], torch.full((2, 1, 3), 1e-4), atol=1e-6)  # sqrt(0 + 1e-8)
    # channels are averaged: stds 2 and 0 in two channels -> 1
    x = torch.zeros(2, 2, 1, 1)
    x[0, 0], x[1, 0] = 2.0, -2.0
    assert torch.allclose(group_std(x, 2)[:, 2], torch.full((2, 1, 1), (2.0 + 1e-4) / 2), atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        group_std(torch.zeros(3, 1, 1, 1), 2)


def test_group_std_gradient_reaches_every_member():
    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    group_std(x, 4)[:, 3].sum().backward()
    assert (x.grad.abs().sum((1, 2, 3)) > 0).all()


def test_grouped_shapes_batches():
    stream = make_stream("shapes", size=32, batch_size=8, seed=3, group_size=4)
    b = stream.batch(0)
    labels = b["label"].view(2, 4)
    assert (labels == labels[:, :1]).all()  # one combination per group
    imgs = b["image"].view(2, 4, -1)
    assert (imgs[:, 1:] - imgs[:, :1]).abs().amax() > 0.05  # ... drawn with different nuisance factors
    assert torch.equal(stream.batch(0)["image"], b["image"])  # deterministic per batch index
    plain = make_stream("shapes", size=32, batch_size=8, seed=3).batch(0)  # group 1 is the default stream
    ones = make_stream("shapes", size=32, batch_size=8, seed=3, group_size=1).batch(0)
    assert torch.equal(ones["image"], plain["image"])
    with pytest.raises(UserError, match="divisor"):
        make_stream("shapes", size=32, batch_size=8, group_size=3)


def test_heads_see_the_group_spread():
    clip = load_clip("vit-t32").eval()
    torch.manual_seed(0)
    cfg = get_variant("scad-mi").with_overrides(["discriminator.group_std=2"])
    assert cfg.discriminator.group_std == 2
    D = Discriminator(cfg.discriminator, clip, with_q=True).eval()  # eval: no spectral-norm power step per call
    e = F.normalize(torch.randn(4, 128), dim=1)
    same = (torch.rand(1, 3, 32, 32) * 2 - 1).expand(4, -1, -1, -1).clone()
    varied = same.clone()
    varied[1::2] = varied[1::2].flip(-1)  # the second of each pair differs from the first
    feats_s, _ = D.taps(same)
    feats_v, _ = D.taps(varied)
    # image 0 of each pair is identical in both batches: only the group-std channel can change its logit
    l_s = D.semantic.logits(D.semantic.trunk(feats_s), e).full
    l_v = D.semantic.logits(D.semantic.trunk(feats_v), e).full
    assert (l_s[0] - l_v[0]).abs() > 1e-6
    p_s, _ = D.fidelity(same)
    p_v, _ = D.fidelity(varied)
    assert (p_s.full[0] - p_v.full[0]).abs().amax() > 1e-6
    # without the option, image 0's logits do not depend on its group mates
    D0 = Discriminator(get_variant("scad-mi").discriminator, clip, with_q=True).eval()
    a, _ = D0.fidelity(same)
    b, _ = D0.fidelity(varied)
    assert torch.allclose(a.full[0], b.full[0], atol=1e-6)


def test_mismatch_roll_skips_the_group():
    e = torch.arange(8.0).view(8, 1)
    assert roll_captions(e).flatten().tolist() == [1, 2, 3, 4, 5, 6, 7, 0]
    assert roll_captions(e, 4).flatten().tolist() == [4, 5, 6, 7, 0, 1, 2, 3]


def test_config_errors():
    with pytest.raises(UserError, match="group_std"):
        DiscriminatorConfig(group_std=1).validate()
    with pytest.raises(UserError, match="multiple"):
        validate(GanTrainConfig(variant="scad", batch_size=6, overrides=("discriminator.group_std=4",)))
    with pytest.raises(UserError, match="shapes worlds"):
        validate(GanTrainConfig(variant="scad", data="digits", overrides=("discriminator.group_std=4",)))


def test_training_with_group_std(tmp_path):
    cfg = GanTrainConfig(
        variant="scad-dd",
        overrides=("discriminator.group_std=2",),
        clip="vit-t32",
        out=str(tmp_path / "run"),
        steps=3,
        batch_size=4,
        ckpt_every=0,
        log_every=1,
        sample_every=0,
        eval_every=-1,
        progress=False,
        threads=1,
    )
    path = train_gan(cfg)
    assert path.is_file()
    log = [json.loads(ln) for ln in (tmp_path / "run/train.log").read_text().splitlines()]
    steps = [r for r in log if "G/loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["D/loss"])) for r in steps)
    saved = json.loads((tmp_path / "run/config.json").read_text())
    assert saved["gan"]["discriminator"]["group_std"] == 2
