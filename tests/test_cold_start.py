"""Start-up: torch-free presets, the on-disk prior / pool cache (identical images), the prior following the model."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import pytest
import torch

from clip_t2i.renderers import priors
from clip_t2i.utils import cache


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV, str(root))
    priors.fit_prior.cache_clear()
    yield root
    priors.fit_prior.cache_clear()


@pytest.fixture(scope="module")
def digits_clip():
    from clip_t2i.backbones import load_clip

    return load_clip("digits-clipag")


def test_presets_and_renderer_names_import_no_torch():
    code = (
        "import sys\n"
        "from clip_t2i.renderers.base import list_renderers\n"
        "from clip_t2i.renderers.presets import get_preset, list_presets\n"
        "data = {n: get_preset(n).to_dict() for n in list_presets()}\n"
        "assert {'pixels', 'pyramid', 'strokes'} <= set(list_renderers()), list_renderers()\n"
        "assert data['retrieval']['renderer_options']['gmm_data'] == 'auto'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_guidance_config_constants_match_losses():
    from clip_t2i.guidance import config, losses
    from clip_t2i.guidance.loop import GuidanceConfig

    assert config.LOSS_KINDS == losses.LOSS_KINDS and config.REJECTION_MODES == losses.REJECTION_MODES
    assert GuidanceConfig is config.GuidanceConfig


def test_cache_off_and_unreadable_entry_is_a_miss(cache_root, monkeypatch):
    assert cache.save("x", "k", {"a": torch.arange(3)}) is not None
    assert torch.equal(cache.load("x", "k")["a"], torch.arange(3))
    (cache_root / "x" / "k.safetensors").write_bytes(b"not safetensors")
    assert cache.load("x", "k") is None
    monkeypatch.setenv(cache.ENV, "off")
    assert cache.cache_dir() is None and cache.save("x", "k", {"a": torch.zeros(1)}) is None


def test_prior_roundtrip_through_the_cache(cache_root, monkeypatch):
    fresh = priors.fit_prior("digits", 8)
    priors.fit_prior.cache_clear()
    monkeypatch.setattr(priors, "_fit_prior", lambda *a: pytest.fail("the prior was refitted"))
    cached = priors.fit_prior("digits", 8)
    assert torch.equal(cached.means, fresh.means) and cached.low_rank == fresh.low_rank
    assert all(torch.equal(a, b) for a, b in zip(cached.factors, fresh.factors, strict=True))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(cached.sample_pool(20, g1), fresh.sample_pool(20, g2))


def _generate(clip, prompt: str):
    from clip_t2i.pipeline import generate

    opts = {"gmm_pool": 96, "gmm_resolution": 16}
    return generate(
        prompt,
        model=clip,
        seeds=[0, 1],
        steps=2,
        preset="retrieval",  # the preset whose start is a cached, CLIP-scored pool
        renderer_options=opts,
        guidance={"snapshot_every": 0},
    )


def test_images_identical_with_and_without_the_cache(cache_root, monkeypatch, digits_clip):
    prompt = "a handwritten digit 3"
    monkeypatch.setenv(cache.ENV, "off")
    reference = _generate(digits_clip, prompt)
    monkeypatch.setenv(cache.ENV, str(cache_root))
    priors.fit_prior.cache_clear()  # the reference run's in-memory prior must not hide the disk cache
    seen = []
    encode = digits_clip.encode_image
    monkeypatch.setattr(digits_clip, "encode_image", lambda x, *a, **k: seen.append(len(x)) or encode(x, *a, **k))
    cold = _generate(digits_clip, prompt)
    cold_images, seen[:] = sum(seen), []
    entries = list((cache_root / "pool").glob("*.safetensors"))
    assert len(entries) == 2  # one entry per seed ...
    assert all(e.stat().st_size < 96 * 1024 for e in entries)  # ... holding embeddings only (96 x dim floats)
    priors.fit_prior.cache_clear()
    monkeypatch.setattr(priors, "_fit_prior", lambda *a: pytest.fail("warm run fitted the prior"))
    warm = _generate(digits_clip, prompt)
    assert cold_images - sum(seen) == 2 * 96  # the warm run did not encode the two 96-member pools
    for run in (cold, warm):
        assert torch.equal(run.images, reference.images)
        assert [r["similarity"] for r in run.records] == [r["similarity"] for r in reference.records]


def _start(clip, prompt: str, **opts) -> torch.Tensor:
    from clip_t2i.guidance.prompts import TextEmbeddingCache, build_targets
    from clip_t2i.renderers.base import InitContext, build_renderer

    rend = build_renderer("pixels", clip.image_size, {"init": "gmm", "gmm_pool": 64, "gmm_hue": 1.0, **opts})
    targets = build_targets([prompt], TextEmbeddingCache(clip))
    return rend.init(1, [torch.Generator().manual_seed(0)], InitContext(clip=clip, targets=targets))[0][0].detach()


def test_digits_model_draws_from_the_digits_prior(cache_root, digits_clip):
    assert priors.world_prior(digits_clip) == "digits"
    assert priors.world_prior(type("C", (), {"config": {"train_data": "shapes2"}})()) == "shapes"
    start = _start(digits_clip, "a handwritten digit 3")
    chroma = (start - start.mean(0, keepdim=True)).abs().max()
    assert chroma < 0.1  # digits are grey (hue rotation keeps greys grey); a shapes start is coloured
    shapes_start = _start(digits_clip, "a handwritten digit 3", gmm_data="shapes")
    assert (shapes_start - shapes_start.mean(0, keepdim=True)).abs().max() > 0.3


def test_unknown_world_starts_grey_with_one_warning(cache_root, digits_clip):
    clip = copy.deepcopy(digits_clip)
    clip.config["train_data"] = "custom"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = _start(clip, "a handwritten digit 3")
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "no known training world" in messages[0] and "\n" not in messages[0]
    assert abs(float(start.mean()) - 0.5) < 0.05  # the neutral grey start (init_grey 0.5 + noise)
    del clip.config["train_data"]
    with pytest.warns(UserWarning, match="no known training world"):
        _start(clip, "a handwritten digit 3")


def test_damaged_cache_entries_are_misses(cache_root, digits_clip):
    first = _start(digits_clip, "a handwritten digit 3")
    for kind in ("pool", "prior"):
        for f in (cache_root / kind).glob("*.safetensors"):
            cache.save(kind, f.stem, {"pool": torch.zeros(2), "means": torch.zeros(1)})  # readable, wrong content
    priors.fit_prior.cache_clear()
    assert torch.equal(_start(digits_clip, "a handwritten digit 3"), first)


def test_model_key_follows_the_weights(digits_clip):
    clip = copy.deepcopy(digits_clip)
    key = priors.model_key(clip)
    assert priors.model_key(clip) == key == priors.model_key(copy.deepcopy(digits_clip))
    with torch.no_grad():
        next(iter(clip.parameters())).add_(1e-3)  # an in-place change must change the key
    assert priors.model_key(clip) != key
