"""CLIP training: loss equation, exact resume, two-process data parallelism, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clip_t2i.backbones import load_clip
from clip_t2i.errors import UserError
from clip_t2i.training.clip_train import ClipTrainConfig, train_clip
from clip_t2i.training.losses import multi_positive_info_nce, positive_mask

torch.set_num_threads(1)


def test_info_nce_unique_captions_equals_clip_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 6, generator=g) * 3
    ref = 0.5 * (
        torch.nn.functional.cross_entropy(logits, torch.arange(6))
        + torch.nn.functional.cross_entropy(logits.T, torch.arange(6))
    )
    got = multi_positive_info_nce(logits, positive_mask(["a", "b", "c", "d", "e", "f"]))
    assert torch.allclose(got, ref, atol=1e-6)


def test_info_nce_duplicates_are_positives():
    logits = torch.tensor([[2.0, 2.0, -1.0], [2.0, 2.0, -1.0], [-1.0, -1.0, 3.0]])
    mask = positive_mask(["x", "x", "y"])
    assert torch.equal(mask, torch.tensor([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]]))
    # hand computation: rows 0/1 put equal mass on their two positives -> target 1/2 each
    lsm = torch.log_softmax(logits, 1)
    expect_i = -(0.5 * lsm[0, 0] + 0.5 * lsm[0, 1] + 0.5 * lsm[1, 0] + 0.5 * lsm[1, 1] + lsm[2, 2]) / 3
    lsm_t = torch.log_softmax(logits, 0)
    expect_t = -(0.5 * lsm_t[0, 0] + 0.5 * lsm_t[1, 0] + 0.5 * lsm_t[0, 1] + 0.5 * lsm_t[1, 1] + lsm_t[2, 2]) / 3
    got = multi_positive_info_nce(logits, mask)
    assert torch.allclose(got, 0.5 * (expect_i + expect_t), atol=1e-6)
    labels = positive_mask(torch.tensor([3, 3, 5]))
    assert torch.equal(labels, mask)


def _cfg(out: Path, **kw) -> ClipTrainConfig:
    base = dict(
        data="shapes", model="vit-t32", out=str(out), steps=6, batch_size=8, warmup_steps=2, ckpt_every=3,
        progress=False, log_every=1,
    )
    base.update(kw)
    return ClipTrainConfig(**base)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_clip(path).model.state_dict()


def test_resume_continues_exactly(tmp_path):
    straight = train_clip(_cfg(tmp_path / "a"))
    # interrupted run: stop after 3 steps (simulated by a shorter run), then resume to 6
    part = _cfg(tmp_path / "b", steps=6)
    import dataclasses

    train_clip(dataclasses.replace(part, max_minutes=0.0))  # stops after its first step, checkpoints it
    resumed = train_clip(dataclasses.replace(part, resume=True))
    a, b = _state(straight), _state(resumed)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    ckpts = sorted((tmp_path / "b" / "checkpoints").glob("step_*"))
    assert ckpts and all((c / "state.pt").is_file() and (c / "model.safetensors").is_file() for c in ckpts)
    assert (tmp_path / "b" / "config.json").is_file()
    assert list((tmp_path / "b" / "logs").rglob("events.out.tfevents*"))


def test_existing_run_requires_resume(tmp_path):
    train_clip(_cfg(tmp_path / "r", steps=1))
    with pytest.raises(UserError, match="--resume"):
        train_clip(_cfg(tmp_path / "r", steps=1))
    with pytest.raises(UserError, match="no checkpoint"):
        train_clip(_cfg(tmp_path / "fresh", resume=True))


@pytest.mark.parametrize(
    ("kw", "msg"),
    [({"steps": 0}, "steps"), ({"batch_size": 1}, "batch-size"), ({"data": "imagenet"}, "shapes"),
     ({"positives": "both"}, "positives"), ({"model": "vit-t46"}, "did you mean")],
)
def test_bad_training_input(tmp_path, kw, msg):
    with pytest.raises(UserError, match=msg):
        train_clip(_cfg(tmp_path / "bad", **kw))
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_two_processes_identical_weights_disjoint_samples(tmp_path):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "clip_t2i.cli", "train-clip", "--data", "shapes", "--model", "vit-t32", "--steps", "3",
        "--batch-size", "8", "--warmup-steps", "1", "--ckpt-every", "0", "--out", str(out), "--record-samples",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    w0 = (out / "weights_rank0.sha1").read_text()
    w1 = (out / "weights_rank1.sha1").read_text()
    assert w0 == w1
    s0 = set((out / "samples_rank0.txt").read_text().split())
    s1 = set((out / "samples_rank1.txt").read_text().split())
    assert len(s0) == 24 and len(s1) == 24  # 3 steps × 8 images, all distinct within a rank
    assert not s0 & s1
    # the weights moved away from the initialisation
    assert load_clip(out / "final.safetensors") is not None


def test_cli_train_dry_run_and_bad_data(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "clip_t2i.cli", "train-clip", "--dry-run", "--steps", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0 and '"steps": 5' in r.stdout
    out = tmp_path / "x"
    r = subprocess.run(
        [sys.executable, "-m", "clip_t2i.cli", "train-clip", "--data", "nope", "--out", str(out), "--steps", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2 and r.stderr.startswith("error:") and r.stderr.count("\n") == 1
    assert not (out / "checkpoints").exists()
