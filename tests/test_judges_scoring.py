"""Judging bad input: prompts the judges cannot read are skipped with a count and the words named; wrong-size
images are resized with a note; the `legacy` switch; digits folders."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from clip_t2i.data.digits import DigitsDataset, canonical_caption
from clip_t2i.data.shapes import ShapesWorld
from clip_t2i.errors import UserError
from clip_t2i.metrics.judges.prompts import read_prompt
from clip_t2i.metrics.judges.scoring import judge_digits, judge_directory, judge_shapes
from clip_t2i.renderers.outputs import save_png

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("a pink circle on the left", ("pink",)),
        ("a red star at the top", ("star",)),
        ("a cyan hexagon", ("cyan", "hexagon")),
        ("a handwritten digit twelve", ("twelve",)),
        ("the number 12", ("12",)),
        ("a red circle left of a blue square", ("red", "circle", "blue", "square")),
    ],
)
def test_unreadable_prompts_name_their_words(prompt, words):
    r = read_prompt(prompt)
    assert r.domain is None and r.words == words and r.reason


def test_readable_prompts():
    assert read_prompt("a small violet disc in the middle").target == {
        "colour": 4,
        "shape": 0,
        "size": 0,
        "position": 4,
    }
    assert read_prompt("a scan of a handwritten 7").target == 7 and read_prompt("the number seven").domain == "digits"


def _save(folder, images, prompts):
    folder.mkdir()
    for i, (img, p) in enumerate(zip(images, prompts, strict=True)):
        save_png(folder / f"{i:02d}.png", img, {"prompt": p, "seed": i}, sidecar=False)


def test_directory_skips_unreadable_prompts_and_notes_resizing(tmp_path, monkeypatch, capsys):
    world = ShapesWorld(size=48, level="one", split="all")
    g = torch.Generator().manual_seed(1)
    scenes = world.sample_scenes(6, g)
    prompts = world.canonical_captions(scenes)
    prompts[4], prompts[5] = "a pink circle on the left", "a red star at the top"
    _save(tmp_path / "mixed", world.render(scenes), prompts)
    out = judge_directory(tmp_path / "mixed")
    assert out["shapes"]["n"] == 4 and out["skipped"]["n"] == 2
    assert out["skipped"]["words"] == ["pink", "star"] and out["skipped"]["items"] == ["04.png", "05.png"]
    assert any("resized 4 image(s) (48x48: 4) to 64x64" in n for n in out["shapes"]["notes"])
    assert out["shapes"]["accuracy"]["recognised"] == 1.0  # 48 px renders upsampled (measured 200 / 200 recognised)

    from clip_t2i import cli

    monkeypatch.setattr(sys, "argv", ["clip-t2i", "judge", str(tmp_path / "mixed")])
    try:
        cli.main()
    except SystemExit as e:
        assert e.code in (0, None)
    text = capsys.readouterr().out
    assert "skipped 2 image(s)" in text and "pink, star" in text and "note: resized" in text

    _save(tmp_path / "bad", world.render(scenes[:2]), ["a pink blob", "a cyan hexagon"])
    with pytest.raises(UserError, match="none of the 2 images .* words: blob, cyan, hexagon, pink"):
        judge_directory(tmp_path / "bad")
    with pytest.raises(UserError, match="--judge must be one of"):
        judge_directory(tmp_path / "mixed", judge="cnn")


def test_direct_calls_skip_and_legacy():
    world = ShapesWorld(size=64, level="one", split="all")
    scenes = world.sample_scenes(3, torch.Generator().manual_seed(2))
    prompts = [*world.canonical_captions(scenes)[:2], "a brown circle"]
    rep = judge_shapes(world.render(scenes), prompts)
    assert rep.n == 2 and rep.skipped["n"] == 1 and rep.skipped["words"] == ["brown"]
    with pytest.raises(UserError, match="unknown shapes judge"):
        judge_shapes(world.render(scenes), prompts, judge="cnn")
    test = DigitsDataset(split="test", size=32)
    images = test.images[:20].expand(-1, 3, -1, -1)
    dprompts = [canonical_caption(int(y)) for y in test.labels[:20]]
    legacy = judge_digits(images, dprompts, judge="legacy")
    assert legacy.judge == "legacy" and legacy.recognised is None and legacy.accuracy["digit"] >= 0.95


def test_digits_directory_at_another_size(tmp_path):
    test = DigitsDataset(split="test", size=64)
    images = test.images[:10].expand(-1, 3, -1, -1)
    _save(tmp_path / "d", images, [canonical_caption(int(y)) for y in test.labels[:10]])
    out = judge_directory(tmp_path / "d")["digits"]
    assert out["judge"] == "robust" and out["n"] == 10 and out["accuracy"]["digit"] >= 0.9
    assert any("to 32x32" in n for n in out["notes"])
    assert json.loads(json.dumps(out))["accuracy"] == out["accuracy"]
