"""Judges through the compatibility module `clip_t2i.metrics.judge`: the legacy CNNs (FID features, `legacy`
verdicts), prompt parsing of paraphrases, judging folders and the `judge` CLI."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from clip_t2i.data.digits import _TEMPLATES, DIGIT_WORDS
from clip_t2i.data.shapes import COLOURS, ShapesWorld, shapes_eval_set
from clip_t2i.errors import UserError
from clip_t2i.metrics.judge import (
    SHAPES_ATTRIBUTES,
    judge_directory,
    judge_feature_extractor,
    judge_shapes,
    load_judge,
    parse_digits_prompt,
    parse_shapes_prompt,
    prompt_domain,
    shapes_eval_prompts,
)
from clip_t2i.renderers.outputs import save_png

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shapes_judge():
    return load_judge("shapes-judge")


def test_legacy_shapes_judge_clean_accuracy_and_features(shapes_judge):
    data = shapes_eval_set(level="one", split="all", n=480, seed=99)
    pred = shapes_judge.predict(data["image"])
    for k in SHAPES_ATTRIBUTES:
        assert float((pred[k] == data["attrs"][k]).float().mean()) >= 0.97, k
    feats = judge_feature_extractor(shapes_judge)(data["image"][:4])
    assert feats.shape == (4, 128)


def test_legacy_digits_judge_test_accuracy():
    from clip_t2i.data.digits import DigitsDataset

    judge = load_judge("digits-judge")
    test = DigitsDataset(split="test", size=32)
    acc = float((judge.predict(test.images.expand(-1, 3, -1, -1)) == test.labels).float().mean())
    assert acc >= 0.93
    colour = test.images[:8].expand(-1, 3, -1, -1) * torch.tensor([1.0, 0.3, 0.3]).view(1, 3, 1, 1)
    big = torch.nn.functional.interpolate(colour, size=64, mode="bilinear")
    assert judge.predict(big).shape == (8,)


def test_parse_every_shapes_paraphrase():
    world = ShapesWorld(level="one", split="all")
    g = torch.Generator().manual_seed(0)
    scenes = world.sample_scenes(400, g)
    attrs = world.attributes(scenes)
    for i, caption in enumerate(world.captions(scenes, g) + world.canonical_captions(scenes)):
        got = parse_shapes_prompt(caption)
        j = i % 400
        for k in SHAPES_ATTRIBUTES:
            assert got[k] == int(attrs[k][j]), (caption, k)
        assert prompt_domain(caption) == "shapes"
    assert parse_shapes_prompt("a red circle:1 | a blue square:-0.5 | blurry:-0.3")["colour"] == COLOURS.index("red")
    assert parse_shapes_prompt("a green cross") == {"colour": 1, "shape": 3, "size": None, "position": None}
    with pytest.raises(UserError, match="several colours"):
        parse_shapes_prompt("a red circle left of a blue square")


def test_parse_digit_prompts():
    for d in range(10):
        for t in _TEMPLATES:
            assert parse_digits_prompt(t.format(w=DIGIT_WORDS[d], n=d)) == d
    assert parse_digits_prompt("a red circle on the left") is None
    assert prompt_domain("the number 7") == "digits"


def test_eval_prompts_cover_heldout():
    items = shapes_eval_prompts(100)
    assert len(items) == 100 and sum(it["heldout"] for it in items) == 12
    assert len({(it["colour"], it["shape"], it["position"]) for it in items}) == 100


def test_judge_directory_and_cli(tmp_path, monkeypatch, capsys, shapes_judge):
    world = ShapesWorld(level="one", split="all")
    g = torch.Generator().manual_seed(3)
    scenes = world.sample_scenes(12, g)
    images = world.render(scenes)
    captions = world.captions(scenes, g)
    for i, (img, cap) in enumerate(zip(images, captions, strict=True)):
        save_png(tmp_path / f"{i:02d}.png", img, {"prompt": cap, "seed": i}, sidecar=i % 2 == 0)
    report = judge_directory(tmp_path)["shapes"]
    assert report["n"] == 12 and report["judge"] == "abs"
    assert report["accuracy"]["all"] == 1.0 and report["accuracy"]["recognised"] == 1.0  # clean renders
    direct = judge_shapes(images, captions)  # PNG quantisation (1/255) changes no verdict of a clean render
    assert direct.accuracy == report["accuracy"]
    legacy = judge_directory(tmp_path, judge="legacy")["shapes"]
    assert legacy["judge"] == "legacy" and "recognised" not in legacy["accuracy"]
    assert legacy["accuracy"] == judge_shapes(images, captions, judge=shapes_judge).accuracy

    from clip_t2i import cli

    for extra in ([], ["--judge", "legacy"]):
        monkeypatch.setattr(sys, "argv", ["clip-t2i", "judge", str(tmp_path), "--json", *extra])
        try:
            cli.main()
        except SystemExit as e:
            assert e.code in (0, None)
        out = json.loads(capsys.readouterr().out)
        assert out["shapes"]["accuracy"]["all"] == (legacy if extra else report)["accuracy"]["all"]

    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "zz-bare.png")
    monkeypatch.setattr(sys, "argv", ["clip-t2i", "judge", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "carries no prompt" in err and err.count("\n") == 1
