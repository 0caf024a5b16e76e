"""CLIP score with a tiny fake CLIP: formula, clamp at 0, same-model warning/flag, streaming object."""

from __future__ import annotations

import hashlib
import warnings

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.errors import UserError
from clip_t2i.metrics import CLIPScore, SameModelWarning, compute_clip_score, same_model_id


class FakeClip:
    """encode_image: mean colour per 2x2 quadrant projected to 8-D; encode_text: hashed 8-D vectors."""

    def __init__(self) -> None:
        self.proj = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(pixels, 2).flatten(1)  # any input size
        return pooled @ self.proj - 0.3

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            rows.append(torch.randn(8, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(rows)


def _expected(model: FakeClip, images: torch.Tensor, captions: list[str]) -> torch.Tensor:
    cos = F.cosine_similarity(model.encode_image(images).double(), model.encode_text(captions).double(), dim=1)
    return (100 * cos).clamp_min(0)


def _batch(n: int, size: int = 16, seed: int = 1) -> tuple[torch.Tensor, list[str]]:
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return images, [f"caption number {i}" for i in range(n)]


def test_formula_and_clamp() -> None:
    model = FakeClip()
    images, captions = _batch(24)
    res = compute_clip_score(
        images, captions, model, eval_model_id="fake-eval", guide_model_id="ViT-B-32", batch_size=5
    )
    expected = _expected(model, images, captions)
    assert res.per_image.tolist() == pytest.approx(expected.tolist(), abs=1e-9)
    assert res.score == pytest.approx(float(expected.mean()), abs=1e-9)
    assert (expected == 0).any() and (expected > 0).any()  # the example exercises the clamp
    assert res.same_model is False and res.num_images == 24


def test_same_model_warns_and_flags() -> None:
    model = FakeClip()
    images, captions = _batch(4)
    with pytest.warns(SameModelWarning, match="guiding model"):
        res = compute_clip_score(images, captions, model, eval_model_id="hf-hub:ViT-B-32", guide_model_id="vit_b_32")
    assert res.same_model is True
    with pytest.warns(SameModelWarning):
        metric = CLIPScore(model, eval_model_id="ViT-B/32", guide_model_id="vit-b-32")
    metric.update(images, captions)
    assert metric.result()["same_model"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = compute_clip_score(images, captions, model, eval_model_id="ViT-L-14", guide_model_id="ViT-B-32")
        assert res.same_model is False
        assert compute_clip_score(images, captions, model, eval_model_id="x", guide_model_id=None).same_model is False
    assert same_model_id("ViT-B-32:openai", "vit-b-32-openai") and not same_model_id("ViT-B-16", "ViT-B-32")


def test_streaming_metric_matches_function() -> None:
    model = FakeClip()
    images, captions = _batch(20, size=12)
    metric = CLIPScore(model, eval_model_id="eval", guide_model_id="guide")
    for s in range(0, 20, 6):
        metric.update(images[s : s + 6], captions[s : s + 6])
    ref = compute_clip_score(images, captions, model, eval_model_id="eval", guide_model_id="guide")
    assert float(metric.compute()) == pytest.approx(ref.score, abs=1e-9)
    report = metric.result()
    assert report["num_images"] == 20 and report["eval_model_id"] == "eval" and report["same_model"] is False
    assert CLIPScore.higher_is_better is True and CLIPScore.is_differentiable is False


def test_errors() -> None:
    model = FakeClip()
    images, captions = _batch(3)
    with pytest.raises(UserError, match=r"in \[0, 1\]"):
        compute_clip_score(images * 2 - 1, captions, model, eval_model_id="e", guide_model_id=None)
    with pytest.raises(UserError, match="one caption per image"):
        compute_clip_score(images, captions[:2], model, eval_model_id="e", guide_model_id=None)
    with pytest.raises(UserError, match="eval_model_id"):
        compute_clip_score(images, captions, model, eval_model_id="", guide_model_id=None)
    with pytest.raises(UserError, match="encode_image"):
        CLIPScore(object(), eval_model_id="e", guide_model_id=None)
