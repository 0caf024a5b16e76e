"""GAN training loop, sampling API/CLI and bad input (tiny: vit-t32, 32 px, batch 4, 1 thread)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clip_t2i.errors import UserError
from clip_t2i.gan.train import GanTrainConfig, train_gan

torch.set_num_threads(1)


def _cfg(out: Path, **kw) -> GanTrainConfig:
    base = dict(variant="scad-dd", clip="vit-t32", out=str(out), steps=4, batch_size=4, ckpt_every=2, log_every=1,
                sample_every=0, eval_every=-1, progress=False, threads=1)
    base.update(kw)
    return GanTrainConfig(**base)


def test_resume_is_exact(tmp_path):
    full = train_gan(_cfg(tmp_path / "full"))
    first = _cfg(tmp_path / "split", steps=2)
    train_gan(first)
    resumed = train_gan(_cfg(tmp_path / "split", resume=True))
    a, b = load_file(str(full)), load_file(str(resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    state_a = torch.load(tmp_path / "full/checkpoints/step_0000004/state.pt", weights_only=True)
    state_b = torch.load(tmp_path / "split/checkpoints/step_0000004/state.pt", weights_only=True)
    assert all(torch.equal(state_a["D"][k], state_b["D"][k]) for k in state_a["D"])  # incl. spectral-norm u, v
    assert json.loads((tmp_path / "full/config.json").read_text())["gan"]["name"] == "scad-dd"
    with pytest.raises(UserError, match="already holds checkpoints"):
        train_gan(_cfg(tmp_path / "full"))


def test_nan_step_is_skipped_and_logged(tmp_path, monkeypatch):
    from clip_t2i.gan import losses

    orig = losses.GanLoss.discriminator
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        loss, st = orig(self, *a, **k)
        calls["n"] += 1
        return (loss * float("nan"), st) if calls["n"] == 2 else (loss, st)

    monkeypatch.setattr(losses.GanLoss, "discriminator", poisoned)
    final = train_gan(_cfg(tmp_path / "nan", variant="galip", steps=3, ckpt_every=0))
    log = (tmp_path / "nan/train.log").read_text()
    assert '"skip": "D"' in log and '"D": 1' in log
    assert all(torch.isfinite(v).all() for v in load_file(str(final)).values())


def test_time_budget_and_eval_and_samples(tmp_path):
    from clip_t2i.gan.evaluate import EvalSpec, GanEvaluator
    from clip_t2i.gan.model import load_gan
    from clip_t2i.metrics.judge import ShapesJudge

    cfg = _cfg(tmp_path / "b", variant="scad", steps=50, max_minutes=0.0001, sample_every=1, eval_every=-1)
    final = train_gan(cfg)
    assert load_gan(final).steps == 1
    assert (tmp_path / "b/samples/step_0000001.png").is_file()
    gan = load_gan(final)
    spec = EvalSpec(n_fid=12, n_real=24, ppd_prompts=3, ppd_per_prompt=2, heldout_per_label=1)
    res = GanEvaluator(gan.clip, "shapes", 32, spec, judge=None)(gan.G)
    assert res["judge"] is None and res["fid_clip"] >= 0 and 0 <= res["mppd_clip"] <= 2
    torch.manual_seed(0)
    res = GanEvaluator(gan.clip, "shapes", 32, spec, judge=ShapesJudge(input_size=32).eval())(gan.G)
    for key in ("fid_judge", "mppd_judge", "mppd_judge_real", "judge_all", "judge_colour", "judge_heldout_all"):
        assert key in res, key
    from clip_t2i.backbones import load_clip

    other = load_clip("vit-t32").eval()  # an independent (here: untrained) CLIP for the CLIP score
    res = GanEvaluator(gan.clip, "shapes", 32, spec, judge=None, eval_clip=other)(gan.G)
    assert 0 <= res["clip_score_eval"] <= 100 and 0 <= res["clip_score_eval_real"] <= 100


def test_sample_api_png_chunks_and_seeds(tmp_path):
    from PIL import Image

    import clip_t2i.gan as gan_pkg

    final = train_gan(_cfg(tmp_path / "s", variant="galip", steps=1, ckpt_every=0))
    out = tmp_path / "imgs"
    res = gan_pkg.sample(final, ["a red circle", "a blue square"], n=3, seed=5, out=out)
    assert res.images.shape == (6, 3, 32, 32) and res.seeds == [5, 6, 7, 5, 6, 7]
    assert 0 <= float(res.images.min()) and float(res.images.max()) <= 1
    png = out / "001_a-blue-square_s6.png"
    text = Image.open(png).text
    assert text["prompt"] == "a blue square" and text["seed"] == "6" and "final.safetensors" in text["model"]
    side = json.loads(png.with_suffix(".json").read_text())
    assert side["prompt"] == "a blue square" and side["seed"] == 6 and side["settings"]["variant"] == "galip"
    again = gan_pkg.sample(final, "a blue square", n=2, seed=6)  # same seed -> same image, any batch
    assert torch.allclose(again.images[0], res.images[4], atol=1e-6)
    with pytest.raises(UserError, match="empty prompt"):
        gan_pkg.sample(final, ["ok", "  "], n=1)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "clip_t2i.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_cli_bad_input_one_line_exit_2_no_files(tmp_path):
    from clip_t2i.backbones import load_clip
    from clip_t2i.gan.model import save_gan
    from clip_t2i.gan.networks import Generator
    from clip_t2i.gan.variants import get_variant

    clip = load_clip("vit-t32")
    cfg = get_variant("galip")
    G = Generator(cfg.generator, clip)
    untrained = save_gan(tmp_path / "untrained.safetensors", G, clip, cfg, "vit-t32", steps=0)
    mismatched = save_gan(tmp_path / "mismatch.safetensors", G, clip, cfg, "vit-t32", steps=3, embed_clip="never")
    (tmp_path / "empty.txt").write_text("\n  \n# nothing\n")
    trained = save_gan(tmp_path / "ok.safetensors", G, clip, cfg, "vit-t32", steps=3)
    cases = [
        (["sample", "--gan", str(untrained), "a red circle", "--out", "o1"], "untrained", "o1"),
        (["sample", "--gan", str(mismatched), "a red circle", "--out", "o2"], "different CLIP", "o2"),
        (["sample", "--gan", str(trained), "--prompts", "empty.txt", "--out", "o3"], "no prompts", "o3"),
        (["sample", "--gan", str(trained), "", "--out", "o4"], "empty prompt", "o4"),
        (["train-gan", "--clip", "vit-t32", "--resolution", "100", "--out", "r1"], "cannot be reached", "r1"),
        (["train-gan", "--clip", "vit-t32", "--mi-weight", "-1", "--out", "r2"], "mi_weight", "r2"),
        (["train-gan", "--clip", "rn-t64", "--steps", "1", "--out", "r3"], "ViT", "r3"),
    ]
    for args, needle, out in cases:
        r = _cli(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr[-500:])
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], (args, r.stderr[-500:])
        assert not (tmp_path / out).exists(), args
    r = _cli("sample", "--gan", str(trained), "a red circle", "--n", "2", "--out", "good", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-500:]
    assert len(json.loads(r.stdout)["images"]) == 2 and len(list((tmp_path / "good").glob("*.png"))) == 2
    r = _cli("eval-gan", str(trained), "--eval-clip", "vit-t32", "--judge", "none", "--n-fid", "8", "--json",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-500:]
    row = json.loads(r.stdout)["results"][0]
    assert row["variant"] == "galip" and row["steps"] == 3 and row["fid_clip"] >= 0 and "clip_score_eval" in row
    r = _cli("eval-gan", str(untrained), cwd=tmp_path)
    assert r.returncode == 2 and "untrained" in r.stderr


def test_two_processes_stay_in_sync(tmp_path):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "clip_t2i.cli", "train-gan",
           "--variant", "scad-mi", "--clip", "vit-t32", "--steps", "3", "--batch-size", "4", "--ckpt-every", "2",
           "--sample-every", "0", "--eval-every", "-1", "--threads", "1", "--out", str(out), "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    log = [json.loads(ln) for ln in (out / "train.log").read_text().splitlines()]
    assert log[0]["num_processes"] == 2
    done = log[-1]
    assert done["done"] and done["step"] == 3 and done["ranks_in_sync"] is True
    assert sum(1 for rec in log if rec.get("done")) == 1  # only the main process writes
    assert (out / "final.safetensors").is_file() and (out / "checkpoints" / "step_0000002").is_dir()
