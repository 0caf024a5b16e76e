"""Renderers, presets, GMM init, output metadata, the generate API and CLI input errors."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.errors import UserError
from clip_t2i.guidance.loop import GuidanceConfig, dynamic_threshold
from clip_t2i.renderers.base import InitContext, build_renderer, list_renderers
from clip_t2i.renderers.outputs import read_image_record, save_png
from clip_t2i.renderers.presets import get_preset, list_presets, preset_from_dict
from clip_t2i.renderers.priors import GaussianPrior, pick_by_clip

torch.set_num_threads(1)


def test_registry_and_unknown_renderer():
    assert {"pixels", "pyramid"} <= set(list_renderers())
    with pytest.raises(UserError, match="choose one of"):
        build_renderer("vqgan-nope", 32)
    with pytest.raises(UserError, match="valid keys"):
        build_renderer("pixels", 32, {"init": "grey", "colour": 3})


def test_coarse_init_is_smooth_seeded_and_off_by_default():
    """``init_coarse`` adds 8×8 noise upsampled bilinearly: seeded, smooth (neighbour differences far below pixel
    noise's) and off by default."""
    base = {"init": "grey", "init_grey": 0.5, "init_noise": 0.0}
    flat = build_renderer("pixels", 64, base).init(2, torch.Generator().manual_seed(0))[0]
    assert torch.equal(flat, torch.full_like(flat, 0.5))
    rend = build_renderer("pixels", 64, {**base, "init_coarse": 0.1})
    a = rend.init(2, torch.Generator().manual_seed(0))[0]
    b = rend.init(2, torch.Generator().manual_seed(0))[0]
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])  # seeded, and one draw per image
    d = a - 0.5
    # per-pixel std: 0.1 times the bilinear weights' norm (≈ 2/3 inside the canvas), estimated from 384 grid values
    assert 0.045 < float(d.std()) < 0.09
    # smooth: a neighbour difference of upsampled 8×8 noise has mean square ≈ 2σ²/64, against 2σ² for pixel noise,
    # so its ratio to the variance is ≈ 0.07 (white noise: 2)
    ratio = float((d[..., 1:] - d[..., :-1]).pow(2).mean() / d.var())
    assert ratio < 0.5
    with pytest.raises(UserError, match="init_coarse"):
        build_renderer("pixels", 64, {**base, "init_coarse": -1.0})


def test_pyramid_roundtrip_and_projection():
    rend = build_renderer("pyramid", 32, {"init": "grey", "init_noise": 0.3, "levels": 4})
    params = rend.init(2, torch.Generator().manual_seed(0))
    assert [p.shape[-1] for p in params] == [32, 16, 8, 4]
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(rend.render(rend.decompose(x)), x, atol=1e-6)
    with torch.no_grad():
        params[2] += 0.8  # push out of range through a coarse level
    before = rend.render(params).detach()
    rend.project(params, lambda im: dynamic_threshold(im, 0.95))
    assert torch.allclose(rend.render(params), dynamic_threshold(before, 0.95), atol=1e-5)
    with pytest.raises(UserError, match="pyramid levels"):
        build_renderer("pyramid", 20, {"levels": 4})


