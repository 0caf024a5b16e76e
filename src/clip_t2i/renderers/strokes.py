"""Vector strokes (CLIPDraw): open cubic Bézier paths rasterised differentiably, with SVG export.

Parameters per image (leading dim = image, ``N`` paths, up to ``max_segments`` cubic segments each):

* ``points [B, N, 3 * max_segments + 1, 2]`` control points in *224-units* (the canvas is 224 wide whatever its
  pixel size, so CLIPDraw's learning rates and width limits keep their meaning at any resolution);
* ``widths [B, N]`` stroke widths in 224-units, clamped to ``[min_width, max_width]`` after each step;
* ``colours [B, N, 4]`` RGBA in [0, 1];
* ``segments [B, N]`` (no gradient): how many segments each path uses (1..max_segments).

Rasteriser (pure torch, :func:`rasterise`): each segment is flattened into ``samples`` chords; a pixel's
distance ``d`` to a path is its distance to the nearest chord (round caps and joins, like SVG
``stroke-linecap="round"``). Coverage is a one-pixel box filter of the stroke's cross-section,
``c = min(w, 1) * clamp(max(w, 1) / 2 + 1/2 - d, 0, 1)`` (strokes thinner than a pixel become one-pixel lines
of opacity ``w``), alpha ``a = c * colour_alpha``, and paths are composited in order over the background:
``I = bg * prod_i (1 - a_i) + sum_i a_i rgb_i prod_{j > i} (1 - a_j)``. The nearest chord is found without
gradient, then the distance is recomputed with gradient to that chord only (the exact gradient of a min).

With ``fill`` each path is closed by a straight chord back to its start and filled instead of stroked: coverage
``c = clamp(1/2 + s d, 0, 1)`` with ``s = +1`` inside (even-odd rule, decided without gradient) and ``-1`` outside,
so the one-pixel box filter sits on the boundary and the gradient moves the boundary (widths are then unused).
Filled paths start as small circles (``radius`` of the canvas) at uniform random centres. With ``polygon`` every
segment is straight: its two inner control points are put at 1/3 and 2/3 of the chord between its anchors
(``P_{3s}``, ``P_{3s+3}``) before rendering, so only the anchors move (a filled path is then a polygon with corners).

When ``pydiffvg`` is importable and ``backend`` is ``auto`` or ``diffvg``, rendering goes through diffvg
instead (same parameters, same compositing); it is not on PyPI, so ``auto`` normally means torch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.renderers.base import InitContext, per_image_generators, register_renderer
from clip_t2i.renderers.options import StrokeOptions  # noqa: F401 - defined without torch, re-exported

CANVAS = 224.0  # the unit canvas side of the parameters (CLIPDraw's resolution)
BACKENDS = ("auto", "torch", "diffvg")


def diffvg_available() -> bool:
    """True if ``pydiffvg`` can be imported."""
    return importlib.util.find_spec("pydiffvg") is not None


def _check(o: StrokeOptions) -> None:
    if o.num_paths < 1:
        raise UserError(f"num_paths must be >= 1 (zero strokes draw nothing), got {o.num_paths}")
    if o.max_segments < 1 or o.samples < 1 or o.tile < 1:
        raise UserError("max_segments, samples and tile must be >= 1")
    if not (o.init_width > 0 and o.min_width > 0 and o.max_width >= o.min_width):
        raise UserError(
            f"stroke widths must be > 0 with min_width <= max_width, got init {o.init_width}, "
            f"min {o.min_width}, max {o.max_width}"
        )
    if len(o.background) != 3 or not all(0.0 <= c <= 1.0 for c in o.background):
        raise UserError(f"background must be three numbers in [0, 1], got {o.background}")
    if o.backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {o.backend!r}")
    if o.backend == "diffvg" and not diffvg_available():
        raise UserError("backend 'diffvg' needs pydiffvg (build BachiLi/diffvg from source) or use backend=torch")
    if o.fixed_alpha is not None and not 0.0 < o.fixed_alpha <= 1.0:
        raise UserError(f"fixed_alpha must lie in (0, 1], got {o.fixed_alpha}")
    if o.alpha_l1 < 0:
        raise UserError(f"alpha_l1 must be >= 0, got {o.alpha_l1}")
    if o.convexity < 0:
        raise UserError(f"convexity must be >= 0, got {o.convexity}")
    if o.init_alpha is not None and not 0.0 <= o.init_alpha <= 1.0:
        raise UserError(f"init_alpha must lie in [0, 1], got {o.init_alpha}")
    if o.fill and o.backend == "diffvg":
        raise UserError("fill=true is drawn by the torch rasteriser only; use backend=torch or auto")


def bezier_polyline(points: Tensor, samples: int) -> Tensor:
    """Flatten cubic Bézier chains ``[..., 3K + 1, 2]`` into ``[..., K * samples + 1, 2]`` polyline vertices:
    ``B(t) = (1-t)^3 P0 + 3 (1-t)^2 t P1 + 3 (1-t) t^2 P2 + t^3 P3`` at ``t = j / samples``."""
    k = (points.shape[-2] - 1) // 3
    t = torch.linspace(0.0, 1.0, samples + 1, device=points.device, dtype=points.dtype)[:-1]
    basis = torch.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3], -1)  # [S, 4]
    idx = torch.arange(k, device=points.device).unsqueeze(1) * 3 + torch.arange(4, device=points.device)  # [K, 4]
    ctrl = points[..., idx, :]  # [..., K, 4, 2]
    curve = torch.einsum("sc,...kcd->...ksd", basis, ctrl).flatten(-3, -2)  # [..., K*S, 2]
    return torch.cat([curve, points[..., -1:, :]], -2)


def _chord_distance(p: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distance of points ``p`` to segments ``a``-``b`` (broadcast over leading dims, last dim 2)."""
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)
    q = a + t.clamp(0.0, 1.0).unsqueeze(-1) * ab
    return (p - q).pow(2).sum(-1).add(1e-12).sqrt()


