"""GAN training loop, sampling API/CLI and bad input (tiny: vit-t32, 32 px, batch 4, 1 thread)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clip_t2i.errors import UserError
from clip_t2i.gan.train import GanTrainConfig, train_gan

torch.set_num_threads(1)


def _cfg(out: Path, **kw) -> GanTrainConfig:
    base = dict(
        variant="scad-dd",
        clip="vit-t32",
        out=str(out),
        steps=4,
        batch_size=4,
        ckpt_every=2,
        log_every=1,
        sample_every=0,
        eval_every=-1,
        progress=False,
        threads=1,
    )
    base.update(kw)
    return GanTrainConfig(**base)


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "train.log").read_text().splitlines()]


def test_resume_is_exact(tmp_path):
    full = train_gan(_cfg(tmp_path / "full"))
    first = _cfg(tmp_path / "split", steps=2)
    train_gan(first)
    resumed = train_gan(_cfg(tmp_path / "split", resume=True))
    # the second run resumed at step 2: its start record says so and it logged steps 3, 4 only (a silent restart
    # from 0 would reproduce the full run's weights too, but log start_step 0 and steps 1..4 again)
    log = _log(tmp_path / "split")
    assert [r["start_step"] for r in log if "start_step" in r] == [0, 2]
    assert [r["step"] for r in log if "G/loss" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in log if r.get("done")] == [2, 4]
    # One thread, fixed z per (seed, rank, step), the stream restarted at batch 2: the resumed run repeats the
    # full run's op sequence, so everything is bit-identical (no tolerance needed, and any would hide a drift).
    a, b = load_file(str(full)), load_file(str(resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    state_a = torch.load(tmp_path / "full/checkpoints/step_0000004/state.pt", weights_only=True)
    state_b = torch.load(tmp_path / "split/checkpoints/step_0000004/state.pt", weights_only=True)
    assert state_b["step"] == 4
    assert all(torch.equal(state_a["D"][k], state_b["D"][k]) for k in state_a["D"])  # incl. spectral-norm u, v
    # both Adam optimisers were restored, not rebuilt: 4 steps counted and the same moments as the full run
    # (a fresh optimiser at resume would count 2 steps and hold different moments)
    for opt in ("opt_g", "opt_d"):
        sa, sb = state_a[opt]["state"], state_b[opt]["state"]
        assert sa.keys() == sb.keys() and len(sa) > 0
        for i in sa:
            assert float(sb[i]["step"]) == 4, (opt, i)
            assert torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) and torch.equal(
                sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]
            )
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
    assert res["judge"] is None
    # FID on CLIP features from its definition (not a sign the code clamps to): the fakes for the first n_fid
    # real captions with seeds 1000·seed + i against the n_real real renders. Same float32 embeddings, float64
    # Fréchet distance: agreement to 1e-4 relative (a different seed, prompt or image set moves it by far more)
    from clip_t2i.data.shapes import shapes_eval_set
    from clip_t2i.gan.sample import generate
    from clip_t2i.metrics.clip_score import compute_clip_score
    from clip_t2i.metrics.frechet import frechet_distance

    real = shapes_eval_set("one", "train", n=spec.n_real, seed=spec.seed, size=32)
    prompts = list(real["caption"][: spec.n_fid])
    fakes = generate(gan.G, gan.clip, prompts, [spec.seed * 1000 + i for i in range(spec.n_fid)])
    with torch.no_grad():
        fid = frechet_distance(gan.clip.encode_image(fakes), gan.clip.encode_image(real["image"]))
    assert res["fid_clip"] == pytest.approx(float(fid), rel=1e-4) and res["fid_clip"] > 0.01
    torch.manual_seed(0)
    res = GanEvaluator(gan.clip, "shapes", 32, spec, judge=ShapesJudge(input_size=32).eval())(gan.G)
    for key in ("fid_judge", "mppd_judge", "mppd_judge_real", "judge_all", "judge_colour", "judge_heldout_all"):
        assert key in res, key
    from clip_t2i.backbones import load_clip

    other = load_clip("vit-t32").eval()  # an independent (here: untrained) CLIP for the CLIP score
    res = GanEvaluator(gan.clip, "shapes", 32, spec, judge=None, eval_clip=other)(gan.G)
    # the scores of the fakes and of the real renders with *that* CLIP (not a [0, 100] range the code clamps to)
    kw = {"eval_model_id": "eval-clip", "guide_model_id": "gan-clip"}
    assert res["clip_score_eval"] == pytest.approx(compute_clip_score(fakes, prompts, other, **kw).score, abs=1e-4)
    want_real = compute_clip_score(real["image"][: spec.n_fid], prompts, other, **kw).score
    assert res["clip_score_eval_real"] == pytest.approx(want_real, abs=1e-4)  # 100·cos: 1e-4 ≈ 1e-6 in cos


def test_sample_api_png_chunks_and_seeds(tmp_path):
    from PIL import Image

    import clip_t2i.gan as gan_pkg

    final = train_gan(_cfg(tmp_path / "s", variant="galip", steps=1, ckpt_every=0))
    out = tmp_path / "imgs"
    res = gan_pkg.sample(final, ["a red circle", "a blue square"], n=3, seed=5, out=out)
    assert res.images.shape == (6, 3, 32, 32) and res.seeds == [5, 6, 7, 5, 6, 7]
    # image 4 (prompt 2, seed 6) is G(z, e) computed here directly: z ~ N(0, I) seeded 6, e the prompt's
    # embedding, tanh-range output mapped to [0, 1]. Batch 1 vs 6 may change conv reduction orders: a few float32
    # ulps per layer on |x| <= 1, ~1e-6 after the ~10 layers; atol 1e-5 (a wrong seed or prompt differs by ~0.1)
    from clip_t2i.gan.model import load_gan
    from clip_t2i.gan.networks import text_embedding

    gan = load_gan(final)
    z = torch.randn(gan.G.z_dim, generator=torch.Generator().manual_seed(6))[None]
    with torch.no_grad():
        ref = gan.G(z, text_embedding(gan.clip, ["a blue square"])).clamp(-1, 1)[0] * 0.5 + 0.5
    assert torch.allclose(res.images[4], ref, atol=1e-5)
    assert not torch.allclose(res.images[4], res.images[3], atol=1e-2)  # another seed, another image
    png = res.paths[4]  # the file-name scheme is outputs.image_stem's (being reworked elsewhere): not pinned here
    assert png.parent == out and png.is_file() and "a-blue-square" in png.name
    pixels = torch.from_numpy(np.array(Image.open(png).convert("RGB"))).permute(2, 0, 1).float() / 255
    assert (pixels - res.images[4]).abs().max() <= 0.5 / 255 + 1e-6  # the PNG holds that image, rounded to 8 bit
    text = Image.open(png).text
    assert text["prompt"] == "a blue square" and text["seed"] == "6" and "final.safetensors" in text["model"]
    side = json.loads(png.with_suffix(".json").read_text())
    assert side["prompt"] == "a blue square" and side["seed"] == 6 and side["settings"]["variant"] == "galip"
    again = gan_pkg.sample(final, "a blue square", n=2, seed=6)  # same seed -> same image, any batch
    assert torch.allclose(again.images[0], res.images[4], atol=1e-6)
    with pytest.raises(UserError, match="empty prompt"):
        gan_pkg.sample(final, ["ok", "  "], n=1)


def _cli(*args: str, cwd: Path):
    from cli_runner import run_cli

    return run_cli(*args, cwd=cwd)


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
    r = _cli(
        "eval-gan", str(trained), "--eval-clip", "vit-t32", "--judge", "none", "--n-fid", "8", "--json", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-500:]
    row = json.loads(r.stdout)["results"][0]
    assert row["variant"] == "galip" and row["steps"] == 3 and row["fid_clip"] >= 0 and "clip_score_eval" in row
    r = _cli("eval-gan", str(untrained), cwd=tmp_path)
    assert r.returncode == 2 and "untrained" in r.stderr


@pytest.mark.slow  # two accelerate processes
def test_two_processes_stay_in_sync(tmp_path):
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
        "train-gan",
        "--variant",
        "scad-mi",
        "--clip",
        "vit-t32",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--ckpt-every",
        "2",
        "--sample-every",
        "0",
        "--eval-every",
        "-1",
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    log = [json.loads(ln) for ln in (out / "train.log").read_text().splitlines()]
    assert log[0]["num_processes"] == 2
    done = log[-1]
    assert done["done"] and done["step"] == 3 and done["ranks_in_sync"] is True
    assert sum(1 for rec in log if rec.get("done")) == 1  # only the main process writes
    assert (out / "final.safetensors").is_file() and (out / "checkpoints" / "step_0000002").is_dir()


def test_mode_seeking_runs_and_logs_its_term(tmp_path):
    train_gan(_cfg(tmp_path / "ms", variant="scad", steps=2, overrides=("loss.ms_weight=0.1",)))
    steps = [r for r in _log(tmp_path / "ms") if "G/loss" in r]
    assert len(steps) == 2 and all(0 < r["G/ms"] < 1e4 for r in steps)