def test_gaussian_prior_pool_covers_all_classes_and_moments():
    n_classes, d = 50, 3 * 4 * 4
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n_classes).repeat_interleave(6)
    base = (labels.float() / n_classes).view(-1, 1, 1, 1).expand(-1, 3, 4, 4)
    images = (base + 0.002 * torch.randn(base.shape, generator=g)).clamp(0, 1)
    prior = GaussianPrior.fit(images, labels, resolution=4, eps=1e-8)
    pool = prior.sample_pool(1000, torch.Generator().manual_seed(1))
    assert pool.shape == (1000, 3, 4, 4)
    found = torch.round(pool.mean(dim=(1, 2, 3)) * n_classes).long()
    counts = torch.bincount(found, minlength=n_classes)
    assert (counts == 20).all()  # every class, 1000 / 50 each (the notebook bug used only 20 classes)
    # a class with more samples than dimensions uses a Cholesky factor: sample covariance matches Sigma + eps I
    x = torch.randn(400, d, generator=g) @ torch.randn(d, d, generator=g) * 0.01
    big = GaussianPrior.fit(((x + 0.5).clamp(0, 1)).view(-1, 3, 4, 4), torch.zeros(400, dtype=torch.long), 4)
    assert not big.low_rank[0]
    s = big.sample(torch.zeros(4000, dtype=torch.long), torch.Generator().manual_seed(2)).flatten(1) * 2 - 1
    xc = ((x + 0.5).clamp(0, 1)) * 2 - 1
    cov_data = torch.cov(xc.T, correction=0)
    assert (torch.cov(s.T) - cov_data).abs().max() < 0.1 * cov_data.abs().max()


def test_pick_by_clip_takes_the_closest():
    class Clip:
        def encode_image(self, x):
            return F.normalize(x.mean(dim=(2, 3)), dim=-1)

    pool = torch.zeros(3, 3, 4, 4)
    pool[0, 0], pool[1, 1], pool[2, 2] = 1.0, 1.0, 1.0
    picked = pick_by_clip(pool, Clip(), torch.tensor([0.0, 1.0, 0.0]), 8)
    assert picked.shape == (3, 8, 8) and picked[1].min() == 1.0


def test_gmm_init_through_renderer():
    class Clip:
        def encode_image(self, x):
            return F.normalize(x.mean(dim=(2, 3)) - 0.5, dim=-1)

    class Targets:
        def positive_direction(self):
            return torch.tensor([[1.0, -1.0, -1.0]]) / 3**0.5

    rend = build_renderer("pixels", 16, {"init": "gmm", "gmm_data": "shapes", "gmm_pool": 64})
    params = rend.init(1, [torch.Generator().manual_seed(0)], InitContext(clip=Clip(), targets=Targets()))
    rgb = params[0][0].mean(dim=(1, 2))
    assert rgb[0] > rgb[1] and rgb[0] > rgb[2]  # a reddish member of the pool was picked
    with pytest.raises(UserError, match="needs the guiding CLIP"):
        rend.init(1, torch.Generator())
    with pytest.raises(UserError, match="gmm_hue"):
        build_renderer("pixels", 16, {"init": "gmm", "gmm_hue": 1.5})


def test_hue_rotation_pool():
    from clip_t2i.renderers.priors import hue_rotate

    x = torch.rand(3, 3, 5, 5) * 0.5 + 0.25
    assert torch.allclose(hue_rotate(x, torch.zeros(3)), x, atol=1e-6)
    third = hue_rotate(x, torch.full((3,), 2 * torch.pi / 3))  # a third of a turn permutes the channels
    assert torch.allclose(third, x[:, [2, 0, 1]], atol=1e-5)
    grey = torch.full((1, 3, 2, 2), 0.3)
    assert torch.allclose(hue_rotate(grey, torch.tensor([1.234])), grey, atol=1e-6)
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 0.8
    green_ish = hue_rotate(red, torch.tensor([2 * torch.pi / 3]))  # red -> green
    assert green_ish[0, 1] > green_ish[0, 0] and green_ish[0, 1] > green_ish[0, 2]


