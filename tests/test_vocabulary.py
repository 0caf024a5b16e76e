"""Prompts are checked against the words the model's training captions used."""

from __future__ import annotations

import warnings

import pytest

from clip_t2i.backbones import load_clip
from clip_t2i.backbones.vocabulary import check_prompts, world_vocabulary
from clip_t2i.errors import UserError


@pytest.fixture(scope="module")
def shapes_clip():
    return load_clip("shapes-clipag")


def test_world_words_are_the_training_captions_words() -> None:
    from clip_t2i.data.shapes import ShapesWorld

    vocab = world_vocabulary("shapes")
    known = frozenset().union(*vocab.values())
    import torch

    world = ShapesWorld(size=32)
    g = torch.Generator().manual_seed(0)
    captions = world.captions(world.sample_scenes(2000, g), g)
    seen = {w for c in captions for w in c.replace(",", " ").split()}
    assert seen <= known  # every word a training caption uses is known
    assert {"star", "pink", "heart", "cat"}.isdisjoint(known)
    assert vocab["colour"] == {"red", "green", "blue", "yellow", "purple", "orange"}


def test_unknown_words_warn_in_one_line_and_strict_refuses(shapes_clip) -> None:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        unknown = check_prompts(shapes_clip, ["a purple star | blurry:-0.5"], "shapes-clipag")
    assert unknown == ["star", "blurry"]
    assert len(w) == 1 and "shapes-clipag does not know: star, blurry" in str(w[0].message)
    assert "colours blue, green, orange, purple, red, yellow" in str(w[0].message)
    with pytest.raises(UserError, match="does not know: star"):
        check_prompts(shapes_clip, ["a purple star"], strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt the model fully knows passes silently
        assert check_prompts(shapes_clip, ["a small red circle on the left"]) == []


@pytest.mark.parametrize("prompt", ["a cat wearing sunglasses", "xyzzy qwerty", "a pink heart", "blurry:1 | red:-1"])
def test_no_known_content_word_is_an_error(shapes_clip, prompt: str) -> None:
    with pytest.raises(UserError, match="knows no content word"):
        check_prompts(shapes_clip, [prompt])


def test_digits_model_checks_against_digits_words() -> None:
    clip = load_clip("digits-clipag")
    assert check_prompts(clip, ["a handwritten digit 3"]) == []
    with pytest.raises(UserError, match="knows no content word"):
        check_prompts(clip, ["a red circle"])


def test_bpe_models_are_not_checked() -> None:
    """An open_clip BPE model (random weights: nothing can be downloaded here) is never vocabulary-checked."""
    import open_clip

    from clip_t2i.backbones.clip import ClipModel

    model = open_clip.create_model("RN50", pretrained=None)
    cfg = {
        "name": "RN50",
        "model_cfg": {"embed_dim": 1024, "vision_cfg": {}, "text_cfg": {"context_length": 77}},
        "preprocess_cfg": {"size": 224, "mean": [0.5] * 3, "std": [0.5] * 3},
        "tokenizer": {"type": "open_clip", "name": "RN50"},
    }
    clip = ClipModel(model, cfg)
    assert check_prompts(clip, ["a cat wearing sunglasses", "xyzzy"]) == []
