"""Feature extractors (missing weights, local weight files, resizing) and extract_features with its cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clip_t2i.errors import UserError
from clip_t2i.metrics import (
    ClipFeatures,
    DinoV2Features,
    FeatureExtractor,
    InceptionV3Features,
    ModuleFeatures,
    extract_features,
)
from clip_t2i.metrics.features import CACHE_ENV, DINOV2_ENV, INCEPTION_ENV


class _Recorder(nn.Module):
    """Tiny CNN that remembers the input sizes it saw."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1).flatten(1)


class _CountingExtractor(FeatureExtractor):
    def __init__(self, version: str = "1") -> None:
        super().__init__(name="counting", dim=3, version=version)
        self.images_seen = 0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += images.shape[0]
        return images.mean(dim=(2, 3)) * 2


def _images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------- weights
def test_missing_weights_say_which_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    monkeypatch.delenv(DINOV2_ENV, raising=False)
    with pytest.raises(UserError, match=f"weights_path=FILE or set {INCEPTION_ENV}"):
        InceptionV3Features()
    with pytest.raises(UserError, match=f"weights_path=FILE or set {DINOV2_ENV}"):
        DinoV2Features("vitb14")
    monkeypatch.setenv(DINOV2_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(UserError, match=f"does not exist; point {DINOV2_ENV}"):
        DinoV2Features()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a torchvision inception_v3"):
        InceptionV3Features(bad)
    with pytest.raises(UserError, match="unknown DINOv2 arch"):
        DinoV2Features("vitz14", bad)


def test_inception_from_local_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    ref = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save(ref.state_dict(), path)
    monkeypatch.setenv(INCEPTION_ENV, str(path))
    ext = InceptionV3Features()
    ext.train()  # must stay in eval mode
    assert not ext.net.training and ext.dim == 2048
    x = _images(1, size=64)
    feats = ext(x)
    ref.fc = nn.Identity()
    ref.eval()
    with torch.no_grad():
        expected = ref(F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1)
    assert feats.shape == (1, 2048)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)


def test_dinov2_from_local_file(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, num_classes=0)
    state = net.state_dict()
    state["mask_token"] = torch.zeros(1, 384)  # Meta's checkpoints carry it; timm's loader drops it
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    ext = DinoV2Features("vits14", weights_path=path)
    x = _images(2, size=32)
    feats = ext(x)
    assert feats.shape == (2, 384) and ext.name == "dinov2-vits14" and ext.num_features == 384
    # the file's weights are the ones in use (a randomly initialised net would give finite 384-d features too):
    # every tensor but the position grid (37×37 -> 16×16, resampled at load) is the saved one, bit for bit
    loaded = ext.net.state_dict()
    shared = [k for k in state if k in loaded and k != "pos_embed"]
    assert len(shared) == len(loaded) - 1 and all(torch.equal(loaded[k], state[k]) for k in shared)
    assert loaded["pos_embed"].shape[1] == 1 + 16 * 16
    # ... and the features are that net's CLS output on the documented input pipeline (bicubic 224, ImageNet
    # mean/std), computed here by hand; same ops on the same input: equal to float32 rounding
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    big = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=False).clamp(0, 1)
    with torch.no_grad():
        expected = ext.net((big - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------- wrappers
def test_clip_and_module_wrappers() -> None:
    class Clipish:
        embed_dim = 5

        def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
            return pixels.mean(dim=(2, 3)).repeat(1, 2)[:, :5]

    ext = ClipFeatures(Clipish(), name="tiny")
    assert ext.dim == 5 and ext.name == "clip:tiny"
    x = _images(3, size=10)
    torch.testing.assert_close(ext(x), x.mean(dim=(2, 3)).repeat(1, 2)[:, :5])

    rec = _Recorder()
    mod = ModuleFeatures(rec, name="judge", input_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert mod.dim == 4
    rec.seen.clear()
    out = mod(_images(2, size=40))
    assert rec.seen == [(2, 3, 16, 16)] and out.shape == (2, 4)
    with pytest.raises(UserError, match=r"in \[0, 1\]"):
        mod(_images(2) * 2 - 1)
    with pytest.raises(UserError, match="encode_image"):
        ClipFeatures(rec)


# ------------------------------------------------------------------------------------------- extraction
def test_extract_features_inputs_agree() -> None:
    from PIL import Image

    ext = _CountingExtractor()
    x8 = (_images(7) * 255).round().to(torch.uint8)
    xf = x8.float() / 255
    ref = extract_features(ext, xf, batch_size=3)
    assert ref.shape == (7, 3)
    torch.testing.assert_close(extract_features(ext, x8, batch_size=2), ref)
    torch.testing.assert_close(extract_features(ext, list(xf), batch_size=4), ref)  # single images
    torch.testing.assert_close(extract_features(ext, [(xf[:4], 0), (xf[4:], 1)], batch_size=64), ref)
    pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x8]
    torch.testing.assert_close(extract_features(ext, pil, batch_size=5), ref)


def test_extract_features_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = _CountingExtractor()
    x = _images(10)
    first = extract_features(ext, x, batch_size=4, cache_dir=tmp_path)
    assert ext.images_seen == 10
    again = extract_features(ext, x.flip(0), batch_size=3, cache_dir=tmp_path)  # other order and batching
    assert ext.images_seen == 10
    torch.testing.assert_close(again, first.flip(0))
    more = torch.cat([x[:5], _images(3, seed=9)])
    extract_features(ext, more, batch_size=4, cache_dir=tmp_path)
    assert ext.images_seen == 13  # only the 3 new images were computed
    v2 = _CountingExtractor(version="2")
    extract_features(v2, x, cache_dir=tmp_path)
    assert v2.images_seen == 10  # another version never reads v1's features
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    extract_features(ext, x)
    assert ext.images_seen == 13  # cache dir from the environment


def test_extract_features_errors() -> None:
    ext = _CountingExtractor()
    with pytest.raises(UserError, match="no images"):
        extract_features(ext, [])
    with pytest.raises(UserError, match="batch_size"):
        extract_features(ext, _images(2), batch_size=0)

    def nan_extractor(images: torch.Tensor) -> torch.Tensor:
        return torch.full((images.shape[0], 2), float("nan"))

    with pytest.raises(UserError, match="NaN"):
        extract_features(nan_extractor, _images(2))