def test_presets_registry():
    names = list_presets()
    assert "clipag" in names and "retrieval" in names and "fast" not in names
    from clip_t2i.renderers.presets import DEFAULT_PRESET

    assert DEFAULT_PRESET == "draw" and get_preset(DEFAULT_PRESET).renderer_options["init"] == "grey"
    with pytest.warns(UserWarning, match="'fast' is now called 'retrieval'"):
        old = get_preset("fast")  # the renamed preset keeps working under its old name
    assert old == get_preset("retrieval")
    p = get_preset("clipag")
    g = p.guidance
    assert (g.steps, g.lr, g.grad_clip, g.global_views, g.patch_views, g.patch_weight) == (
        100,
        0.0175,
        0.001,
        32,
        32,
        5.0,
    )
    assert (g.projection, g.threshold_quantile, g.keep_best, g.optimizer) == ("dynamic", 0.95, True, "adamw")
    assert p.renderer == "pixels" and p.renderer_options["init"] == "gmm"
    p.renderer_options["init"] = "grey"
    assert get_preset("clipag").renderer_options["init"] == "gmm"  # a copy each time
    with pytest.raises(UserError, match="choose one of"):
        get_preset("nope")
    with pytest.raises(UserError, match="valid keys"):
        preset_from_dict("x", {"renderer": "pixels", "guidance": {"stepz": 3}})
    with pytest.raises(UserError, match="must be an integer"):
        preset_from_dict("x", {"guidance": {"steps": "many"}})
    with pytest.raises(UserError, match="steps"):
        preset_from_dict("x", {"guidance": {"steps": -1}})
    assert isinstance(p.with_overrides(guidance={"steps": 7}).guidance, GuidanceConfig)


def test_png_metadata_and_sidecar_roundtrip(tmp_path):
    img = torch.rand(3, 16, 16)
    rec = {
        "prompt": "a red circle:1 | blurry:-0.5",
        "seed": 3,
        "model": "m",
        "renderer": "pixels",
        "preset": "retrieval",
        "settings": {"guidance": {"steps": 2}},
    }
    path = save_png(tmp_path / "x.png", img, rec)
    got, pixels = read_image_record(path)
    assert got == rec
    assert (pixels - img).abs().max() <= 1 / 255 + 1e-6
    from PIL import Image

    with Image.open(path) as im:
        assert im.text["prompt"] == rec["prompt"] and im.text["seed"] == "3" and im.text["renderer"] == "pixels"
    assert json.loads((tmp_path / "x.json").read_text()) == rec
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "bare.png")
    (tmp_path / "bare.json").write_text(json.dumps({"prompt": "a blue square"}))
    assert read_image_record(tmp_path / "bare.png")[0] == {"prompt": "a blue square"}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_generate_api_writes_files_with_metadata(tmp_path):
    from clip_t2i.backbones import load_clip
    from clip_t2i.pipeline import generate

    clip = load_clip("vit-t32")
    res = generate(
        ["a red circle", "a blue square"],
        model=clip,
        seeds="0-1",
        steps=2,
        preset="retrieval",
        out=tmp_path,
        gif=True,
        guidance={"global_views": 2, "patch_views": 2},
    )
    assert res.images.shape == (4, 3, 32, 32)
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 4 and len(list(tmp_path.glob("*.gif"))) == 4 and len(list(tmp_path.glob("*.json"))) == 4
    rec, _ = read_image_record(pngs[0])
    assert rec["prompt"] == "a red circle" and rec["seed"] == 0 and rec["preset"] == "retrieval"
    assert rec["settings"]["guidance"]["steps"] == 2


def _cli(monkeypatch, capsys, *args):
    from clip_t2i import cli

    monkeypatch.setattr(sys, "argv", ["clip-t2i", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["", "--model", "vit-t32"], "empty prompt"),
        (["a red circle:x", "--model", "vit-t32"], "malformed weight"),
        (["a red circle:-1", "--model", "vit-t32"], "positive weight"),
        (["a red circle", "--model", "vit-t32", "--steps", "0"], "--steps"),
        (["a red circle", "--model", "vit-t32", "--seeds", "3-1"], "backwards"),
        (["a red circle", "--model", "vit-t32", "--init-image", "NOTANIMAGE"], "init image"),
        (["a red circle", "--model", "vit-t32", "--preset", "nope"], "unknown preset"),
        (["a red circle", "--model", "no-such-model-xyz"], "unknown model"),
    ],
)
def test_cli_bad_input_one_line_exit_2_no_files(monkeypatch, capsys, tmp_path, args, needle):
    out = tmp_path / "out"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    args = [str(bad) if a == "NOTANIMAGE" else a for a in args]
    code, err = _cli(monkeypatch, capsys, "generate", *args, "--out", str(out), "--no-progress")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error:") and needle in err
    assert not out.exists()


