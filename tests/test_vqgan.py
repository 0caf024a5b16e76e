"""The VQGAN: taming-layout checkpoints round-trip, bad checkpoints are refused by name, the losses equal their
equations, training resumes exactly, and the ``vqgan`` renderer optimises z through the guidance loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from clip_t2i.errors import UserError
from clip_t2i.renderers.vqgan.config import VQGANConfig, config_from_dict
from clip_t2i.renderers.vqgan.loading import load_vqgan, save_vqgan
from clip_t2i.renderers.vqgan.model import VQGAN

TINY = VQGANConfig(
    ch=32,
    ch_mult=(1, 2),
    num_res_blocks=1,
    attn_resolutions=(8,),
    z_channels=32,
    embed_dim=8,
    n_embed=16,
    resolution=16,
)


def _taming_yaml(cfg: VQGANConfig) -> dict:
    data = cfg.to_taming()
    data["model"]["params"]["lossconfig"] = {
        "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
        "params": {"disc_start": 10000, "codebook_weight": 1.0},
    }
    return data


def _write_taming_run(root: Path, cfg: VQGANConfig, seed: int = 0) -> tuple[Path, VQGAN]:
    """A taming ``logs/<run>/`` folder: ``checkpoints/last.ckpt`` ({"state_dict": ...} with loss keys) and
    ``configs/<run>-project.yaml``."""
    torch.manual_seed(seed)
    model = VQGAN(cfg).eval()
    state = dict(model.state_dict())
    state["loss.discriminator.main.0.weight"] = torch.randn(64, 3, 4, 4)
    state["loss.perceptual_loss.net.slice1.0.weight"] = torch.randn(64, 3, 3, 3)
    (root / "checkpoints").mkdir(parents=True)
    (root / "configs").mkdir()
    ckpt = root / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": state, "global_step": 7, "epoch": 1}, ckpt)
    (root / "configs" / "run-project.yaml").write_text(yaml.safe_dump(_taming_yaml(cfg)))
    return ckpt, model


def test_state_dict_keys_follow_taming_names() -> None:
    keys = set(VQGAN(TINY).state_dict())
    for k in (
        "encoder.conv_in.weight",
        "encoder.down.0.block.0.norm1.weight",
        "encoder.down.0.downsample.conv.weight",
        "encoder.down.1.block.0.nin_shortcut.weight",
        "encoder.down.1.attn.0.q.weight",
        "encoder.mid.block_1.conv2.weight",
        "encoder.mid.attn_1.proj_out.weight",
        "encoder.norm_out.weight",
        "encoder.conv_out.weight",
        "decoder.conv_in.weight",
        "decoder.up.0.block.1.conv1.weight",
        "decoder.up.0.block.0.nin_shortcut.weight",
        "decoder.up.1.attn.1.v.weight",
        "decoder.up.1.upsample.conv.weight",
        "quant_conv.weight",
        "post_quant_conv.bias",
        "quantize.embedding.weight",
    ):
        assert k in keys, k
    assert not any("downsample" in k for k in keys if k.startswith("encoder.down.1."))  # last level keeps its size
    assert not any("upsample" in k for k in keys if k.startswith("decoder.up.0."))


def test_taming_checkpoint_round_trips_without_the_loss(tmp_path: Path) -> None:
    ckpt, ref = _write_taming_run(tmp_path / "logs" / "run", TINY)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for model in (load_vqgan(ckpt), load_vqgan(ckpt, tmp_path / "logs" / "run" / "configs" / "run-project.yaml")):
        assert model.config == TINY
        assert not any(k.startswith("loss.") for k in model.state_dict())
        with torch.no_grad():
            a, b = model(x), ref(x)
        assert torch.equal(a[2], b[2]) and torch.allclose(a[0], b[0], atol=1e-6)
    # and back out as a clip-t2i file (config in the metadata), fp16
    out = save_vqgan(tmp_path / "v.safetensors", ref, fp16=True)
    again = load_vqgan(out)
    assert again.config == TINY
    with torch.no_grad():
        assert (again(x)[0] - ref(x)[0]).abs().max() < 2e-2


def test_gumbel_checkpoint_loads(tmp_path: Path) -> None:
    cfg = VQGANConfig(**{**TINY.to_dict(), "quantizer": "gumbel", "embed_dim": 32, "attn_resolutions": ()})
    ckpt, ref = _write_taming_run(tmp_path / "g", cfg)
    model = load_vqgan(ckpt)
    assert {"quantize.proj.weight", "quantize.embed.weight"} <= set(model.state_dict())
    assert yaml.safe_load((tmp_path / "g" / "configs" / "run-project.yaml").read_text())["model"]["target"].endswith(
        "GumbelVQ"
    )
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.encode(x), ref.encode(x))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda sd: sd.pop("decoder.conv_out.bias"), "missing keys decoder.conv_out.bias"),
        (lambda sd: sd.__setitem__("encoder.extra.weight", torch.zeros(1)), "unexpected keys encoder.extra.weight"),
    ],
)
def test_missing_or_unexpected_keys_are_named(tmp_path: Path, edit, needle: str) -> None:
    ckpt, _ = _write_taming_run(tmp_path / "r", TINY)
    obj = torch.load(ckpt, weights_only=True)
    edit(obj["state_dict"])
    torch.save(obj, ckpt)
    with pytest.raises(UserError, match=needle) as e:
        load_vqgan(ckpt)
    assert "\n" not in str(e.value)


def test_config_that_does_not_match_the_weights_is_refused(tmp_path: Path) -> None:
    ckpt, _ = _write_taming_run(tmp_path / "r", TINY)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(_taming_yaml(VQGANConfig(**{**TINY.to_dict(), "n_embed": 32}))))
    with pytest.raises(
        UserError, match=r"does not match the weights.*quantize.embedding.weight \(16, 8\) vs config \(32, 8\)"
    ):
        load_vqgan(ckpt, wrong)


def test_codebook_size_zero_and_bad_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="n_embed must be >= 1"):
        config_from_dict({**TINY.to_dict(), "n_embed": 0})
    data = _taming_yaml(TINY)
    data["model"]["params"]["n_embed"] = 0
    with pytest.raises(UserError, match="n_embed must be >= 1"):
        config_from_dict(data)
    data["model"]["target"] = "taming.models.cond_transformer.Net2NetTransformer"
    with pytest.raises(UserError, match="unsupported model.target"):
        config_from_dict(data)
    with pytest.raises(UserError, match="multiples of 32"):
        VQGANConfig(ch=48).validate()


def test_pickled_code_in_a_checkpoint_is_refused_unread(tmp_path: Path) -> None:
    ckpt, _ = _write_taming_run(tmp_path / "r", TINY)
    obj = torch.load(ckpt, weights_only=True)
    obj["callbacks"] = {"x": Path("somewhere")}  # any non-tensor object: refused, never unpickled
    torch.save(obj, ckpt)
    with pytest.raises(UserError, match="refusing to load"):
        load_vqgan(ckpt)


def test_losses_equal_their_equations() -> None:
    from clip_t2i.renderers.vqgan.losses import gradient_loss, hinge_d_loss, hinge_g_loss, psnr, vq_loss

    z, e = torch.zeros(2, 4, 3, 3), torch.ones(2, 4, 3, 3)
    codebook, commit = vq_loss(z, e, 0.25)
    assert codebook.item() == pytest.approx(1.0) and commit.item() == pytest.approx(0.25)
    x = torch.zeros(1, 3, 8, 8)
    assert psnr(x, x + 0.1).item() == pytest.approx(20.0, abs=1e-4)
    assert gradient_loss(x, x.clone()).item() == 0.0
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    assert gradient_loss(x, ramp).item() > 0
    assert hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0
    assert hinge_g_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def _tiny_train_config(out: Path, **kw):
    from clip_t2i.renderers.vqgan.train_config import VQGANTrainConfig

    base = dict(
        data="shapes", out=str(out), steps=4, batch_size=4, resolution=16, ch=32, ch_mult=(1, 2), z_channels=32,
        embed_dim=8, n_embed=16, restart_every=2, log_every=1, sample_every=0, ckpt_every=2, eval_n=8,
        progress=False, threads=1,
    )  # fmt: skip
    return VQGANTrainConfig(**{**base, **kw})


def test_training_writes_a_loadable_model_and_resumes_exactly(tmp_path: Path) -> None:
    import dataclasses

    from clip_t2i.renderers.vqgan.train import train_vqgan

    full = train_vqgan(_tiny_train_config(tmp_path / "full", disc_weight=0.1, disc_start=1))
    metrics = json.loads((tmp_path / "full" / "eval.json").read_text())
    assert metrics["n_images"] == 8 and metrics["eval_images"] == "held-out renders"
    assert 0 < metrics["codebook_used"] <= 16 and metrics["psnr_db"] > 0
    part_cfg = _tiny_train_config(tmp_path / "part", disc_weight=0.1, disc_start=1, steps=2)
    train_vqgan(part_cfg)
    resumed = train_vqgan(dataclasses.replace(part_cfg, steps=4, resume=True))
    a, b = load_vqgan(full).state_dict(), load_vqgan(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_position_augmentation_mirrors_and_shifts_and_resumes_exactly(tmp_path: Path) -> None:
    import dataclasses

    from clip_t2i.renderers.vqgan.train import augment, train_vqgan

    x = torch.rand(64, 3, 8, 8)
    same = augment(x, False, 0, torch.Generator().manual_seed(0))
    assert torch.equal(same, x)
    flipped = augment(x, True, 0, torch.Generator().manual_seed(0))
    is_flip = [torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x, strict=True)]
    is_same = [torch.equal(f, o) for f, o in zip(flipped, x, strict=True)]
    assert all(a or b for a, b in zip(is_flip, is_same, strict=True)) and 10 < sum(is_flip) < 54
    both = augment(x, True, 0, torch.Generator().manual_seed(0), vflip=True)  # same left-right draws, then top-bottom
    is_v = [torch.equal(g, f.flip(-2)) for g, f in zip(both, flipped, strict=True)]
    is_kept = [torch.equal(g, f) for g, f in zip(both, flipped, strict=True)]
    assert all(a or b for a, b in zip(is_v, is_kept, strict=True)) and 10 < sum(is_v) < 54
    shifted = augment(x, False, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    offsets = set()
    for i in range(64):  # every output is one 8x8 window of the edge-padded image
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(shifted[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert hits
        offsets.update(hits)
    assert len(offsets) > 10  # the offsets vary over the batch
    with pytest.raises(UserError, match="--shift"):
        train_vqgan(_tiny_train_config(tmp_path / "bad", shift=8))
    assert not (tmp_path / "bad").exists()
    cfg = _tiny_train_config(tmp_path / "full", hflip=True, vflip=True, shift=2)
    full = train_vqgan(cfg)
    part = dataclasses.replace(cfg, out=str(tmp_path / "part"), steps=2)
    train_vqgan(part)
    resumed = train_vqgan(dataclasses.replace(part, steps=cfg.steps, resume=True))
    a, b = load_vqgan(full).state_dict(), load_vqgan(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_refuses_codebook_size_zero(tmp_path: Path) -> None:
    from clip_t2i.renderers.vqgan.train import train_vqgan

    with pytest.raises(UserError, match="--n-embed"):
        train_vqgan(_tiny_train_config(tmp_path / "z", n_embed=0))
    assert not (tmp_path / "z").exists()


@pytest.fixture()
def tiny_vqgan(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cfg = VQGANConfig(**{**TINY.to_dict(), "resolution": 32})
    return save_vqgan(tmp_path / "tiny-vqgan.safetensors", VQGAN(cfg))


def test_renderer_quantises_decodes_clamps_and_passes_gradients(tiny_vqgan: Path, tmp_path: Path) -> None:
    from PIL import Image

    from clip_t2i.renderers.base import build_renderer

    r = build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan)})
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    (z,) = r.init(2, gens)
    assert z.shape == (2, 8, 16, 16)
    cb = r.model.codebook
    assert torch.equal(cb[r.codes([z])].permute(0, 3, 1, 2), z.detach())  # random codes: z is a code per cell
    img = r.render([z])
    assert img.shape == (2, 3, 32, 32) and img.min() >= 0 and img.max() <= 1
    img.mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    with torch.no_grad():
        z.add_(100.0)
    r.project([z], lambda t: t)
    assert torch.equal(z.detach().amax((0, 2, 3)), cb.amax(0))
    # same seeds, same start; encoded starts
    fresh = [torch.Generator().manual_seed(s) for s in (0, 1)]
    assert torch.equal(r.init(2, fresh)[0], r.init(2, [torch.Generator().manual_seed(s) for s in (0, 1)])[0])
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "red.png")
    ri = build_renderer(
        "vqgan", 32, {"vqgan": str(tiny_vqgan), "init": "image", "init_image": str(tmp_path / "red.png")}
    )
    (zi,) = ri.init(1, torch.Generator().manual_seed(0))
    red = torch.tensor([200, 30, 30]).div(255).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    assert torch.allclose(ri._init_image, red[0], atol=1e-6)
    assert torch.equal(zi.detach(), ri.encode(ri._init_image.unsqueeze(0)))
    rr = build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan), "init": "random_image"})
    assert rr.init(1, torch.Generator().manual_seed(0))[0].shape == (1, 8, 16, 16)
    # decoded at 16 px (8 x 8 codes), resized to the 32-px image
    rd = build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan), "decode_size": 16})
    (zd,) = rd.init(1, torch.Generator().manual_seed(0))
    assert zd.shape == (1, 8, 8, 8) and rd.render([zd]).shape == (1, 3, 32, 32)


def test_renderer_refuses_bad_options(tiny_vqgan: Path, tmp_path: Path) -> None:
    from clip_t2i.renderers.base import build_renderer

    with pytest.raises(
        UserError, match="image size 33 must be a positive multiple of the VQGAN's downsampling factor 2"
    ):
        build_renderer("vqgan", 33, {"vqgan": str(tiny_vqgan)})
    with pytest.raises(UserError, match="decode_size 15 must be a positive multiple"):
        build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan), "decode_size": 15})
    with pytest.raises(UserError, match="unknown vqgan init"):
        build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan), "init": "zeros"})
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(UserError, match="cannot read init image"):
        build_renderer(
            "vqgan", 32, {"vqgan": str(tiny_vqgan), "init": "image", "init_image": str(tmp_path / "bad.png")}
        )
    with pytest.raises(UserError, match="does not exist"):
        build_renderer("vqgan", 32, {"vqgan": str(tmp_path / "missing.ckpt")})


def test_generate_with_the_vqgan_renderer_writes_images(tiny_vqgan: Path, tmp_path: Path) -> None:
    import clip_t2i
    from clip_t2i.backbones import load_clip

    clip = load_clip("vit-t32")  # random init: load once, so both runs see the same CLIP
    res = clip_t2i.generate(
        ["a red circle"],
        model=clip,
        seeds="0-1",
        preset="vqgan",
        steps=2,
        renderer_options={"vqgan": str(tiny_vqgan)},
        out=tmp_path / "out",
    )
    assert res.images.shape == (2, 3, 32, 32)
    assert [r["renderer"] for r in res.records] == ["vqgan", "vqgan"]
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    again = clip_t2i.generate(
        ["a red circle"], model=clip, seeds="0-1", preset="vqgan", steps=2, renderer_options={"vqgan": str(tiny_vqgan)}
    )
    assert torch.equal(res.images, again.images)  # seeded


@pytest.mark.skipif("shapes-vqgan" not in __import__("clip_t2i.zoo").zoo.list_zoo(), reason="shapes-vqgan not bundled")
def test_zoo_vqgan_reconstructs_heldout_renders_far_better_than_untrained() -> None:
    from clip_t2i import zoo
    from clip_t2i.data.shapes import shapes_eval_set
    from clip_t2i.renderers.vqgan.train import evaluate_vqgan

    assert zoo.zoo_entry("shapes-vqgan")["kind"] == "vqgan"
    model = load_vqgan("shapes-vqgan")
    images = shapes_eval_set(split="heldout", n=24, seed=5, size=64)["image"]
    torch.manual_seed(0)
    trained, untrained = evaluate_vqgan(model, images), evaluate_vqgan(VQGAN(model.config), images)
    assert trained["psnr_db"] > untrained["psnr_db"] + 5
    assert trained["codebook_used"] > 1
    with pytest.raises(UserError, match="not a CLIP"):
        from clip_t2i.backbones import load_clip

        load_clip("shapes-vqgan")


def test_switching_to_the_vqgan_renderer_drops_the_pixel_presets_options() -> None:
    from clip_t2i.renderers.presets import get_preset

    fast = get_preset("retrieval")
    assert fast.renderer_options["init"] == "gmm"
    assert fast.with_overrides(renderer="vqgan").renderer_options == {}  # "gmm" is no vqgan init
    assert fast.with_overrides(renderer="pyramid").renderer_options["init"] == "gmm"  # related renderers keep them
    assert (
        get_preset("vqgan")
        .with_overrides(renderer_options={"init": "image", "init_image": "x.png"})
        .renderer_options["init"]
        == "image"
    )


def test_equalize_preconditions_the_latent_by_the_decoder_sensitivity(tiny_vqgan: Path) -> None:
    """equalize: params [u, z0, P]; u = 0 renders z0; S·P² is constant where P is not capped; u's gradient is P
    times z's; project clamps z = z0 + P u to the codebook's range; each image's map comes from its generator."""
    from clip_t2i.renderers.base import build_renderer

    plain = build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan)})
    r = build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan), "equalize": True, "equalize_max": 1e6})
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    u, z0, p = r.init(2, gens)
    (z_plain,) = plain.init(2, [torch.Generator().manual_seed(s) for s in (0, 1)])
    assert torch.equal(z0, z_plain.detach()) and u.requires_grad and not z0.requires_grad and not p.requires_grad
    assert torch.equal(u, torch.zeros_like(u)) and p.shape == (2, 1, 16, 16)
    assert torch.allclose(p.mean((1, 2, 3)), torch.ones(2), rtol=1e-5)
    assert torch.equal(r.render([u, z0, p]), plain.render([z_plain]))
    # S·P² is one constant per image (uncapped): the map re-measured with the same probes (image 0's generator
    # after its start's draw of random codes)
    g0 = torch.Generator().manual_seed(0)
    torch.randint(0, r.model.config.n_embed, (1, 16, 16), generator=g0)
    s = r.sensitivity(z0[:1], g0)
    e = s * p[:1].pow(2)
    assert float(e.std() / e.mean()) < 1e-4
    assert float(s.amax() / s.amin()) > 1.5  # a random decoder is uneven too, so the test checks a real rescaling
    # the chain rule through z = z0 + P ⊙ u
    r.render([u, z0, p]).mean().backward()
    zz = z_plain.detach().clone().requires_grad_(True)
    plain.render([zz]).mean().backward()
    assert torch.allclose(u.grad, p * zz.grad, rtol=1e-4, atol=1e-9)
    # clamping acts on z, not on u
    with torch.no_grad():
        u.add_(1e3)
    r.project([u, z0, p], lambda t: t)
    z = r.latent([u, z0, p])
    cb = r.model.codebook
    assert torch.allclose(z.amax((0, 2, 3)), cb.amax(0), atol=1e-3) and bool(
        (z <= cb.amax(0).view(1, -1, 1, 1) + 1e-3).all()
    )
    assert r.codes([u, z0, p]).shape == (2, 16, 16)
    # the cap holds, and bad options are refused
    capped = build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan), "equalize": True, "equalize_max": 1.2})
    pc = capped.init(1, torch.Generator().manual_seed(0))[2]
    assert float(pc.max()) <= 1.2 + 1e-6 and float(pc.min()) >= 1 / 1.2 - 1e-6
    with pytest.raises(UserError, match="equalize needs"):
        build_renderer("vqgan", 32, {"vqgan": str(tiny_vqgan), "equalize": True, "equalize_probes": 0})
