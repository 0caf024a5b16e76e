"""Tests of text-driven style transfer (CLIPStyler): network, losses, inputs, saving, CLI."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from clip_t2i.errors import UserError
from clip_t2i.renderers.style import (
    StyleNet,
    apply_stylenet,
    directional_loss,
    dominant_colour,
    edge_correlation,
    load_content,
    patch_loss,
    save_stylenet,
    ssim,
    stylize,
    tv_loss,
)


def _img(seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_stylenet_starts_at_the_content() -> None:
    x = _img().clamp(0.01, 0.99)
    torch.testing.assert_close(StyleNet()(x), x, atol=1e-5, rtol=0)


def test_losses_equations() -> None:
    d = torch.nn.functional.normalize(torch.randn(8), dim=0)
    c = torch.zeros(1, 8)
    assert float(directional_loss(d.view(1, 8), c, d)) == pytest.approx(0.0, abs=1e-6)  # aligned direction
    assert float(directional_loss(-d.view(1, 8), c, d)) == pytest.approx(2.0, abs=1e-6)
    p = torch.stack([d, -d])  # losses 0 and 2: tau 0.7 drops the first -> mean (0 + 2) / 2
    assert float(patch_loss(p, c, d, 0.7)) == pytest.approx(1.0, abs=1e-6)
    x = _img()
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(tv_loss(torch.ones(1, 3, 8, 8))) == 0.0
    assert float(edge_correlation(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_dominant_colour_of_flat_colours() -> None:
    from clip_t2i.data.shapes import COLOUR_RGB, COLOURS

    flat = torch.tensor(COLOUR_RGB).view(len(COLOURS), 3, 1, 1).expand(-1, 3, 8, 8)
    assert dominant_colour(flat) == list(COLOURS)
    assert dominant_colour(torch.full((1, 3, 8, 8), 0.5)) == [None]  # grey has no hue


def test_dominant_colour_of_a_lone_small_object() -> None:
    """The smallest objects of the shapes world (small triangles and crosses, under 2 % of a 64² image) on their
    grey backgrounds have the colour they were drawn in; a 10-pixel speck (0.24 %) does not count."""
    from clip_t2i.data.shapes import COLOURS, SHAPES, ShapesWorld

    world = ShapesWorld(size=64)
    sc = world.sample_scenes(60, torch.Generator().manual_seed(0))
    keep = (sc.size[:, 0] == 0) & torch.isin(
        sc.shape[:, 0], torch.tensor([SHAPES.index("triangle"), SHAPES.index("cross")])
    )
    assert int(keep.sum()) >= 5
    x = world.render(sc)[keep]
    assert dominant_colour(x) == [COLOURS[int(c)] for c in sc.colour[keep, 0]]
    speck = torch.full((1, 3, 64, 64), 0.2)
    speck[0, :, 0, :10] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1)
    assert dominant_colour(speck) == [None]


def test_content_sources_and_bad_inputs(tmp_path, monkeypatch) -> None:
    for spec in ("skimage:astronaut", "shapes:3", "digits:0"):
        assert load_content(spec, 32).shape == (1, 3, 32, 32)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read"):
        load_content(str(bad), 32)
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(big)
    monkeypatch.setenv("CLIP_T2I_MAX_IMAGE_SIZE", "32")
    with pytest.raises(UserError, match="CLIP_T2I_MAX_IMAGE_SIZE"):
        load_content(str(big), 32)
    with pytest.raises(UserError, match="empty style text"):
        stylize("shapes:0", "  ", model="shapes-clip")
    monkeypatch.delenv("CLIP_T2I_VGG19", raising=False)
    with pytest.raises(UserError, match="CLIP_T2I_VGG19"):
        stylize("shapes:0", "red", model="shapes-clip", content_loss="vgg")


def test_stylenet_save_and_apply(tmp_path) -> None:
    net = StyleNet()
    with torch.no_grad():
        net.out.bias.fill_(0.3)
    path = save_stylenet(tmp_path / "n.safetensors", net, {"text": "red", "size": 32})
    x = _img(1)
    torch.testing.assert_close(apply_stylenet(path, x), apply_stylenet(net, x))


def test_stylize_writes_outputs_and_cli_refuses_existing(tmp_path) -> None:
    from clip_t2i.cli import app

    res = stylize(
        "shapes:0",
        "blue",
        model="shapes-clip",
        steps=3,
        size=32,
        config={"patches": 2},
        out=tmp_path,
        gif=True,
        save_net=True,
    )
    for key in ("file", "gif", "stylenet"):
        assert (tmp_path / res.record[key]).is_file()
    assert res.image.shape == (1, 3, 32, 32) and len(res.history) == 3
    runner = CliRunner()
    args = ["stylize", "shapes:0", "blue", "--model", "shapes-clip", "--steps", "3", "--size", "32", "--out"]
    bad = runner.invoke(app, [*args, str(tmp_path)])
    assert bad.exit_code != 0  # existing files without --overwrite
    empty = runner.invoke(app, ["stylize", "shapes:0", "", "--out", str(tmp_path / "x")])
    assert empty.exit_code != 0 and not (tmp_path / "x").exists()