def polygonise(points: Tensor) -> Tensor:
    """Straight segments: ``P_{3s+1} = P_{3s} + (P_{3s+3} - P_{3s}) / 3`` and ``P_{3s+2} = P_{3s} + 2 (P_{3s+3} -
    P_{3s}) / 3`` for every segment of ``points [..., 3K + 1, 2]`` (the anchors are kept; gradients reach only them)."""
    a = points[..., 0::3, :]  # [..., K + 1, 2]
    d = a[..., 1:, :] - a[..., :-1, :]
    inner = torch.stack([a[..., :-1, :], a[..., :-1, :] + d / 3, a[..., :-1, :] + 2 * d / 3], -2)  # [..., K, 3, 2]
    return torch.cat([inner.flatten(-3, -2), a[..., -1:, :]], -2)


def _crosses(p: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Whether the ray from points ``p`` towards +x crosses segments ``a``-``b`` (half-open in y, so a vertex on
    the ray is counted once): the even-odd rule's test."""
    py, ay, by = p[..., 1], a[..., 1], b[..., 1]
    straddle = (ay > py) != (by > py)
    x_at = a[..., 0] + (py - ay) * (b[..., 0] - a[..., 0]) / torch.where(straddle, by - ay, torch.ones_like(by))
    return straddle & (p[..., 0] < x_at)


def path_coverage(
    points_px: Tensor,
    widths_px: Tensor,
    segments: Tensor,
    size: int,
    samples: int,
    tile: int = 16,
    fill: bool = False,
) -> Tensor:
    """Per-path coverage ``[B, N, H, W]`` (see :func:`stroke_coverage`) of pixel centres by each path's polyline
    (``fill``: by the closed path's interior, ``clamp(1/2 + s d, 0, 1)``, see the module docstring).

    ``points_px [B, N, 3K+1, 2]`` and ``widths_px [B, N]`` in pixels; chords past a path's ``segments`` count
    are ignored. Work is limited to the ``tile`` x ``tile`` pixel tiles that each path's bounding box (grown by
    its half width + 1 px, beyond which coverage is 0) touches; outside them the coverage is exactly 0.
    """
    b, n = points_px.shape[:2]
    dev, dt = points_px.device, points_px.dtype
    verts = bezier_polyline(points_px, samples)  # [B, N, L+1, 2]
    a_all, b_all = verts[..., :-1, :], verts[..., 1:, :]  # [B, N, L, 2]
    n_chords = a_all.shape[-2]
    valid = torch.arange(n_chords, device=dev) < (segments.unsqueeze(-1) * samples)  # [B, N, L]
    if fill:  # close every path: one more chord from its last used vertex back to its first
        end = torch.gather(verts, 2, (segments * samples).view(b, n, 1, 1).expand(b, n, 1, 2))
        a_all, b_all = torch.cat([a_all, end], 2), torch.cat([b_all, verts[..., :1, :]], 2)
        valid = torch.cat([valid, torch.ones_like(valid[..., :1])], -1)
        n_chords += 1
    nt = -(-size // tile)
    with torch.no_grad():
        vmask = torch.arange(verts.shape[2], device=dev) <= (segments.unsqueeze(-1) * samples)
        vmask = vmask.unsqueeze(-1)  # [B, N, L+1, 1]: the vertices of the used segments
        lo = verts.detach().masked_fill(~vmask, float("inf")).amin(2)  # [B, N, 2]
        hi = verts.detach().masked_fill(~vmask, float("-inf")).amax(2)
        reach = (torch.ones_like(widths_px) if fill else widths_px.detach().clamp(min=1.0) / 2 + 1.0).unsqueeze(-1)
        lo, hi = lo - reach, hi + reach
        edges = torch.arange(nt, device=dev, dtype=dt) * tile  # tile [e, e + tile)
        over_x = (hi[..., :1] >= edges) & (lo[..., :1] <= edges + tile)  # [B, N, nt]
        over_y = (hi[..., 1:] >= edges) & (lo[..., 1:] <= edges + tile)
        pairs = (over_y.unsqueeze(-1) & over_x.unsqueeze(-2)).nonzero()  # [M, 4]: b, n, ty, tx
    bi, ni, ty, tx = pairs.unbind(1)
    local = torch.arange(tile, device=dev, dtype=dt) + 0.5
    offs = torch.stack(torch.meshgrid(local, local, indexing="xy"), -1).view(1, tile * tile, 2)  # x, y
    pix = offs + torch.stack([tx, ty], -1).to(dt).unsqueeze(1) * tile  # [M, T*T, 2]
    a_p, b_p, v_p = a_all[bi, ni], b_all[bi, ni], valid[bi, ni]  # [M, L, 2], [M, L]
    m = pairs.shape[0]
    nearest = torch.empty(m, tile * tile, dtype=torch.long, device=dev)
    inside = torch.zeros(m, tile * tile, dtype=torch.bool, device=dev)
    with torch.no_grad():
        step = max(1, 2_000_000 // max(1, tile * tile * n_chords))
        for s in range(0, m, step):
            chunk = slice(s, s + step)
            p_c, a_c, b_c = pix[chunk].unsqueeze(2), a_p[chunk].detach().unsqueeze(1), b_p[chunk].detach().unsqueeze(1)
            v_c = v_p[chunk].unsqueeze(1)
            d = _chord_distance(p_c, a_c, b_c)  # [m', TT, L]
            nearest[chunk] = d.masked_fill(~v_c, float("inf")).argmin(-1)
            if fill:
                inside[chunk] = (_crosses(p_c, a_c, b_c) & v_c).sum(-1) % 2 == 1
    idx = nearest.unsqueeze(-1).expand(m, tile * tile, 2)
    d = _chord_distance(pix, torch.gather(a_p, 1, idx), torch.gather(b_p, 1, idx))  # [M, TT]
    if fill:
        cov = (0.5 + torch.where(inside, d, -d)).clamp(0.0, 1.0)  # [M, TT]
    else:
        cov = stroke_coverage(d, widths_px[bi, ni].unsqueeze(-1))  # [M, TT]
    dense = torch.zeros(b, n, nt, nt, tile, tile, device=dev, dtype=cov.dtype)
    dense = dense.index_put((bi, ni, ty, tx), cov.view(m, tile, tile))
    return dense.permute(0, 1, 2, 4, 3, 5).reshape(b, n, nt * tile, nt * tile)[..., :size, :size]


def stroke_coverage(distance: Tensor, widths_px: Tensor) -> Tensor:
    """Box-filtered coverage ``c = min(w, 1) * clamp(max(w, 1) / 2 + 1/2 - d, 0, 1)`` (``widths_px`` broadcasts
    against ``distance``)."""
    w = widths_px
    return w.clamp(max=1.0) * (w.clamp(min=1.0) / 2 + 0.5 - distance).clamp(0.0, 1.0)


def composite(alpha: Tensor, rgb: Tensor, background: Tensor) -> Tensor:
    """Paint in order over the background: ``I = bg prod_i (1 - a_i) + sum_i a_i c_i prod_{j>i} (1 - a_j)``.

    ``alpha [B, N, H, W]``, ``rgb [B, N, 3]``, ``background [3]`` -> ``[B, 3, H, W]``.
    """
    keep = 1.0 - alpha
    # transmittance after path i: prod_{j > i} (1 - a_j) = reverse exclusive cumprod
    rev = torch.cumprod(keep.flip(1), 1).flip(1)  # prod_{j >= i}
    after = torch.cat([rev[:, 1:], torch.ones_like(rev[:, :1])], 1)  # prod_{j > i}
    weight = alpha * after  # [B, N, H, W]
    img = torch.einsum("bnhw,bnc->bchw", weight, rgb)
    return img + background.view(1, 3, 1, 1) * rev[:, :1]


def rasterise(
    points: Tensor,
    widths: Tensor,
    colours: Tensor,
    segments: Tensor,
    size: int,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    samples: int = 8,
    tile: int = 16,
    fill: bool = False,
) -> Tensor:
    """Differentiable render ``[B, 3, size, size]`` of stroke parameters in 224-units (see module docstring)."""
    scale = size / CANVAS
    cov = path_coverage(points * scale, widths * scale, segments, size, samples, tile, fill)
    alpha = cov * colours[..., 3].view(*colours.shape[:2], 1, 1)
    bg = torch.tensor(list(background), dtype=points.dtype, device=points.device)
    return composite(alpha, colours[..., :3], bg)


def _rasterise_diffvg(
    points: Tensor, widths: Tensor, colours: Tensor, segments: Tensor, size: int, background: Sequence[float]
) -> Tensor:  # pragma: no cover - needs a compiled diffvg
    import pydiffvg  # type: ignore[import-not-found]

    scale = size / CANVAS
    render = pydiffvg.RenderFunction.apply
    out = []
    for bi in range(points.shape[0]):
        shapes, groups = [], []
        for i in range(points.shape[1]):
            k = int(segments[bi, i])
            shapes.append(
                pydiffvg.Path(
                    num_control_points=torch.full((k,), 2, dtype=torch.int32),
                    points=points[bi, i, : 3 * k + 1] * scale,
                    stroke_width=widths[bi, i] * scale,
                    is_closed=False,
                )
            )
            groups.append(
                pydiffvg.ShapeGroup(shape_ids=torch.tensor([i]), fill_color=None, stroke_color=colours[bi, i])
            )
        args = pydiffvg.RenderFunction.serialize_scene(size, size, shapes, groups)
        rgba = render(size, size, 2, 2, 0, None, *args)  # [H, W, 4]
        bg = torch.tensor(list(background), dtype=rgba.dtype, device=rgba.device)
        out.append((rgba[..., 3:] * rgba[..., :3] + (1 - rgba[..., 3:]) * bg).permute(2, 0, 1))
    return torch.stack(out)


def _fmt(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".") or "0"


def strokes_to_svg(
    points: Tensor,
    widths: Tensor,
    colours: Tensor,
    segments: Tensor,
    size: int,
    background: Sequence[float],
    fill: bool = False,
) -> str:
    """One image's strokes (``points [N, 3K+1, 2]`` etc. in 224-units) as an SVG document of ``size`` pixels
    (``fill``: closed paths filled with the even-odd rule, no stroke)."""
    scale = size / CANVAS
    bg = ",".join(str(round(float(c) * 255)) for c in background)
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
        f'<rect x="0" y="0" width="{size}" height="{size}" fill="rgb({bg})"/>',
    ]
    pts = (points.detach().double().cpu() * scale).tolist()
    for i in range(points.shape[0]):
        k = int(segments[i])
        p = pts[i]
        d = f"M {_fmt(p[0][0])} {_fmt(p[0][1])}"
        for s in range(k):
            c = p[3 * s + 1 : 3 * s + 4]
            d += " C " + " ".join(f"{_fmt(x)} {_fmt(y)}" for x, y in c)
        r, g, b, a = (float(v) for v in colours[i].detach().clamp(0, 1).cpu())
        if fill:
            lines.append(
                f'<path d="{d} Z" fill="rgb({r * 255:.2f},{g * 255:.2f},{b * 255:.2f})" fill-opacity="{a:.5f}" '
                'fill-rule="evenodd" stroke="none"/>'
            )
            continue
        lines.append(
            f'<path d="{d}" fill="none" stroke="rgb({r * 255:.2f},{g * 255:.2f},{b * 255:.2f})" '
            f'stroke-opacity="{a:.5f}" stroke-width="{float(widths[i].detach()) * scale:.4f}" '
            'stroke-linecap="round" stroke-linejoin="round"/>'
        )
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def reflex_turns(points: Tensor, segments: Tensor) -> Tensor:
    """Per path ``[B, N]``: how far its closed control polygon is from convex,
    ``Σ_i relu(-s · (e_i × e_{i+1})) / CANVAS²`` over the ``3 · segments + 1`` used control points taken cyclically,
    ``e_i = v_{i+1} - v_i`` and ``s = sign(Σ_i e_i × e_{i+1})`` the polygon's orientation (held fixed). A convex
    control polygon scores 0 and, by the variation-diminishing property of Bézier curves, bounds a convex filled
    shape (a polygon that winds twice, such as a pentagram, also scores 0). Reflex turns, the darts and cusps
    of a filled path, are penalised by their area."""
    b, n, p, _ = points.shape
    m = (3 * segments.long() + 1).clamp(max=p).unsqueeze(-1)  # [B, N, 1]
    i = torch.arange(p, device=points.device).view(1, 1, p)
    valid = i < m
    nxt, nxt2 = (i + 1) % m, (i + 2) % m
    take = lambda idx: points.gather(2, idx.unsqueeze(-1).expand(b, n, p, 2))  # noqa: E731
    v1, v2 = take(nxt), take(nxt2)
    e1, e2 = v1 - points, v2 - v1
    cross = (e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]).masked_fill(~valid, 0.0)
    s = torch.where(cross.sum(-1, keepdim=True).detach() < 0, -1.0, 1.0)
    return torch.relu(-s * cross).sum(-1) / CANVAS**2


@register_renderer
class StrokeRenderer:
    """CLIPDraw strokes; ``params = [points, widths, colours, segments]`` (see the module docstring)."""

    name: ClassVar[str] = "strokes"
    Options = StrokeOptions

    def __init__(self, *, size: int, options: StrokeOptions | None = None) -> None:
        if size < 8:
            raise UserError(f"image size must be >= 8, got {size}")
        self.size = int(size)
        self.options = options or StrokeOptions()
        _check(self.options)
        self.backend = (
            "diffvg"
            if self.options.backend == "diffvg"
            or (self.options.backend == "auto" and diffvg_available() and not self.options.fill)
            else "torch"
        )

    def init(
        self, batch: int, generator: torch.Generator | Sequence[torch.Generator], context: InitContext | None = None
    ) -> list[Tensor]:
        """CLIPDraw's start: uniform start point, each control point a random-walk step of ``radius`` from the
        previous one, 1..max_segments segments, width ``init_width``, uniform random RGBA (alpha ``init_alpha`` when
        set: a faint start leaves the strokes the gradient does not use near-invisible instead of clutter). With
        ``fill``, each path starts as a circle of radius ``radius`` around its uniform start point instead."""
        o = self.options
        gens = per_image_generators(batch, generator)
        n, k = o.num_paths, o.max_segments
        pts, cols, segs = [], [], []
        for g in gens:
            seg = torch.randint(1, k + 1, (n,), generator=g)
            start = torch.rand(n, 1, 2, generator=g)
            if o.fill:  # a circle of radius `radius` through the 3 * seg + 1 control points, the rest on its end
                j = torch.arange(3 * k + 1).view(1, -1)
                frac = (j / (3 * seg.view(-1, 1))).clamp(max=1.0)  # [n, 3k+1]
                ang = 2 * torch.pi * frac
                ring = torch.stack([ang.cos(), ang.sin()], -1) * o.radius
                pts.append((start + ring) * CANVAS)
            else:
                steps = (torch.rand(n, 3 * k, 2, generator=g) - 0.5) * o.radius
                pts.append(torch.cat([start, start + steps.cumsum(1)], 1) * CANVAS)
            col = torch.rand(n, 4, generator=g)
            if o.init_alpha is not None:
                col[:, 3] = o.init_alpha
            if o.fixed_alpha is not None:
                col[:, 3] = o.fixed_alpha
            cols.append(col)
            segs.append(seg)
        points = torch.stack(pts).requires_grad_(True)
        widths = torch.full((batch, n), float(o.init_width)).clamp(o.min_width, o.max_width).requires_grad_(True)
        colours = torch.stack(cols).requires_grad_(True)
        return [points, widths, colours, torch.stack(segs)]

    def _points(self, points: Tensor) -> Tensor:
        return polygonise(points) if self.options.polygon else points

    def render(self, params: list[Tensor]) -> Tensor:
        points, widths, colours, segments = params
        o = self.options
        points = self._points(points)
        if self.backend == "diffvg":  # pragma: no cover - needs a compiled diffvg
            return _rasterise_diffvg(points, widths, colours, segments, self.size, o.background)
        return rasterise(points, widths, colours, segments, self.size, o.background, o.samples, o.tile, o.fill)

    def regularizer(self, params: list[Tensor]) -> Tensor | None:
        """Priors added to the loss, per image ``[B]`` (None when all are off): the opacity sparsity prior
        ``alpha_l1 · mean_i α_i`` and the convexity penalty ``convexity · mean_i reflex(path_i)`` (see
        :func:`reflex_turns`)."""
        o = self.options
        terms = []
        if o.alpha_l1 > 0 and o.fixed_alpha is None:
            terms.append(o.alpha_l1 * params[2][..., 3].mean(-1))
        if o.convexity > 0:
            terms.append(o.convexity * reflex_turns(self._points(params[0]), params[3]).mean(-1))
        return sum(terms[1:], terms[0]) if terms else None

    def coverage(self, params: list[Tensor]) -> Tensor:
        """Per-path coverage ``[B, N, H, W]`` of the torch rasteriser (before colour alpha), without gradient."""
        points, widths, _, segments = params
        points = self._points(points)
        scale = self.size / CANVAS
        with torch.no_grad():
            o = self.options
            return path_coverage(points * scale, widths * scale, segments, self.size, o.samples, o.tile, o.fill)

    @torch.no_grad()
    def project(self, params: list[Tensor], projection: Callable[[Tensor], Tensor]) -> None:
        """CLIPDraw's constraints: widths clamped to ``[min_width, max_width]``, colours to [0, 1] (the image is a
        composite of [0, 1] colours, so it is in [0, 1] already and ``projection`` is not needed)."""
        params[1].clamp_(self.options.min_width, self.options.max_width)
        params[2].clamp_(0.0, 1.0)
        if self.options.fixed_alpha is not None:
            params[2][..., 3] = self.options.fixed_alpha

    def param_groups(self, params: list[Tensor]) -> list[dict[str, Any]]:
        """CLIPDraw's three groups: points (lr x 1, dropping to 0.4 at 50 % and 0.1 at 75 % of the steps),
        widths (lr x ``width_lr``, CLIPDraw 0.1), colours (lr x ``colour_lr``, CLIPDraw 0.01)."""
        return [
            {"params": [params[0]], "lr_scale": 1.0, "lr_milestones": [[0.5, 0.4], [0.75, 0.1]]},
            {"params": [params[1]], "lr_scale": self.options.width_lr},
            {"params": [params[2]], "lr_scale": self.options.colour_lr},
        ]

    def to_svg(self, params: list[Tensor], index: int) -> str:
        """Image ``index``'s strokes as an SVG document."""
        points, widths, colours, segments = params
        o = self.options
        points = self._points(points)
        return strokes_to_svg(
            points[index], widths[index], colours[index], segments[index], self.size, o.background, o.fill
        )
