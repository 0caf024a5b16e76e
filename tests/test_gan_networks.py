"""GAN networks: shapes, frozen CLIP, CLIP feature taps, resolution rules, checkpoint round trip."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.backbones import load_clip
from clip_t2i.errors import UserError
from clip_t2i.gan.model import clip_fingerprint, load_gan, save_gan
from clip_t2i.gan.networks import (
    ClipTaps,
    Discriminator,
    DiscriminatorConfig,
    FrozenViT,
    Generator,
    GeneratorConfig,
    count_parameters,
    default_clip_layers,
    default_prompt_blocks,
    stage_sizes,
)
from clip_t2i.gan.variants import get_variant, list_variants

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clip64():
    torch.manual_seed(0)
    return load_clip("vit-t64").eval()


@pytest.fixture(scope="module")
def clip32():
    torch.manual_seed(1)
    return load_clip("vit-t32").eval()


def test_galip_defaults_rescale():
    assert default_clip_layers(12) == (1, 4, 8)
    assert default_prompt_blocks(12) == tuple(range(1, 9))
    assert default_clip_layers(4) == (0, 1, 2) and default_prompt_blocks(4) == (1, 2)
    assert stage_sizes(4, 64, 64) == [8, 16, 32, 64]
    assert stage_sizes(7, 224, 224) == [14, 28, 56, 112, 224]  # ViT-B/32: 7×7 tokens -> 224
    assert stage_sizes(16, 224, 224) == [32, 64, 128, 224]  # patch-14 ViT: last step < ×2
    with pytest.raises(UserError, match="cannot be reached"):
        stage_sizes(4, 100, 64)


def test_generator_shapes_frozen_clip_and_size(clip64):
    G = Generator(GeneratorConfig(), clip64)
    assert G.resolution == 64
    z, e = torch.randn(3, 100), F.normalize(torch.randn(3, 128), dim=1)
    x = G(z, e)
    assert x.shape == (3, 3, 64, 64) and torch.isfinite(x).all()
    assert all(not p.requires_grad for p in clip64.visual.parameters())
    assert not any(k.startswith("vit.") for k in G.trainable_state_dict())
    assert 0.5e6 < count_parameters(G) < 3e6  # CPU-sized: ≲ 2-3 M learnable parameters
    assert Generator(GeneratorConfig(resolution=32), clip64)(z, e).shape[-1] == 32
    with pytest.raises(UserError, match="cannot be reached"):
        Generator(GeneratorConfig(resolution=100), clip64)
    with pytest.raises(ValueError):
        G(torch.randn(3, 7), e)


def test_text_and_prompts_change_output(clip64):
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(), clip64)
    for p in G.parameters():  # the zero-initialised affine heads would hide the condition at init
        if p.requires_grad:
            p.data.add_(0.05 * torch.randn_like(p))
    z = torch.randn(2, 100)
    e1, e2 = F.normalize(torch.randn(2, 128), dim=1), F.normalize(torch.randn(2, 128), dim=1)
    with torch.no_grad():
        assert not torch.allclose(G(z, e1), G(z, e2))
        bridge = torch.randn(2, 128, 4, 4)
        p1, p2 = torch.randn(2, 2, 128), torch.randn(2, 2, 128)
        assert not torch.allclose(G.map_bridge(bridge, p1), G.map_bridge(bridge, p2))
    assert Generator(GeneratorConfig(num_prompts=0), clip64).fc_prompt is None
    assert Generator(GeneratorConfig(prompt_blocks=(0, 3)), clip64).prompt_blocks == (0, 3)
    with pytest.raises(UserError, match="prompt_blocks"):
        Generator(GeneratorConfig(prompt_blocks=(9,)), clip64)


def test_clip_taps_embedding_matches_encode_image(clip64):
    vit = FrozenViT(clip64)
    taps = ClipTaps(vit, (0, 2))
    img01 = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feats, emb = taps(img01 * 2 - 1, with_embedding=True)
        ref = clip64.encode_image(img01, normalize=False)
    assert feats.shape == (2, 2, 128, 4, 4)
    assert torch.allclose(emb, ref, atol=1e-5)
    # tap after block 0 = open_clip's own intermediate tokens
    with torch.no_grad():
        inter = clip64.visual.forward_intermediates(clip64.preprocess(img01), indices=[0, 2], intermediates_only=True)[
            "image_intermediates"
        ]
    assert torch.allclose(feats[:, 0], inter[0], atol=1e-5) and torch.allclose(feats[:, 1], inter[1], atol=1e-5)


def test_resnet_clip_rejected():
    with pytest.raises(UserError, match="ViT"):
        Generator(GeneratorConfig(), load_clip("rn-t64"))


@pytest.mark.parametrize("name", ["galip", "scad", "scad-mi", "scad-dd", "scad-global", "scad-nosn", "scad-hinge"])
def test_discriminators_of_every_variant(clip32, name):
    cfg = get_variant(name)
    D = Discriminator(cfg.discriminator, clip32, with_q=cfg.loss.mi_weight > 0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    e = F.normalize(torch.randn(2, 128), dim=1)
    feats, _ = D.taps(x)
    lg = D.semantic.logits(D.semantic.trunk(feats), e)
    assert lg.full.shape == (2,)
    assert (D.fidelity is not None) == cfg.discriminator.fidelity
    if D.fidelity is not None:
        p, _ = D.fidelity(x)
        assert p.full.shape == (2, 4, 4)  # 32 px / 2^3
    sn = any("parametrizations" in k for k in D.state_dict())
    assert sn == cfg.discriminator.spectral_norm
    assert not any(k.startswith("taps.") for k in D.trainable_state_dict())
    assert set(list_variants()) >= {"galip", "scad", "scad-mi", "scad-dd"}


def test_discriminator_config_errors(clip32):
    with pytest.raises(UserError, match="head_dim"):
        DiscriminatorConfig(direction="none", head_dim=8).validate()
    with pytest.raises(UserError, match="clip_layers"):
        Discriminator(DiscriminatorConfig(clip_layers=(0, 7)), clip32)
    with pytest.raises(UserError, match="direction"):
        get_variant("galip").with_overrides(["loss.formulation=san"])


def test_checkpoint_round_trip_and_errors(tmp_path, clip32):
    cfg = get_variant("scad")
    torch.manual_seed(3)
    G = Generator(cfg.generator, clip32)
    for p in G.trainable_parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    path = save_gan(tmp_path / "g.safetensors", G, clip32, cfg, "vit-t32", steps=5)
    gan = load_gan(path)
    z, e = torch.randn(2, 100), F.normalize(torch.randn(2, 128), dim=1)
    with torch.no_grad():
        assert torch.allclose(gan.G(z, e), G(z, e), atol=1e-5)  # channels_last convs round differently
    assert gan.steps == 5 and gan.meta["clip"]["embedded"] and gan.config.name == "scad"
    assert clip_fingerprint(gan.clip) == clip_fingerprint(clip32)
    untrained = save_gan(tmp_path / "u.safetensors", G, clip32, cfg, "vit-t32", steps=0)
    with pytest.raises(UserError, match="untrained"):
        load_gan(untrained)
    assert load_gan(untrained, allow_untrained=True).steps == 0
    ref = save_gan(tmp_path / "r.safetensors", G, clip32, cfg, "vit-t32", steps=5, embed_clip="never")
    with pytest.raises(UserError, match="different CLIP"):
        load_gan(ref)  # "vit-t32" re-initialises a random CLIP: not the one it was trained with
    assert ref.stat().st_size < path.stat().st_size
    with pytest.raises(UserError, match="not a clip-t2i GAN"):
        clip32.save(tmp_path / "clip.safetensors")
        load_gan(tmp_path / "clip.safetensors")
    with pytest.raises(UserError, match="neither a zoo model"):
        load_gan(tmp_path / "missing.safetensors")


def test_export_zoo_references_clip(tmp_path):
    from clip_t2i import zoo
    from clip_t2i.gan.model import export_zoo

    if "shapes-clip" not in zoo.list_zoo():
        pytest.skip("zoo shapes-clip not present")
    clip = load_clip("shapes-clip")
    cfg = get_variant("scad")
    torch.manual_seed(0)
    G = Generator(cfg.generator, clip)
    src = save_gan(tmp_path / "run.safetensors", G, clip, cfg, "runs/x/final.safetensors", steps=7)
    out = export_zoo(src, "tiny-gan", tmp_path / "zoo", clip_ref="shapes-clip", metrics={"fid_judge": 1.5})
    gan = load_gan(out)
    assert gan.meta["clip"] == {**gan.meta["clip"], "ref": "shapes-clip", "embedded": False}
    assert out.stat().st_size < src.stat().st_size / 2
    entry = json.loads((tmp_path / "zoo/tiny-gan.json").read_text())
    assert entry["kind"] == "gan" and entry["file"] == "tiny-gan.safetensors" and entry["metrics"]["fid_judge"] == 1.5
    z, e = torch.randn(2, 100), F.normalize(torch.randn(2, 128), dim=1) * 128**0.5
    with torch.no_grad():
        assert torch.allclose(gan.G(z, e), G(z, e), atol=2e-2)  # fp16 weights
