"""`clip-t2i evaluate` on a folder of images with prompt metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clip_t2i.errors import UserError
from clip_t2i.metrics.report import evaluate_folder, write_report

torch.set_num_threads(1)


def _fake_generations(folder: Path, n_prompts: int = 4, per_prompt: int = 3, size: int = 64):
    """Clean renders standing in for generated images, saved the way `generate` saves them.

    Returns (the images as stored: 8-bit rounded, in file-name order; their prompts)."""
    from clip_t2i.data.shapes import ShapesWorld
    from clip_t2i.renderers.outputs import save_png

    world = ShapesWorld(size=size, split="all")
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n_prompts).repeat_interleave(per_prompt) * 7
    scenes = world.sample_scenes(len(labels), g, labels=labels)
    images, prompts = world.render(scenes), world.canonical_captions(scenes)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, p) in enumerate(zip(images, prompts, strict=True)):
        save_png(folder / f"img_{i:03d}.png", img, {"prompt": p, "seed": i % per_prompt, "model": "shapes-clipag"})
    return (images * 255).round() / 255, list(prompts)


def test_evaluate_folder_all_metrics(tmp_path):
    images, prompts = _fake_generations(tmp_path / "gen")
    rep = evaluate_folder(tmp_path / "gen", n_reference=200)
    m = rep["metrics"]
    assert rep["n_images"] == 12 and rep["n_prompts"] == 4 and rep["domain"] == "shapes"
    assert m["judge"]["all"] > 0.9  # clean renders of their own prompts
    # every number recomputed here from the images as written and the definitions (not ranges the code clamps
    # to): judge penultimate features of the 12 images vs 200 reference renders (shapes, all combinations, seed 0)
    from clip_t2i.backbones import load_clip
    from clip_t2i.data.shapes import shapes_eval_set
    from clip_t2i.metrics import compute_clip_score, compute_prdc, frechet_distance
    from clip_t2i.metrics.features import extract_features
    from clip_t2i.metrics.judge import judge_feature_extractor, load_judge

    ext = judge_feature_extractor(load_judge("shapes-judge"))
    feat = extract_features(ext, images, batch_size=128).double()
    ref = extract_features(ext, shapes_eval_set("one", "all", n=200, seed=0, size=64)["image"], batch_size=128)
    # float32 features from the same pixels: FID (float64) agrees to 1e-4 relative; PRDC counts agree exactly
    # unless a feature sits within rounding of a k-NN radius, which 1e-9 would expose
    assert m["fid"] == pytest.approx(float(frechet_distance(ref.double(), feat)), rel=1e-4)
    assert m["prdc"] == pytest.approx(compute_prdc(ref.double(), feat, k=3).as_dict(), abs=1e-9)
    assert m["prdc"]["precision"] > 0.5  # clean renders lie on the real-image manifold
    # mPPD runs on its own features (report["mppd_features"], being reworked elsewhere): only its shape here
    assert 0 < m["mppd"] < 1 and len(m["ppd_per_prompt"]) == 4
    unit = torch.nn.functional.normalize(feat, dim=1)
    lam = torch.linalg.eigvalsh(unit @ unit.T / len(unit)).clamp_min(0)  # Vendi: exp(entropy of K/n's spectrum)
    lam = lam[lam > 1e-12]
    assert m["vendi"] == pytest.approx(float(torch.exp(-(lam * lam.log()).sum())), rel=1e-4)  # as for FID
    want = compute_clip_score(
        images, prompts, load_clip("shapes-clip-rn"), eval_model_id="shapes-clip-rn", guide_model_id=None
    )
    assert m["clip_score"]["value"] == pytest.approx(want.score, abs=1e-3)  # 100·cos: 1e-3 ≈ 1e-5 in cos
    assert m["clip_score"]["eval_clip"] == "shapes-clip-rn"  # the default: independent of every guiding CLIP
    assert want.score > 80  # the independent CLIP scores clean renders of their own captions ≈ 99
    assert m["clip_score"]["same_model"] is False
    paths = write_report(rep, tmp_path / "rep")
    saved = json.loads(paths["json"].read_text())
    assert saved["metrics"]["judge"] == m["judge"]
    assert "| judge.all |" in paths["md"].read_text()
    assert paths["png"].stat().st_size > 1000


def test_same_guiding_and_evaluating_clip_warns(tmp_path):
    _fake_generations(tmp_path / "gen", n_prompts=2, per_prompt=2)
    for f in (tmp_path / "gen").glob("*.json"):
        rec = json.loads(f.read_text())
        rec["model"] = "shapes-clip"
        f.write_text(json.dumps(rec))
        f.with_suffix(".png").write_bytes(f.with_suffix(".png").read_bytes())
    from clip_t2i.renderers.outputs import read_image_record, save_png

    for png in (tmp_path / "gen").glob("*.png"):
        rec, img = read_image_record(png)
        rec["model"] = "shapes-clip"
        save_png(png, img, rec)
    rep = evaluate_folder(tmp_path / "gen", metrics=("clip_score",), eval_clip="shapes-clip")
    assert rep["metrics"]["clip_score"]["same_model"] is True
    assert rep["warnings"]


def test_bad_input(tmp_path):
    with pytest.raises(UserError, match="no generated .png"):
        (tmp_path / "empty").mkdir()
        evaluate_folder(tmp_path / "empty")
    _fake_generations(tmp_path / "one", n_prompts=2, per_prompt=1)
    rep = evaluate_folder(tmp_path / "one", metrics=("mppd",))  # not computable: skipped with its reason
    assert "mppd" not in rep["metrics"] and "at least 2 images" in rep["skipped"]["mppd"]
    with pytest.raises(UserError, match="unknown metric"):
        evaluate_folder(tmp_path / "one", metrics=("fud",))
    from PIL import Image

    (tmp_path / "nometa").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "nometa" / "x.png")
    with pytest.raises(UserError, match="no prompt metadata"):
        evaluate_folder(tmp_path / "nometa", metrics=("judge",))


def test_cli_json(tmp_path):
    _fake_generations(tmp_path / "gen", n_prompts=2, per_prompt=3)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "clip_t2i.cli",
            "evaluate",
            str(tmp_path / "gen"),
            "--metrics",
            "judge,mppd,fid",
            "--n-reference",
            "100",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"judge", "mppd", "fid"} <= set(out["metrics"])
    assert Path(out["report"]["png"]).is_file()


def test_cli_prompt_file_mode_bad_input(tmp_path):
    empty = tmp_path / "p.txt"
    empty.write_text("\n# only a comment\n")
    r = subprocess.run(
        [sys.executable, "-m", "clip_t2i.cli", "evaluate", str(tmp_path / "out"), "--prompts", str(empty)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "holds no prompts" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_metrics_that_cannot_be_computed_are_skipped_with_a_reason(tmp_path):
    """The README's flow: one prompt with two seeds, one with one; nothing refuses the whole evaluation."""
    from clip_t2i.metrics.report import evaluate_folder
    from clip_t2i.pipeline import generate

    generate(["a red circle"], model="vit-t32", seeds="0-1", steps=1, out=tmp_path)
    generate(["a blue square"], model="vit-t32", seeds="0", steps=1, out=tmp_path)
    rep = evaluate_folder(tmp_path, metrics=("fid", "prdc", "mppd", "clip_score"), n_reference=16)
    m = rep["metrics"]
    assert rep["n_images"] == 3 and "fid" in m and "mppd" in m and "clip_score" in m
    assert "prdc" not in m and "needs at least 4 images" in rep["skipped"]["prdc"]
    assert list(m["ppd_per_prompt"]) == ["a red circle"]  # the single-seed prompt is left out of mPPD ...
    assert any("left out" in w for w in rep["warnings"])  # ... and the report says so
    assert any("FID on 3 images" in w for w in rep["warnings"])  # small-N FID carries a warning
    assert m["clip_score"]["eval_clip"] == "shapes-clip-rn" and m["clip_score"]["same_model"] is False
