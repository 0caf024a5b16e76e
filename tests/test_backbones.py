"""Loading CLIPs in every supported format: save a tiny model each way, load it back, compare embeddings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from clip_t2i.backbones import ClipModel, WordTokenizer, get_model_config, list_models, load_clip, loading
from clip_t2i.errors import UserError

TINY_OC = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "layers": 2, "width": 64, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory) -> str:
    """An open_clip-registered tiny architecture (stands in for ViT-B-32 without 600 MB files)."""
    d = tmp_path_factory.mktemp("oc_cfg")
    (d / "tiny-test-ViT.json").write_text(json.dumps(TINY_OC))
    open_clip.add_model_config(d)
    return "tiny-test-ViT"


def _embeds(clip: ClipModel) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 48, 40, generator=g)
    with torch.no_grad():
        return clip.encode_image(x), clip.encode_text(["a red circle", "a photo of a dog", "seven"])


def _perturbed(clip: ClipModel, seed: int = 1) -> ClipModel:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in clip.model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return clip


def test_registry_lists_project_configs():
    names = list_models()
    assert {"vit-t64", "vit-t32", "rn-t64"} <= set(names)
    cfg = get_model_config("vit-t64")
    cfg["model_cfg"]["embed_dim"] = -1
    assert get_model_config("vit-t64")["model_cfg"]["embed_dim"] == 128  # deep copy


def test_small_vit_few_million_params():
    clip = load_clip("vit-t64")
    n = sum(p.numel() for p in clip.parameters())
    assert 5e5 < n < 5e6
    assert clip.image_size == 64


def test_word_tokenizer_ids_and_truncation():
    tok = WordTokenizer("builtin-words", vocab_size=512, context_length=8)
    ids = tok(["a red circle", "A RED, circle!"])
    assert torch.equal(ids[0], ids[1])
    assert ids[0, 0] == 2 and ids[0, 4] == 511 and ids[0].argmax() == 4
    assert tok(["zzzz"])[0, 1] == 1  # unknown word
    with pytest.warns(UserWarning, match="truncated"):
        long = tok(["a " * 20])
    assert long[0, -1] == 511


def test_encode_image_any_size_and_differentiable():
    clip = load_clip("vit-t64")
    x = torch.rand(2, 3, 100, 77, requires_grad=True)
    e = clip.encode_image(x)
    assert e.shape == (2, 128)
    assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    e.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_self_describing_safetensors_roundtrip(tmp_path):
    clip = _perturbed(load_clip("vit-t64"))
    path = clip.save(tmp_path / "m.safetensors")
    back = load_clip(path)
    for a, b in zip(_embeds(clip), _embeds(back), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    half = load_clip(clip.save(tmp_path / "h.safetensors", half=True))
    assert torch.allclose(_embeds(clip)[0], _embeds(half)[0], atol=2e-2)


def test_project_config_with_pretrained_file(tmp_path):
    clip = _perturbed(load_clip("vit-t64"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in clip.model.state_dict().items()}}, tmp_path / "c.pt")
    back = load_clip("vit-t64", pretrained=tmp_path / "c.pt")
    assert torch.allclose(_embeds(clip)[1], _embeds(back)[1], atol=1e-6)


@pytest.mark.parametrize("fmt", ["open_clip_ckpt", "plain_pt", "clipag", "raw_safetensors"])
def test_full_checkpoint_formats(tmp_path, tiny_arch, fmt):
    clip = _perturbed(load_clip(tiny_arch))
    sd = clip.model.state_dict()
    if fmt == "open_clip_ckpt":
        path = tmp_path / "epoch_1.pt"
        torch.save({"epoch": 1, "name": "run", "state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    elif fmt == "plain_pt":
        path = tmp_path / "plain.pt"
        torch.save(sd, path)
    elif fmt == "clipag":  # official CLIPAG layout: DDP prefixes and numpy scalars in the pickle
        path = tmp_path / "CLIPAG_tiny.pt"
        payload = {
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "epoch": np.int64(7),
            "best_acc": np.float64(0.61),
            "lr": np.float32(2e-5),
        }
        torch.save(payload, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "raw.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
        with pytest.raises(UserError, match="no clip-t2i config"):
            load_clip(path)
    back = load_clip(tiny_arch, pretrained=str(path))
    for a, b in zip(_embeds(clip), _embeds(back), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_clipag_file_really_contains_numpy_scalars(tmp_path, tiny_arch):
    """The allow-list is needed: plain weights_only loading rejects the CLIPAG layout."""
    clip = _perturbed(load_clip(tiny_arch))  # perturbed: no fresh initialisation can equal these weights
    saved = {k: v.clone() for k, v in clip.model.state_dict().items()}
    path = tmp_path / "clipag.pt"
    torch.save({"state_dict": saved, "epoch": np.int64(3)}, path)
    with pytest.raises(Exception):  # noqa: B017 - torch's own UnpicklingError text varies
        torch.load(path, weights_only=True)
    back = load_clip(tiny_arch, pretrained=path).model.state_dict()
    assert back.keys() == saved.keys()
    assert all(torch.equal(back[k], saved[k]) for k in saved)  # a copy, bit for bit


@pytest.mark.parametrize("fmt", ["fare", "tecoa", "fare_safetensors"])
def test_image_tower_only_formats(tmp_path, tiny_arch, fmt):
    base = load_clip(tiny_arch)
    base_path = tmp_path / "base.pt"
    torch.save(base.model.state_dict(), base_path)
    robust = _perturbed(load_clip(tiny_arch, pretrained=base_path), seed=5)
    vis = robust.model.visual.state_dict()
    if fmt == "fare":  # RobustVLM: unwrap_model(model).model.state_dict() of the vision tower
        path = tmp_path / "fare.pt"
        torch.save(vis, path)
    elif fmt == "tecoa":
        path = tmp_path / "tecoa.pth.tar"
        torch.save({"epoch": 10, "vision_encoder_state_dict": {f"module.{k}": v for k, v in vis.items()}}, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "fare.safetensors"
        save_file({k: v.contiguous() for k, v in vis.items()}, str(path))
    back = load_clip(tiny_arch, pretrained=base_path, image_tower=path)
    img_r, _ = _embeds(robust)
    img_b, txt_b = _embeds(back)
    _, txt_base = _embeds(base)
    assert torch.allclose(img_r, img_b, atol=1e-6)
    assert torch.allclose(txt_base, txt_b, atol=1e-6)  # text tower untouched by the image-tower file


def test_local_dir_open_clip_layout(tmp_path, tiny_arch):
    from safetensors.torch import save_file

    clip = _perturbed(load_clip(tiny_arch))
    d = tmp_path / "repo"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OC, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in clip.model.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    back = load_clip(f"local-dir:{d}")
    assert torch.allclose(_embeds(clip)[0], _embeds(back)[0], atol=1e-6)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_malicious_pickle_refused_without_executing(tmp_path, tiny_arch):
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(UserError, match="refusing to load"):
        load_clip(tiny_arch, pretrained=path)
    with pytest.raises(UserError, match="refusing to load"):
        load_clip(tiny_arch, image_tower=path)
    assert not marker.exists()


def test_mismatched_checkpoint_names_keys(tmp_path):
    path = load_clip("vit-t64").save(tmp_path / "t.safetensors")
    with pytest.raises(UserError, match="does not fit vit-s64.*shape mismatches"):
        load_clip("vit-s64", pretrained=path)


def test_unknown_name_suggests_and_missing_file():
    with pytest.raises(UserError, match="did you mean.*vit-t64"):
        load_clip("vit-t46")
    with pytest.raises(UserError, match="does not exist"):
        load_clip("/no/such/file.safetensors")
    with pytest.raises(UserError, match="does not exist"):
        load_clip("vit-t64", pretrained="/no/such/file.pt")


def test_offline_pretrained_tag_is_one_line_error(monkeypatch):
    monkeypatch.setattr(loading, "_reachable", lambda *a, **k: False)
    monkeypatch.setattr(loading, "_cached_file", lambda *a, **k: None)
    with pytest.raises(UserError, match="not cached .* cannot be reached") as e:
        load_clip("ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="neither a file nor a pretrained tag"):
        load_clip("ViT-B-32", pretrained="laion2b_s34b_b97k")


def test_quick_gelu_is_selectable(tiny_arch):
    gelu = load_clip(tiny_arch)
    quick = load_clip(tiny_arch, quick_gelu=True)
    kinds = lambda m: {type(x).__name__ for x in m.modules()}  # noqa: E731
    assert "QuickGELU" in kinds(quick) and "QuickGELU" not in kinds(gelu)
    assert quick.config["model_cfg"]["quick_gelu"] is True


def test_text_parameters_exclude_image_tower():
    clip = load_clip("vit-t64")
    text = {id(p) for p in clip.text_parameters()}
    assert not text & {id(p) for p in clip.visual.parameters()}
    total = sum(1 for _ in clip.model.parameters())
    assert len(text) + sum(1 for _ in clip.visual.parameters()) + 1 == total


def test_cli_bad_model_is_one_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "clip_t2i.cli", "eval-clip", "--model", "vit-t46", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "did you mean" in r.stderr
    assert not list(Path(tmp_path).iterdir())


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_unreadable_file_is_one_line_error(tmp_path, suffix):
    bad = tmp_path / f"broken{suffix}"
    bad.write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(UserError, match="cannot read") as e:
        load_clip(bad) if suffix == ".safetensors" else load_clip("vit-t64", pretrained=bad)
    assert "\n" not in str(e.value)


def test_group_norm_tower_is_mode_free_and_round_trips(tmp_path):
    """vision_norm "group": no BatchNorm left, train == eval exactly, bn3's zero init kept, save/load identical."""
    clip = load_clip("rn-t64gn")
    norms = [m for m in clip.visual.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and not any(isinstance(m, torch.nn.BatchNorm2d) for m in clip.visual.modules())
    assert all(m.num_channels % m.num_groups == 0 for m in norms)
    assert float(clip.visual.layer1[0].bn3.weight.abs().max()) == 0.0  # open_clip's residual zero init survives
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    _perturbed(clip)
    clip.train()
    a = clip.encode_image(x)
    clip.eval()
    b = clip.encode_image(x)
    assert torch.equal(a, b)  # GroupNorm has no running statistics: one function in both modes
    path = clip.save(tmp_path / "gn.safetensors")
    back = load_clip(str(path)).eval()
    assert torch.equal(back.encode_image(x), b)


def test_group_norm_stem_is_contrast_invariant_and_the_fixed_stem_is_not(tmp_path):
    """A GroupNorm after the bias-free stem conv makes f(μ + α(x − μ)) = f(x) (so ∇f · (x − μ) = 0: the halo);
    vision_norm "group-fixed-stem" (fix_stem_norm) keeps the function on its calibration images and breaks that."""
    clip = _perturbed(load_clip("rn-t64gn")).eval()
    mean = torch.tensor(clip.config["preprocess_cfg"]["mean"]).view(1, 3, 1, 1)
    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    scaled = mean + 1.5 * (x - mean)
    with torch.no_grad():
        e, e_scaled = clip.encode_image(x, normalize=True), clip.encode_image(scaled, normalize=True)
    invariant = float((e - e_scaled).abs().max())
    assert invariant < 1e-5  # exact in real arithmetic; float32 rounding through ~20 layers only (~1e-7 seen)
    loading.fix_stem_norm(clip, x)
    assert isinstance(clip.visual.bn1, loading.FixedBatchNorm2d) and clip.config["vision_norm"] == "group-fixed-stem"
    with torch.no_grad():
        f, f_scaled = clip.encode_image(x, normalize=True), clip.encode_image(scaled, normalize=True)
    assert float((e * f).sum(-1).min()) > 0.95  # per-image group statistics replaced by their mean over x
    changed = float((f - f_scaled).abs().max())  # a random tower is nearly flat: ~5e-4 seen for seeds 1-3
    assert changed > 1e-4 and changed > 100 * invariant  # no longer contrast invariant
    clip.train()
    a = clip.encode_image(x[:2])
    clip.eval()
    assert torch.equal(a, clip.encode_image(x[:2]))  # the fixed norm ignores the mode too
    back = load_clip(str(clip.save(tmp_path / "fixed.safetensors"))).eval()
    assert isinstance(back.visual.bn1, loading.FixedBatchNorm2d)
    assert torch.equal(back.encode_image(x[:2]), clip.encode_image(x[:2]))
    with pytest.raises(UserError, match="needs a vision_norm 'group' tower"):
        loading.fix_stem_norm(clip, x)


def test_vision_norm_rejects_unknown_value_and_vit():
    cfg = get_model_config("rn-t64gn")
    cfg["vision_norm"] = "layer"
    with pytest.raises(UserError, match="vision_norm must be"):
        loading.validate_config(cfg, "test")
    vit = get_model_config("vit-t64")
    vit["vision_norm"] = "group"
    with pytest.raises(UserError, match="needs an image tower with BatchNorm"):
        loading.build_from_config(vit)
