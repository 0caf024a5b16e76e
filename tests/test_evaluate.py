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


def _fake_generations(folder: Path, n_prompts: int = 4, per_prompt: int = 3, size: int = 64) -> None:
    """Clean renders standing in for generated images, saved the way `generate` saves them."""
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


def test_evaluate_folder_all_metrics(tmp_path):
    _fake_generations(tmp_path / "gen")
    rep = evaluate_folder(tmp_path / "gen", n_reference=200)
    m = rep["metrics"]
    assert rep["n_images"] == 12 and rep["n_prompts"] == 4 and rep["domain"] == "shapes"
    assert m["judge"]["all"] > 0.9  # clean renders of their own prompts
    assert m["fid"] >= 0 and 0 <= m["prdc"]["precision"] <= 1
    assert 0 < m["mppd"] < 1 and len(m["ppd_per_prompt"]) == 4
    assert m["vendi"] >= 1
    assert m["clip_score"]["value"] > 0 and m["clip_score"]["same_model"] is False
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
    rep = evaluate_folder(tmp_path / "gen", metrics=("clip_score",))
    assert rep["metrics"]["clip_score"]["same_model"] is True
    assert rep["warnings"]


def test_bad_input(tmp_path):
    with pytest.raises(UserError, match="no generated .png"):
        (tmp_path / "empty").mkdir()
        evaluate_folder(tmp_path / "empty")
    _fake_generations(tmp_path / "one", n_prompts=2, per_prompt=1)
    with pytest.raises(UserError, match="at least 2 images"):
        evaluate_folder(tmp_path / "one", metrics=("mppd",))
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
        [sys.executable, "-m", "clip_t2i.cli", "evaluate", str(tmp_path / "gen"), "--metrics", "judge,mppd,fid",
         "--n-reference", "100", "--json"],
        capture_output=True, text=True, timeout=300,
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
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 2 and "holds no prompts" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