def test_cli_unwritable_out(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _cli(monkeypatch, capsys, "generate", "a red circle", "--model", "vit-t32", "--out", str(blocker / "o"))
    assert code == 2 and "not writable" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_mp4_without_encoder(monkeypatch, capsys, tmp_path):
    import clip_t2i.renderers.outputs as outputs

    monkeypatch.setattr(outputs, "find_ffmpeg", lambda: None)
    out = tmp_path / "o"
    code, err = _cli(monkeypatch, capsys, "generate", "a red circle", "--model", "vit-t32", "--mp4", "--out", str(out))
    assert code == 2 and "--mp4 needs" in err and err.count("\n") == 1 and not out.exists()


def test_seed_parsing():
    from clip_t2i.pipeline import parse_seeds

    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("1,5, 9") == [1, 5, 9] and parse_seeds(4) == [4]
    for bad in ("a", "1,,2", "-1", "5-2"):
        with pytest.raises(UserError):
            parse_seeds(bad)


def test_demo_grid(tmp_path):
    from clip_t2i.backbones import load_clip
    from clip_t2i.pipeline import demo_grid

    path = demo_grid(
        load_clip("vit-t32"),
        out=tmp_path,
        prompts=["a red circle", "a blue square"],
        progress=False,
        steps=2,
        renderer_options={"init": "grey"},
        compare=None,
    )
    assert path.name == "grid.png" and len(list(tmp_path.glob("*.png"))) == 3
    rec, _ = read_image_record(path)
    assert rec["kind"] == "grid" and rec["model"] == "vit-t32"
    side = demo_grid(
        load_clip("vit-t32"),
        out=tmp_path / "cmp",
        prompts=["a red circle"],
        progress=False,
        steps=1,
        compare=load_clip("vit-t32"),
        overwrite=False,
    )
    rec, _ = read_image_record(side)
    assert rec["models"] == ["vit-t32", "vit-t32"] and len(rec["files"]) == 2


def test_world_hue_steps_turn_world_colours_onto_world_colours():
    """The retrieval pool's hue rotations map every world colour's chroma onto another world colour's exactly."""
    from clip_t2i.data.shapes import COLOUR_RGB
    from clip_t2i.renderers.priors import chroma_angle, hue_rotate, world_hue_steps

    steps = world_hue_steps("shapes")
    assert world_hue_steps("digits") is None
    assert bool((steps.abs() < 1e-6).any()) and len(steps) <= 6 * 5 + 1
    rgb = torch.tensor(COLOUR_RGB)
    grey = rgb.mean(1, keepdim=True)
    chroma = rgb - grey
    for i in range(len(rgb)):
        for j in range(len(rgb)):
            angle = (chroma_angle(rgb[j]) - chroma_angle(rgb[i])).view(1)
            assert any(torch.isclose(torch.remainder(angle - s + torch.pi, 2 * torch.pi) - torch.pi, torch.zeros(1),
                                     atol=1e-5) for s in steps)  # fmt: skip
            # a tiny colour patch of colour i turned by that step points along colour j's chroma
            soft = grey[i] + 0.5 * chroma[i]  # a less saturated colour i, so the rotation is never clamped
            turned = hue_rotate(soft.view(1, 3, 1, 1), angle).view(3)
            c = turned - turned.mean()
            cos = float(c @ chroma[j] / (c.norm() * chroma[j].norm()))
            assert cos > 0.999, (i, j, cos)
