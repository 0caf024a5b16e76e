"""Robust fine-tuning: frozen text tower, attack modes stay in the ball, exact resume, NaN skip, CLIPAG export."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from clip_t2i.backbones import load_clip
from clip_t2i.errors import UserError
from clip_t2i.robust.finetune import (
    AdversarialStep,
    ImageTower,
    RobustTrainConfig,
    effective_eps,
    export_clipag,
    freeze_text_tower,
    robustify,
    validate,
    verify_clipag_export,
)
from clip_t2i.robust.objectives import ClipagObjective, get_objective

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def start_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "start.safetensors"
    load_clip("vit-t32").save(path)
    return path


def _cfg(out: Path, model: Path, **kw) -> RobustTrainConfig:
    base = dict(
        data="shapes",
        model=str(model),
        out=str(out),
        steps=4,
        batch_size=8,
        warmup_steps=1,
        ckpt_every=2,
        progress=False,
        log_every=1,
        lr=1e-3,
        eps=3.0,
    )
    base.update(kw)
    return RobustTrainConfig(**base)


def _sd(path) -> dict[str, torch.Tensor]:
    return load_clip(path).model.state_dict()


def test_text_tower_frozen_image_tower_trained(tmp_path, start_model):
    final = robustify(_cfg(tmp_path / "r", start_model, attack="pgd", attack_steps=2), echo=None)
    before, after = load_clip(start_model), load_clip(final)
    text_names = {n for n, p in before.model.named_parameters() if any(p is q for q in before.text_parameters())}
    b, a = before.model.state_dict(), after.model.state_dict()
    assert text_names and all(torch.equal(b[n], a[n]) for n in text_names)
    assert torch.equal(b["logit_scale"], a["logit_scale"])
    changed = [n for n in b if n.startswith("visual.") and not torch.equal(b[n], a[n])]
    assert len(changed) > 10
    assert after.config["robust"]["eps"] == pytest.approx(effective_eps(3.0, 32))


@pytest.mark.parametrize("attack", ["fast", "free", "pgd"])
def test_attack_modes_stay_in_ball(start_model, attack):
    clip = load_clip(start_model)
    freeze_text_tower(clip)
    clip.train()
    tower = ImageTower(clip)
    opt = torch.optim.AdamW([p for p in tower.parameters() if p.requires_grad], lr=1e-3)
    from clip_t2i.data import make_stream

    stream = iter(make_stream("shapes", size=32, batch_size=8, seed=0))
    eps = 0.5
    step = AdversarialStep(clip, tower, get_objective("clipag"), opt, attack=attack, eps=eps, attack_steps=2)
    batch = next(stream)
    x = batch["image"]
    if attack != "free":
        t = step.targets(batch)
        x_adv = step.perturb(x, t, eps, torch.Generator().manual_seed(0))
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        d = (x_adv - x).flatten(1).norm(dim=1)
        assert (d <= eps + 1e-5).all() and d.mean() > 0.2 * eps
        loss_clean = step.objective.per_sample(clip.encode_image(x, normalize=False), t).mean()
        loss_adv = step.objective.per_sample(clip.encode_image(x_adv, normalize=False), t).mean()
        assert loss_adv > loss_clean
    for k in range(3):  # free: the same minibatch replayed, δ carried over and grown
        stats = step([batch], step=k, eps=eps)
        assert stats is not None and torch.isfinite(torch.tensor(stats["loss"]))
    if attack == "free":
        delta = step.delta[0]
        assert ((x + delta).min() >= 0) and ((x + delta).max() <= 1)
        norms = delta.flatten(1).norm(dim=1)
        assert (norms <= eps + 1e-5).all() and norms.mean() > 0.5 * eps


@pytest.mark.parametrize("attack", ["pgd", "free"])
def test_resume_continues_exactly(tmp_path, start_model, attack):
    kw = dict(attack=attack, free_replays=3, steps=5, ckpt_every=2)
    straight = robustify(_cfg(tmp_path / "a", start_model, **kw), echo=None)
    part = _cfg(tmp_path / "b", start_model, **kw)
    robustify(dataclasses.replace(part, max_minutes=0.0), echo=None)  # stops after step 1 (mid-replay for free)
    resumed = robustify(dataclasses.replace(part, resume=True), echo=None)
    a, b = _sd(straight), _sd(resumed)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert (tmp_path / "b" / "config.json").is_file()
    assert list((tmp_path / "b" / "logs").rglob("events.out.tfevents*"))


def test_nan_step_is_skipped_and_logged(tmp_path, start_model, monkeypatch):
    calls = {"n": 0}
    original = ClipagObjective.__call__

    def flaky(self, feats, t):
        calls["n"] += 1
        loss = original(self, feats, t)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(ClipagObjective, "__call__", flaky)
    final = robustify(_cfg(tmp_path / "n", start_model, attack="fast", steps=3), echo=None)
    log = (tmp_path / "n" / "train.log").read_text()
    assert "step 1: non-finite loss" in log and '"skipped": 1' in log
    assert all(torch.isfinite(v).all() for v in _sd(final).values() if v.is_floating_point())


def test_clipag_layout_round_trip(tmp_path, start_model):
    clip = load_clip(start_model)
    path = export_clipag(clip, tmp_path / "CLIPAG_tiny.pt")
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict"} and all(k.startswith("module.") for k in raw["state_dict"])
    back = load_clip("vit-t32", pretrained=str(path))
    for k, v in clip.model.state_dict().items():
        assert torch.equal(v, back.model.state_dict()[k]), k
    verify_clipag_export(clip, path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(clip.encode_image(x), back.encode_image(x))


def test_robustify_writes_clipag_export(tmp_path, start_model):
    out = tmp_path / "e"
    final = robustify(_cfg(out, start_model, steps=1, export_clipag=str(out / "clipag.pt")), echo=None)
    a, b = _sd(final), load_clip("vit-t32", pretrained=str(out / "clipag.pt")).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"eps": 0.0}, "eps"),
        ({"eps": -1.0}, "eps"),
        ({"attack_steps": 0}, "attack-steps"),
        ({"objective": "trades"}, "unknown objective"),
        ({"norm": "l1"}, "unknown norm"),
        ({"attack": "cw"}, "unknown attack"),
        ({"free_replays": 0}, "free-replays"),
        ({"objective": "tecoa", "data": "/nonexistent"}, "class prompts"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_input(tmp_path, start_model, kw, msg):
    with pytest.raises(UserError, match=msg):
        validate(_cfg(tmp_path / "bad", start_model, **kw))
    with pytest.raises(UserError, match=msg):
        robustify(_cfg(tmp_path / "bad", start_model, **kw), echo=None)
    assert not (tmp_path / "bad").exists()


def test_text_tower_sharing_weights_cannot_be_frozen(start_model):
    clip = load_clip(start_model)
    shared = clip.model.visual.transformer.resblocks[0].ln_1.weight  # both towers have width 128
    clip.model.transformer.resblocks[0].ln_1.weight = shared
    with pytest.raises(UserError, match="cannot be frozen"):
        freeze_text_tower(clip)


def _cli(*args: str):
    from cli_runner import run_cli

    return run_cli(*args)


def test_cli_errors_are_one_line_exit_2(tmp_path, start_model):
    for args in (
        ["robustify", "--model", str(start_model), "--out", str(tmp_path / "c"), "--eps", "0"],
        ["robustify", "--model", str(start_model), "--out", str(tmp_path / "c"), "--objective", "nope"],
        ["eval-robust", "--model", str(start_model), "--eps", "1,-2"],
        ["pag", "--model", str(start_model), "--n", "0"],
    ):
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr[-500:])
        assert r.stderr.startswith("error:") and r.stderr.count("\n") == 1, r.stderr
    r = _cli("robustify", "--dry-run", "--eps", "4", "--attack", "free")
    assert r.returncode == 0 and '"eps": 4.0' in r.stdout and '"attack": "free"' in r.stdout


def test_digits_with_quick_eval(tmp_path):
    torch.manual_seed(0)
    start = tmp_path / "d.safetensors"
    load_clip("vit-t32").save(start)
    robustify(_cfg(tmp_path / "d", start, data="digits", steps=1, eval_every=1, objective="tecoa"), echo=None)
    log = (tmp_path / "d" / "train.log").read_text()
    assert '"eval": {"clean"' in log and "pgd10" in log
