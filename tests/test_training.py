"""CLIP training: loss equation, exact resume, two-process data parallelism, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
        data="shapes",
        model="vit-t32",
        out=str(out),
        steps=6,
        batch_size=8,
        warmup_steps=2,
        ckpt_every=3,
        progress=False,
        log_every=1,
        threads=1,
    )
    base.update(kw)
    return ClipTrainConfig(**base)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_clip(path).model.state_dict()


def _log_records(run_dir: Path) -> list[dict]:
    """The JSON lines of a run's ``train.log`` (free-text notes skipped)."""
    lines = (run_dir / "train.log").read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.startswith("{")]


def test_resume_continues_exactly(tmp_path):
    straight = train_clip(_cfg(tmp_path / "a"))
    # interrupted run: a zero time budget stops it after its first step (and checkpoints it), then resume to 6
    part = _cfg(tmp_path / "b", steps=6)
    train_clip(dataclasses.replace(part, max_minutes=0.0))
    first = _log_records(tmp_path / "b")
    assert [r["step"] for r in first] == [1, 1] and first[-1]["done"]  # one step logged, then "done" at step 1
    resumed = train_clip(dataclasses.replace(part, resume=True))
    # the resumed run starts at step 2: its first logged step is 2 (a restart from 0 would log 1 again), and its
    # per-step losses equal the straight run's (same data batches at the same steps)
    rec_a = [r for r in _log_records(tmp_path / "a") if "loss" in r]
    rec_b = [r for r in _log_records(tmp_path / "b") if "loss" in r]
    assert [r["step"] for r in rec_b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(rec_a, rec_b, strict=True):
        # losses ≈ 2: 1e-5 ≈ 40 float32 ulps; a different batch or model changes them in the 2nd-3rd digit
        assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-5) and rb["lr"] == pytest.approx(ra["lr"], abs=1e-12)
    # One thread (``_cfg``): the CPU kernels are deterministic and the resumed run repeats the straight run's op
    # sequence, so the weights agree to the bit; atol 1e-6 (~8 float32 ulps at |w| <= 1) only leaves room for a
    # different reduction order, while one missing or repeated AdamW step moves the weights by ~lr = 1e-3.
    a, b = _state(straight), _state(resumed)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    # the optimizer state was restored, not rebuilt: at steps 3 and 6 (checkpointed by the resumed run) AdamW's
    # step counts and moments equal the straight run's. A fresh optimizer at resume would count 2 and 5 steps.
    for step in (3, 6):
        sa = torch.load(tmp_path / f"a/checkpoints/step_{step:07d}/state.pt", weights_only=True)
        sb = torch.load(tmp_path / f"b/checkpoints/step_{step:07d}/state.pt", weights_only=True)
        assert sb["step"] == step and sb["scheduler"]["last_epoch"] == step
        opt_a, opt_b = sa["optimizer"]["state"], sb["optimizer"]["state"]
        assert opt_a.keys() == opt_b.keys() and len(opt_a) > 0
        for i in opt_a:
            assert float(opt_b[i]["step"]) == step, i
            for m in ("exp_avg", "exp_avg_sq"):  # same ulp argument as the weights, relative to each tensor's scale
                scale = float(opt_a[i][m].abs().max())
                torch.testing.assert_close(opt_b[i][m], opt_a[i][m], rtol=1e-5, atol=1e-6 * scale + 1e-30)
    ckpts = sorted((tmp_path / "b" / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_0000003", "step_0000006"]  # step_0000001 pruned (keep 2)
    assert all((c / "state.pt").is_file() and (c / "model.safetensors").is_file() for c in ckpts)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["resume"] is True
    assert list((tmp_path / "b" / "logs").rglob("events.out.tfevents*"))


def test_existing_run_requires_resume(tmp_path):
    train_clip(_cfg(tmp_path / "r", steps=1))
    with pytest.raises(UserError, match="--resume"):
        train_clip(_cfg(tmp_path / "r", steps=1))
    with pytest.raises(UserError, match="no checkpoint"):
        train_clip(_cfg(tmp_path / "fresh", resume=True))


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 1}, "batch-size"),
        ({"data": "imagenet"}, "shapes"),
        ({"positives": "both"}, "positives"),
        ({"model": "vit-t46"}, "did you mean"),
    ],
)
def test_bad_training_input(tmp_path, kw, msg):
    with pytest.raises(UserError, match=msg):
        train_clip(_cfg(tmp_path / "bad", **kw))
    assert not (tmp_path / "bad" / "checkpoints").exists()


