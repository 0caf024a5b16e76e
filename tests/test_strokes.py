"""Tests of the vector-strokes renderer (CLIPDraw): rasteriser, constraints, SVG export, pipeline wiring."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clip_t2i.errors import UserError
from clip_t2i.guidance.config import GuidanceConfig
from clip_t2i.guidance.loop import milestone_factor
from clip_t2i.renderers.base import build_renderer, list_renderers
from clip_t2i.renderers.strokes import CANVAS, StrokeRenderer, bezier_polyline, composite, diffvg_available


def _renderer(size: int = 32, **opts) -> StrokeRenderer:
    return build_renderer("strokes", size, {"num_paths": 6, **opts})  # type: ignore[return-value]


def test_registered_and_torch_fallback() -> None:
    assert "strokes" in list_renderers()
    r = _renderer()
    assert r.backend == ("diffvg" if diffvg_available() else "torch")
    assert _renderer(backend="torch").backend == "torch"


def test_render_range_and_gradients_reach_every_group() -> None:
    r = _renderer(init_width=20.0)
    params = r.init(2, torch.Generator().manual_seed(0))
    img = r.render(params)
    assert img.shape == (2, 3, 32, 32) and float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    img.sum().backward()
    for p in params[:3]:
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_batched_equals_separate() -> None:
    r = _renderer(init_width=10.0)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    both = r.render(r.init(2, gens)).detach()
    one = r.render(r.init(1, [torch.Generator().manual_seed(4)])).detach()
    torch.testing.assert_close(both[1:], one, atol=0, rtol=0)


def test_bezier_endpoints_and_straight_line() -> None:
    pts = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]])
    poly = bezier_polyline(pts, 4)
    torch.testing.assert_close(poly[0, 0], pts[0, 0])
    torch.testing.assert_close(poly[0, -1], pts[0, -1])
    torch.testing.assert_close(poly[0, :, 1], torch.zeros(5))  # collinear control points stay on the line


def test_composite_order() -> None:
    """Two opaque strokes: the later one wins; half-transparent: I = a2 c2 + (1 - a2)(a1 c1 + (1 - a1) bg)."""
    alpha = torch.ones(1, 2, 1, 1)
    rgb = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    bg = torch.tensor([0.5, 0.5, 0.5])
    torch.testing.assert_close(composite(alpha, rgb, bg).flatten(), torch.tensor([0.0, 0.0, 1.0]))
    half = composite(alpha * 0.5, rgb, bg).flatten()
    expect = 0.5 * rgb[0, 1] + 0.5 * (0.5 * rgb[0, 0] + 0.5 * bg)
    torch.testing.assert_close(half, expect)


def test_project_clamps_widths_and_colours() -> None:
    r = _renderer(min_width=2.0, max_width=5.0)
    params = r.init(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        params[1].fill_(100.0)
        params[2].fill_(-1.0)
    r.project(params, lambda x: x)
    assert float(params[1].max()) == 5.0 and float(params[2].min()) == 0.0


def test_alpha_l1_prior_fades_unused_strokes() -> None:
    """With a constant guide (no CLIP gradient on opacity) only the prior moves alpha: it must fall."""
    from clip_t2i.guidance.loop import make_optimizer

    r = _renderer(init_alpha=0.5, alpha_l1=1.0)
    params = r.init(2, torch.Generator().manual_seed(0))
    reg = r.regularizer(params)
    assert reg.shape == (2,) and torch.allclose(reg, torch.full((2,), 0.5))
    assert _renderer().regularizer(params) is None  # off by default
    opt = make_optimizer(r.param_groups(params), GuidanceConfig(steps=5, optimizer="adam", lr=1.0))
    for _ in range(5):
        opt.zero_grad()
        r.regularizer(params).sum().backward()
        opt.step()
        r.project(params, lambda x: x)
    assert float(params[2][..., 3].max()) < 0.5


def test_reflex_turns_zero_for_convex_and_area_of_a_dart() -> None:
    """A convex closed polygon (either orientation, circles of the fill start included) scores 0; a dart scores the
    area its reflex turn sweeps, and descending the penalty straightens the dart."""
    from clip_t2i.renderers.strokes import reflex_turns

    square = _straight_square(32)
    seg4 = torch.tensor([[4]])
    assert float(reflex_turns(square, seg4)) == 0.0
    assert float(reflex_turns(square.flip(2), seg4)) == 0.0  # clockwise
    r = _renderer(fill=True, max_segments=3)
    params = r.init(2, torch.Generator().manual_seed(0))
    assert torch.all(reflex_turns(params[0], params[3]).abs() < 1e-6)
    # dart: anchors (0,0) (100,50) (0,100) (40,50), straight sides; the turn at (40,50) is reflex
    a = torch.tensor([[0.0, 0.0], [100.0, 50.0], [0.0, 100.0], [40.0, 50.0], [0.0, 0.0]])
    ctrl = [a[0]] + [a[i] + (a[i + 1] - a[i]) * t for i in range(4) for t in (1 / 3, 2 / 3, 1.0)]
    dart = torch.stack(ctrl).view(1, 1, 13, 2).requires_grad_(True)
    # reflex cross product at (40,50): e_in = (40,50)-(0,100) in thirds, e_out = (0,0)-(40,50) in thirds
    e_in, e_out = (a[3] - a[2]) / 3, (a[4] - a[3]) / 3
    expected = abs(float(e_in[0] * e_out[1] - e_in[1] * e_out[0])) / CANVAS**2
    pen = reflex_turns(dart, seg4)
    assert float(pen) == pytest.approx(expected, rel=1e-5)
    opt = torch.optim.SGD([dart], lr=2e4)
    for _ in range(20):
        opt.zero_grad()
        reflex_turns(dart, seg4).sum().backward()
        opt.step()
    assert float(reflex_turns(dart, seg4)) < 0.5 * expected
    r = _renderer(fill=True, convexity=2.0)
    params = r.init(1, torch.Generator().manual_seed(0))
    assert r.regularizer(params).shape == (1,)
    with pytest.raises(UserError, match="convexity"):
        _renderer(convexity=-1.0)


def test_init_alpha_starts_every_stroke_faint_but_learnt() -> None:
    r = _renderer(init_alpha=0.05)
    params = r.init(2, torch.Generator().manual_seed(0))
    assert torch.all(params[2][..., 3] == 0.05) and params[2].requires_grad
    assert float(params[2][..., :3].std()) > 0.1  # the RGB part stays random


@pytest.mark.parametrize(
    "opts",
    [
        {"num_paths": 0},
        {"init_width": 0.0},
        {"min_width": -1.0},
        {"max_width": 0.5, "min_width": 1.0},
        {"init_alpha": 1.5},
        {"fill": True, "backend": "diffvg"},
    ],
)
def test_bad_options_are_user_errors(opts) -> None:
    with pytest.raises(UserError):
        build_renderer("strokes", 32, opts)


def test_milestone_schedule() -> None:
    g = {"lr_milestones": [[0.5, 0.4], [0.75, 0.1]]}
    assert [milestone_factor(g, t) for t in (0.0, 0.49, 0.5, 0.74, 0.75, 0.99)] == [1, 1, 0.4, 0.4, 0.1, 0.1]
    assert milestone_factor({}, 0.9) == 1.0  # groups without milestones are unaffected


def _half_plane_aa_error(n: int = 400) -> float:
    """Max over edge angles and offsets of |clamp(s + 1/2, 0, 1) - exact area of the unit pixel inside the edge|
    (the box-filter coverage model vs exact area coverage), measured by supersampling on an n x n grid."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    worst = 0.0
    for theta in torch.linspace(0, math.pi / 4, 10, dtype=torch.float64):
        proj = xx * torch.cos(theta) + yy * torch.sin(theta)
        for s in torch.linspace(-0.8, 0.8, 33, dtype=torch.float64):
            exact = float((proj <= s).double().mean())
            worst = max(worst, abs(min(max(float(s) + 0.5, 0.0), 1.0) - exact))
    return worst + 2.0 / n  # grid resolution


def _cairosvg_mad_and_bound(r: StrokeRenderer, params: list, size: int, samples: int) -> tuple[float, float, str]:
    """Image 0's exported SVG rendered by cairosvg: (MAD to our uint8-quantised raster, the bound derived in
    :func:`test_svg_rerendered_by_cairosvg_matches_raster`, the SVG)."""
    import cairosvg
    from PIL import Image

    raster = r.render(params).detach()[0]
    svg = r.to_svg(params, 0)
    png = cairosvg.svg2png(bytestring=svg.encode())
    ref = torch.from_numpy(np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32) / 255.0)
    mad = float((ref.permute(2, 0, 1) - (raster * 255).round() / 255).abs().mean())
    cov = r.coverage(params)[0]  # [N, H, W]
    band = F.max_pool2d(((cov > 0) & (cov < 1)).float().unsqueeze(1), 3, 1, 1).squeeze(1)
    pts = r._points(params[0][0].detach()) * (size / CANVAS)  # [N, 3K+1, 2] pixels, as rendered
    second = (pts[:, 2:] - 2 * pts[:, 1:-1] + pts[:, :-2]).norm(dim=-1).amax(1)  # |P_{i+2} - 2 P_{i+1} + P_i|
    delta = 6 * second / (8 * samples**2)  # |B''| <= 6 max second difference
    alpha = params[2][0, :, 3].detach()
    per_pixel = (band * (alpha * (2 * _half_plane_aa_error() + delta + 0.1)).view(-1, 1, 1)).sum(0)
    return mad, float(per_pixel.clamp(max=1.0).mean()) + 1.0 / 255, svg