@pytest.mark.slow  # two accelerate processes: ~25 s on a loaded 2-core machine
def test_two_processes_identical_weights_disjoint_samples(tmp_path):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "clip_t2i.cli",
        "train-clip",
        "--data",
        "shapes",
        "--model",
        "vit-t32",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--warmup-steps",
        "1",
        "--ckpt-every",
        "0",
        "--out",
        str(out),
        "--record-samples",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    # identical weights on both ranks: each rank hashed its own final weights, and the saved file is those weights
    h0 = (out / "weights_rank0.sha1").read_text().strip()
    h1 = (out / "weights_rank1.sha1").read_text().strip()
    final = load_clip(out / "final.safetensors").model.state_dict()
    assert h0 == h1 == _weights_sha1(final)
    s0 = set((out / "samples_rank0.txt").read_text().split())
    s1 = set((out / "samples_rank1.txt").read_text().split())
    assert len(s0) == 24 and len(s1) == 24  # 3 steps × 8 images, all distinct within a rank
    assert not s0 & s1
    # the weights moved away from the initialisation by what 3 AdamW steps can do, no less and no more
    with torch.random.fork_rng():
        torch.manual_seed(0)  # train_clip seeds with --seed (0) right before building the model
        init = load_clip("vit-t32").model.state_dict()
    # lr per step: warm-up 1 then cosine over 3 steps -> 2e-3, 2e-3, 1e-3. An AdamW step moves a coordinate by at
    # most lr·(r_t + wd·|w|), r_t = sup |m̂/√v̂| <= 1.003 for t <= 3 (Cauchy-Schwarz, betas (0.9, 0.98)).
    lrs = [2e-3, 2e-3, 1e-3]
    r = max(_adam_ratio_bound(0.9, 0.98, t) for t in (1, 2, 3))
    assert 1.0 <= r < 1.01
    deltas = []
    for k, w0 in init.items():
        d = (final[k] - w0).abs()
        bound = sum(lrs) * (r + 0.1 * (float(w0.abs().max()) + sum(lrs))) + 1e-6  # + float32 rounding
        assert float(d.max()) <= bound, (k, float(d.max()), bound)
        deltas.append(d.flatten())
    # the first Adam step alone moves every coordinate with a non-zero gradient by ≈ lr = 2e-3; a run that did
    # not train (or trained only a few tensors) leaves the typical coordinate where it was
    assert float(torch.cat(deltas).median()) > 1e-3


def _weights_sha1(state: dict[str, torch.Tensor]) -> str:
    """The digest ``train_clip --record-samples`` writes per rank (sorted names + float32 bytes)."""
    digest = hashlib.sha1()
    for k, v in sorted(state.items()):
        digest.update(k.encode() + v.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


def _adam_ratio_bound(beta1: float, beta2: float, t: int) -> float:
    """sup over gradient histories of |m̂_t / √v̂_t| for Adam (eps -> 0).

    m_t = Σ a_i g_i, v_t = Σ b_i g_i² with a_i = (1-β1)β1^(t-i), b_i = (1-β2)β2^(t-i); Cauchy-Schwarz gives
    |m_t| <= sqrt(Σ a_i²/b_i) sqrt(v_t), and the bias corrections scale by sqrt(1-β2^t) / (1-β1^t).
    """
    s = sum(((1 - beta1) * beta1 ** (t - i)) ** 2 / ((1 - beta2) * beta2 ** (t - i)) for i in range(1, t + 1))
    return (1 - beta2**t) ** 0.5 / (1 - beta1**t) * s**0.5


def test_cli_train_dry_run_and_bad_data(tmp_path):
    from cli_runner import run_cli

    r = run_cli("train-clip", "--dry-run", "--steps", "5", cwd=tmp_path)
    assert r.returncode == 0 and '"steps": 5' in r.stdout
    out = tmp_path / "x"
    r = run_cli("train-clip", "--data", "nope", "--out", str(out), "--steps", "1")
    assert r.returncode == 2 and r.stderr.startswith("error:") and r.stderr.count("\n") == 1
    assert not out.exists()  # nothing written: not even config.json or a log