def _straight_square(size: int) -> torch.Tensor:
    """A closed 4-segment path ``[1, 1, 13, 2]`` in 224-units along the square (8.25 .. 24.25 px)^2 of a ``size``
    canvas, each side a straight cubic (inner control points at 1/3 and 2/3). The 1/4 px offset keeps every edge
    off d = 1/2 exactly, where the clamp's gradient vanishes."""
    corners = torch.tensor([[8.0, 8.0], [24.0, 8.0], [24.0, 24.0], [8.0, 24.0], [8.0, 8.0]]) + 0.25
    ctrl = [corners[0]]
    for a, b in zip(corners[:-1], corners[1:], strict=True):
        ctrl += [a + (b - a) / 3, a + 2 * (b - a) / 3, b]
    return (torch.stack(ctrl) * (CANVAS / size)).view(1, 1, 13, 2)


def test_svg_rerendered_by_cairosvg_matches_raster() -> None:
    """cairosvg renders the exported SVG; the mean absolute difference to our raster is below a derived bound.

    Differences can only arise on the edge band of a stroke (where our coverage is in (0, 1), dilated by one
    pixel to hold the pixels cairo's exact area touches and ours does not). There, the alpha error of one stroke
    is at most ``alpha * (2 e_aa + delta + 0.1)``: ``e_aa`` the box-filter vs exact-area error of one edge (two
    edges for sub-pixel strokes), ``delta`` our polyline's chord error (``max|B''| / (8 S^2)``) and 0.1 px cairo's
    default flattening tolerance; a colour channel moves by at most the alpha error. Both images are quantised
    to uint8 (1/255).
    """
    pytest.importorskip("cairosvg")
    size, samples = 48, 8
    r = _renderer(size, num_paths=8, init_width=25.0, samples=samples, background=(0.1, 0.2, 0.3))
    params = r.init(1, torch.Generator().manual_seed(1))
    mad, bound, _ = _cairosvg_mad_and_bound(r, params, size, samples)
    print(f"svg-vs-raster MAD {mad:.5f} < bound {bound:.5f}")
    assert mad < bound, (mad, bound)
    assert mad > 0  # the comparison is real: two different rasterisers


def test_fill_covers_a_square_and_moves_its_edges() -> None:
    """A closed path along a square's edges (straight cubics) covers the interior with 1, the outside with 0, and
    its total coverage is the square's area (the box filter is exact for axis-aligned edges away from the corners,
    and each of the 4 corner pixels is off by < 1/4); the gradient of the covered area moves the corners outward."""
    size = 32
    r = _renderer(size, num_paths=1, max_segments=4, fill=True)
    pts = _straight_square(size).requires_grad_(True)
    params = [pts, torch.ones(1, 1), torch.tensor([[[1.0, 0.0, 0.0, 1.0]]]), torch.tensor([[4]])]
    cov = r.coverage(params)[0, 0]
    assert torch.all(cov[9:23, 9:23] == 1) and torch.all(cov[:7] == 0) and torch.all(cov[:, 25:] == 0)
    assert float(cov.sum()) == pytest.approx(16 * 16, abs=1.0)
    area = 1.0 - r.render(params)[0, 1].mean()  # green channel: 1 outside, 0 inside the red square
    area.backward()
    g = pts.grad[0, 0]
    # the top edge (segment 1, from P0) moves up, the left edge (segment 4, ending at P12) left, the bottom-right
    # corner P6 (between segments 2 and 3) down and right
    assert g[0, 1] < 0 and g[12, 0] < 0 and g[6, 0] > 0 and g[6, 1] > 0


def test_polygon_mode_straightens_segments_and_moves_only_anchors() -> None:
    """``polygon``: a square given by its anchors alone (inner control points random) renders exactly like the
    square built from straight cubics, and its SVG is the same; the inner control points get no gradient."""
    size = 32
    straight = _straight_square(size)
    messy = straight.clone()
    inner = torch.ones(13, dtype=torch.bool)
    inner[0::3] = False
    messy[0, 0, inner] += torch.randn(int(inner.sum()), 2, generator=torch.Generator().manual_seed(0)) * 20
    messy.requires_grad_(True)
    rest = [torch.ones(1, 1), torch.tensor([[[1.0, 0.0, 0.0, 1.0]]]), torch.tensor([[4]])]
    plain = _renderer(size, num_paths=1, max_segments=4, fill=True)
    poly = _renderer(size, num_paths=1, max_segments=4, fill=True, polygon=True)
    a = plain.render([straight, *rest])
    b = poly.render([messy, *rest])
    # the two differ only by float32 rounding of the 1/3 points (coordinates < 224, so < 1e-4 px), and coverage is
    # 1-Lipschitz in the distance
    assert torch.allclose(a, b, atol=1e-4)
    nums = [
        [float(t) for t in re.findall(r"-?\d+\.?\d*", r.to_svg([p, *rest], 0).split("<path")[1].split('"')[1])]
        for r, p in ((plain, straight), (poly, messy))
    ]
    assert len(nums[0]) == len(nums[1]) and all(abs(u - v) <= 1.1e-3 for u, v in zip(*nums, strict=True))
    (1.0 - b[0, 1].mean()).backward()
    assert torch.all(messy.grad[0, 0, inner] == 0) and messy.grad[0, 0, ~inner].abs().sum() > 0


def test_filled_svg_rerendered_by_cairosvg_matches_raster() -> None:
    """As for strokes: differences sit on the edge band, where each boundary contributes at most
    ``alpha * (e_aa + delta + 0.1)``; two boundaries can meet in a band pixel (corners, crossings), hence 2 e_aa."""
    pytest.importorskip("cairosvg")
    size, samples = 48, 8
    r = _renderer(size, num_paths=8, radius=0.15, samples=samples, fill=True, background=(0.1, 0.2, 0.3))
    params = r.init(1, torch.Generator().manual_seed(1))
    with torch.no_grad():  # random edits, so the paths are no longer circles
        params[0] += torch.randn(params[0].shape, generator=torch.Generator().manual_seed(2)) * 8
    mad, bound, svg = _cairosvg_mad_and_bound(r, params, size, samples)
    assert 'fill-rule="evenodd"' in svg and " Z" in svg
    print(f"filled svg-vs-raster MAD {mad:.5f} < bound {bound:.5f}")
    assert 0 < mad < bound, (mad, bound)


def test_generate_writes_svg_and_refuses_existing(tmp_path) -> None:
    import clip_t2i

    kw = dict(model="shapes-clip", preset="strokes", seeds=[0], steps=2, renderer_options={"num_paths": 4})
    res = clip_t2i.generate(["a red circle"], out=tmp_path, gif=True, **kw)
    rec = res.records[0]
    for key in ("file", "gif", "svg"):
        assert (tmp_path / rec[key]).is_file()
    assert (tmp_path / rec["svg"]).read_text().startswith("<svg")
    with pytest.raises(UserError):
        clip_t2i.generate(["a red circle"], out=tmp_path, **kw)
