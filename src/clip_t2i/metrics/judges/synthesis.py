"""Analysis-by-synthesis for the one-object shapes world: fit the world's own renderer to an image.

The world renders ``image = bg + alpha * (rgb - bg)`` with ``bg = base_c + gx * X + gy * Y`` (``base_c`` = level +
tint) and ``alpha`` the anti-aliased SDF coverage of one shape (:meth:`ShapesWorld._alpha_window`). The fit inverts
that, batched and coarse to fine:

1. **background** — a robust least-squares plane per image (shared gradient, per-channel base), first on a 3-px
   border ring, then on every pixel the first fit calls background;
2. **foreground** — the object's colour ``c`` from the pixels that differ most from the background, and a soft
   coverage map ``a_img = clamp(<I - bg, c - bg> / |c - bg|^2, 0, 1)``;
3. **moments** — area, centroid of ``a_img`` give a centre and, per shape, a radius;
4. **discrete search** — every shape x a grid of rotations over its symmetry period, rendered with the world's
   SDF and scored by the soft IoU ``sum(min) / sum(max)`` with ``a_img``; the two best shapes go on;
5. **continuous refinement** — a pattern search (centre, radius, rotation; halving steps) per hypothesis, then the
   best hypothesis wins;
6. **closed-form re-fit** — background (5 parameters) and a free object colour (3) by linear least squares given
   the fitted coverage; the attributes are read off (nearest position centre, radius -> size, hue -> colour).

Evidence returned with every fit (what :mod:`clip_t2i.metrics.judges.calibration` gates on): the soft IoU of the
image's coverage (re-estimated with the fitted colour and background) with the fitted render, the hue distance of
the fitted colour to the nearest world colour, its HSV saturation, its contrast with the background, and the RMS
pixel residual of the full fitted render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.data.shapes import (
    _CROSS_ARM,
    _CROSS_HALF_WIDTH,
    _EXTENT,
    _SQUARE_HALF,
    _TRIANGLE_CIRCUM,
    COLOUR_RGB,
    POSITION_CENTRES,
    SIZE_RADII,
    Scenes,
    ShapesWorld,
)
from clip_t2i.errors import UserError

FIT_SIZE = 64  # images are fitted at 64x64 (others are resized by the caller, with a note)

#: area of each shape in units of r^2 (r = the world's radius of the object)
_AREA = (
    math.pi,
    (2 * _SQUARE_HALF) ** 2,
    3 * math.sqrt(3) / 4 * _TRIANGLE_CIRCUM**2,
    2 * (2 * _CROSS_ARM) * (2 * _CROSS_HALF_WIDTH) - (2 * _CROSS_HALF_WIDTH) ** 2,
)
#: rotation symmetry period of each shape (radians); the circle has none (rotation is not identifiable)
PERIOD = (0.0, math.pi / 2, 2 * math.pi / 3, math.pi / 2)
_N_ROT = (1, 9, 12, 9)  # rotation grid of the discrete search (10 degree steps over the period)
_REFINE_ITERS = 10
_TOP_SHAPES = 2
_BORDER = 3


def _rgb_to_hsv(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue (degrees, [0, 360)), saturation and value of ``[..., 3]`` RGB in [0, 1]."""
    rgb = rgb.clamp(0.0, 1.0)
    mx, arg = rgb.max(-1)
    mn = rgb.min(-1).values
    d = (mx - mn).clamp_min(1e-6)
    r, g, b = rgb.unbind(-1)
    h = torch.where(arg == 0, ((g - b) / d) % 6, torch.where(arg == 1, (b - r) / d + 2, (r - g) / d + 4)) * 60.0
    s = torch.where(mx > 1e-6, (mx - mn) / mx.clamp_min(1e-6), torch.zeros_like(mx))
    return h % 360.0, s, mx


WORLD_HUES = _rgb_to_hsv(torch.tensor(COLOUR_RGB))[0]  # [6] degrees


def hue_distance(h1: Tensor, h2: Tensor) -> Tensor:
    """Circular distance between hues in degrees (0..180)."""
    d = (h1 - h2).abs() % 360.0
    return torch.minimum(d, 360.0 - d)


@dataclass
class ShapesFit:
    """The best fit of the world's renderer to each of ``n`` images (tensors ``[n, ...]``).

    Attributes: ``colour``, ``shape``, ``size``, ``position`` (indices into the world's vocabularies). Nuisance
    factors in the world's units: ``offset`` ``[n, 2]`` (fraction of the side, from the position's centre),
    ``scale`` (radius / the size's radius), ``rotation`` (radians, within the shape's symmetry period; NaN for
    circles), ``bg_level``, ``bg_tint`` ``[n, 3]`` (``base - level``), ``bg_gradient`` ``[n, 2]``. Evidence:
    ``iou`` (soft coverage IoU with the fitted render), ``iou_hard`` (binary masks at 0.5), ``hue_distance``
    (degrees to the nearest world colour), ``saturation``, ``contrast`` (RGB distance object-background),
    ``residual`` (RMS pixel error of the full render), ``area`` (coverage of the image, fraction of pixels),
    ``rgb`` (the free fitted object colour). ``recognised`` is filled in by the calibration gate.
    """

    colour: Tensor
    shape: Tensor
    size: Tensor
    position: Tensor
    offset: Tensor
    scale: Tensor
    rotation: Tensor
    bg_level: Tensor
    bg_tint: Tensor
    bg_gradient: Tensor
    rgb: Tensor
    iou: Tensor
    iou_hard: Tensor
    hue_distance: Tensor
    saturation: Tensor
    contrast: Tensor
    residual: Tensor
    area: Tensor
    recognised: Tensor | None = None

    def __len__(self) -> int:
        return self.colour.shape[0]

    @staticmethod
    def cat(fits: list[ShapesFit]) -> ShapesFit:
        """Concatenate fits of consecutive batches."""
        out = {}
        for f in fields(ShapesFit):
            vals = [getattr(x, f.name) for x in fits]
            out[f.name] = None if any(v is None for v in vals) else torch.cat(vals)
        return ShapesFit(**out)

    def factors(self) -> dict[str, Tensor]:
        """Nuisance factors as named ``[n]`` tensors (rotation NaN for circles)."""
        return {
            "offset_x": self.offset[:, 0],
            "offset_y": self.offset[:, 1],
            "scale": self.scale,
            "rotation": self.rotation,
            "bg_level": self.bg_level,
            "bg_tint_r": self.bg_tint[:, 0],
            "bg_tint_g": self.bg_tint[:, 1],
            "bg_tint_b": self.bg_tint[:, 2],
            "bg_gradient_x": self.bg_gradient[:, 0],
            "bg_gradient_y": self.bg_gradient[:, 1],
        }

    def scenes(self) -> Scenes:
        """The fitted scenes as world :class:`Scenes` (re-render with ``ShapesWorld.render``)."""
        rot = torch.nan_to_num(self.rotation, nan=0.0)
        return Scenes(
            colour=self.colour,
            shape=self.shape,
            size=self.size,
            position=self.position,
            offset=self.offset,
            scale=self.scale,
            rotation=rot,
            bg_level=self.bg_level,
            bg_tint=self.bg_tint,
            bg_gradient=self.bg_gradient,
        )


class ShapesFitter:
    """Fits the world's renderer to ``[B, 3, 64, 64]`` images in [0, 1] (see the module docstring)."""

    def __init__(self, size: int = FIT_SIZE) -> None:
        self.size = size
        self.world = ShapesWorld(size=size, level="one", split="all")
        coord = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
        self._X = coord.view(1, size).expand(size, size).contiguous()  # pixel-centre x, fraction of side
        self._Y = coord.view(size, 1).expand(size, size).contiguous()
        i = torch.arange(size)
        ring = torch.minimum(torch.minimum(i.view(-1, 1), i.view(1, -1)), (size - 1 - i).view(-1, 1))
        ring = torch.minimum(ring, (size - 1 - i).view(1, -1))
        self._border = (ring < _BORDER).float()
        self._rgb = torch.tensor(COLOUR_RGB, dtype=torch.float32)
        self._centres = torch.tensor(POSITION_CENTRES, dtype=torch.float32)

    # ------------------------------------------------------------------ background
    def _plane(self, img: Tensor, w: Tensor) -> Tensor:
        """Weighted LS plane ``base_c + gx X + gy Y``; returns ``[B, 5]`` (base r, g, b, gx, gy)."""
        X, Y = self._X, self._Y
        sw = w.sum((1, 2))
        sx, sy = (w * X).sum((1, 2)), (w * Y).sum((1, 2))
        sxx, syy, sxy = (w * X * X).sum((1, 2)), (w * Y * Y).sum((1, 2)), (w * X * Y).sum((1, 2))
        wi = w.unsqueeze(1) * img
        t = wi.sum((2, 3))  # [B, 3]
        tx, ty = (wi * X).sum((2, 3)).sum(1), (wi * Y).sum((2, 3)).sum(1)
        B = img.shape[0]
        A = torch.zeros(B, 5, 5)
        for c in range(3):
            A[:, c, c] = sw
            A[:, c, 3] = A[:, 3, c] = sx
            A[:, c, 4] = A[:, 4, c] = sy
        A[:, 3, 3], A[:, 4, 4], A[:, 3, 4], A[:, 4, 3] = 3 * sxx, 3 * syy, 3 * sxy, 3 * sxy
        A = A + torch.eye(5) * 1e-6
        rhs = torch.cat([t, tx.unsqueeze(1), ty.unsqueeze(1)], 1)
        return torch.linalg.solve(A, rhs)

    def _bg(self, p: Tensor) -> Tensor:
        """``[B, 3, S, S]`` background of plane parameters ``[B, 5]``."""
        g = p[:, 3].view(-1, 1, 1, 1) * self._X + p[:, 4].view(-1, 1, 1, 1) * self._Y
        return p[:, :3].view(-1, 3, 1, 1) + g

    def _background(self, img: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Robust plane fit: border ring, then all pixels within 3x the border residual (at least 0.06).

        Returns the plane ``[B, 5]``, the background ``[B, 3, S, S]`` and a robust pixel-noise std ``[B]``
        (1.4826 x the median absolute residual over the background pixels, per channel, averaged).
        """
        w = self._border.expand(img.shape[0], -1, -1)
        p = self._plane(img, w)
        for _ in range(2):
            res = (img - self._bg(p)).norm(dim=1)  # [B, S, S]
            ring = res * w
            med = torch.stack([r[m > 0].median() for r, m in zip(ring, w, strict=True)])
            tau = (3 * med).clamp_min(0.06).view(-1, 1, 1)
            w = (res < tau).float()
            w = torch.where(w.sum((1, 2), keepdim=True) > 32, w, self._border.expand_as(w))
            p = self._plane(img, w)
        bg = self._bg(p)
        return p, bg, self._noise(img - bg, w > 0)

    @staticmethod
    def _noise(resid: Tensor, mask: Tensor) -> Tensor:
        """Robust per-image noise std of ``resid`` ``[B, 3, S, S]`` over ``mask`` ``[B, S, S]`` pixels."""
        out = []
        for r, m in zip(resid, mask, strict=True):
            v = r[:, m]
            out.append(1.4826 * v.abs().median(1).values.mean() if v.shape[1] >= 16 else torch.tensor(0.0))
        return torch.stack(out)

    # ------------------------------------------------------------------ coverage
    @staticmethod
    def _coverage_map(img: Tensor, bg: Tensor, rgb: Tensor, noise: Tensor) -> Tensor:
        """Object coverage per pixel ``[B, S, S]``: ``<I - bg, c - bg> / |c - bg|^2``, soft-thresholded at
        2.5 noise stds (in coverage units, at most 0.35) so pixel noise does not count as object, in [0, 1]."""
        d = rgb.view(-1, 3, 1, 1) - bg
        dn = d.pow(2).sum(1).clamp_min(1e-4)
        a = ((img - bg) * d).sum(1).div(dn)
        t = (2.5 * noise.view(-1, 1, 1) / dn.sqrt()).clamp(max=0.35)
        return ((a - t) / (1 - 2 * t)).clamp(0.0, 1.0)

    def _render_alpha(self, shape: int, cx: Tensor, cy: Tensor, r: Tensor, rot: Tensor, x0: Tensor, y0: Tensor, w: int):
        """World SDF coverage ``[m, w, w]`` of one shape in windows starting at (x0, y0) px (centre in px)."""
        return self.world._alpha_window(shape, w, x0 + 0.5 - cx, y0 + 0.5 - cy, r, rot)

    @staticmethod
    def _soft_iou(a: Tensor, b: Tensor, outside: Tensor) -> Tensor:
        """``sum(min) / (sum(max) + mass of b outside the window)`` over the last two dims."""
        inter = torch.minimum(a, b).sum((-2, -1))
        union = torch.maximum(a, b).sum((-2, -1)) + outside
        return inter / union.clamp_min(1e-6)

    # ------------------------------------------------------------------ fitting
    @torch.no_grad()
    def fit(self, images: Tensor, batch_size: int = 256) -> ShapesFit:
        """Fit every image (``[B, 3, S, S]`` in [0, 1], ``S`` = the fitter's size) -> :class:`ShapesFit`."""
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (self.size, self.size):
            raise UserError(
                f"the shapes fitter needs [B, 3, {self.size}, {self.size}] images, got {tuple(images.shape)}"
            )
        images = images.float().clamp(0.0, 1.0)
        return ShapesFit.cat([self._fit_batch(chunk) for chunk in images.split(batch_size)])

    def _fit_batch(self, img: Tensor) -> ShapesFit:
        _, bg, noise = self._background(img)
        a_img = self._coverage_map(img, bg, self._object_colour(img, bg), noise)
        cx, cy, r_shape = self._moments(a_img)
        score = self._scorer(a_img, cx, cy, r_shape)
        best_q, best_s = self._search(score, cx, cy, r_shape)
        shape, q = self._refine(score, best_q, best_s)
        return self._readout(img, shape, q, noise)

    @staticmethod
    def _object_colour(img: Tensor, bg: Tensor) -> Tensor:
        """First colour estimate ``[B, 3]``: pixels weighted by |I - bg|^4 (pure object pixels dominate)."""
        wt = (img - bg).norm(dim=1).pow(4)
        return (img * wt.unsqueeze(1)).sum((2, 3)) / wt.sum((1, 2)).clamp_min(1e-8).unsqueeze(1)

    def _moments(self, a_img: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Centroid (px) of the coverage (values < 0.15 ignored) and, per shape, the radius (px) of its area."""
        a_m = torch.where(a_img > 0.15, a_img, torch.zeros_like(a_img))
        m0 = a_m.sum((1, 2)).clamp_min(1.0)
        px = torch.arange(self.size, dtype=torch.float32) + 0.5
        cx = (a_m.sum(1) * px).sum(1) / m0
        cy = (a_m.sum(2) * px).sum(1) / m0
        return cx, cy, (m0.view(-1, 1) / torch.tensor(_AREA)).sqrt()  # r: [B, 4]

    def _scorer(self, a_img: Tensor, cx: Tensor, cy: Tensor, r_shape: Tensor):
        """``score(shape, idx, q) -> soft IoU [m]`` of hypotheses ``q`` [m, 4] (cx, cy, r, rot; px, rad) of images
        ``idx``, rendered in one window per image (centred on the centroid, sized for the largest hypothesis)."""
        B, S = a_img.shape[0], self.size
        extent = (r_shape * torch.tensor(_EXTENT)).max(1).values
        w = int(min(S, 8 * math.ceil((2 * 1.3 * float(extent.max()) + 8) / 8)))
        x0 = (cx - w / 2).round().clamp(0, S - w)
        y0 = (cy - w / 2).round().clamp(0, S - w)
        ar = torch.arange(w)
        rows = (y0.long().view(-1, 1) + ar).view(B, w, 1)
        cols = (x0.long().view(-1, 1) + ar).view(B, 1, w)
        a_win = a_img[torch.arange(B).view(-1, 1, 1), rows, cols]  # [B, w, w]
        outside = a_img.sum((1, 2)) - a_win.sum((1, 2))

        def score(shape: int, idx: Tensor, q: Tensor) -> Tensor:
            alpha = self._render_alpha(shape, q[:, 0], q[:, 1], q[:, 2].clamp_min(0.5), q[:, 3], x0[idx], y0[idx], w)
            return self._soft_iou(alpha, a_win[idx], outside[idx])

        return score

    @staticmethod
    def _search(score, cx: Tensor, cy: Tensor, r_shape: Tensor) -> tuple[Tensor, Tensor]:
        """Discrete search: every shape x its rotation grid at the moment estimate -> best ``q`` [B, 4, 4] and
        soft IoU [B, 4] per shape."""
        B = cx.shape[0]
        best_q, best_s = torch.zeros(B, 4, 4), torch.full((B, 4), -1.0)
        allidx = torch.arange(B)
        for s in range(4):
            n_rot = _N_ROT[s]
            rots = (torch.arange(n_rot, dtype=torch.float32) - (n_rot - 1) / 2) * (PERIOD[s] / n_rot)
            idx = allidx.repeat_interleave(n_rot)
            q = torch.stack([cx[idx], cy[idx], r_shape[idx, s], rots.repeat(B)], 1)
            sc = score(s, idx, q).view(B, n_rot)
            best_s[:, s], k = sc.max(1)
            best_q[:, s] = q.view(B, n_rot, 4)[allidx, k]
        return best_q, best_s

    @staticmethod
    def _refine(score, best_q: Tensor, best_s: Tensor) -> tuple[Tensor, Tensor]:
        """Pattern search (centre, radius, rotation; a step halves when no move improves) on the ``_TOP_SHAPES``
        best shapes; the best refined hypothesis wins -> ``(shape [B], q [B, 4])``."""
        B = best_q.shape[0]
        top = best_s.topk(_TOP_SHAPES, dim=1).indices  # [B, K]
        final_q, final_s = torch.zeros(B, _TOP_SHAPES, 4), torch.zeros(B, _TOP_SHAPES)
        for kk in range(_TOP_SHAPES):
            for s in range(4):
                idx = (top[:, kk] == s).nonzero()[:, 0]
                if idx.numel() == 0:
                    continue
                q = best_q[idx, s].clone()
                m = q.shape[0]
                cur = score(s, idx, q)
                rot_step = 0.0 if s == 0 else PERIOD[s] / _N_ROT[s] / 2
                step = torch.stack([torch.ones(m), torch.ones(m), 0.06 * q[:, 2], torch.full((m,), rot_step)], 1)
                n_par = 3 if s == 0 else 4  # a circle has no rotation
                eye = torch.eye(4)[:n_par]
                moves = torch.cat([eye, -eye])  # [2P, 4]
                for _ in range(_REFINE_ITERS):
                    cand = q.unsqueeze(1) + moves.unsqueeze(0) * step.unsqueeze(1)  # [m, 2P, 4]
                    cs = score(s, idx.repeat_interleave(2 * n_par), cand.view(-1, 4)).view(m, 2 * n_par)
                    bv, bi = cs.max(1)
                    better = bv > cur + 1e-6
                    q = torch.where(better.view(-1, 1), cand[torch.arange(m), bi], q)
                    cur = torch.where(better, bv, cur)
                    step = torch.where(better.view(-1, 1), step, step * 0.5)
                final_q[idx, kk], final_s[idx, kk] = q, cur
        pick = final_s.argmax(1)
        allidx = torch.arange(B)
        return top[allidx, pick], final_q[allidx, pick]

    def _full_alpha(self, shape: Tensor, q: Tensor) -> Tensor:
        """Full-frame world coverage ``[B, S, S]`` of fitted hypotheses."""
        B, S = shape.shape[0], self.size
        alpha = torch.zeros(B, S, S)
        zero = torch.zeros(B)
        for s in range(4):
            idx = (shape == s).nonzero()[:, 0]
            if idx.numel():
                qq = q[idx]
                alpha[idx] = self._render_alpha(
                    s, qq[:, 0], qq[:, 1], qq[:, 2].clamp_min(0.5), qq[:, 3], zero[idx], zero[idx], S
                )
        return alpha

    def _joint_ls(self, img: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """LS of ``(1 - a) (base_c + gx X + gy Y) + a k_c`` -> plane ``[B, 5]``, object colour ``[B, 3]``."""
        X, Y = self._X, self._Y
        u, a = 1.0 - alpha, alpha
        suu, sua, saa = (u * u).sum((1, 2)), (u * a).sum((1, 2)), (a * a).sum((1, 2))
        suux, suuy = (u * u * X).sum((1, 2)), (u * u * Y).sum((1, 2))
        suax, suay = (u * a * X).sum((1, 2)), (u * a * Y).sum((1, 2))
        sxx, syy, sxy = (u * u * X * X).sum((1, 2)), (u * u * Y * Y).sum((1, 2)), (u * u * X * Y).sum((1, 2))
        ui, ai = u.unsqueeze(1) * img, a.unsqueeze(1) * img
        B = img.shape[0]
        A = torch.zeros(B, 8, 8)
        for c in range(3):
            A[:, c, c] = suu
            A[:, c, 3 + c] = A[:, 3 + c, c] = sua
            A[:, 3 + c, 3 + c] = saa
            A[:, c, 6] = A[:, 6, c] = suux
            A[:, c, 7] = A[:, 7, c] = suuy
            A[:, 3 + c, 6] = A[:, 6, 3 + c] = suax
            A[:, 3 + c, 7] = A[:, 7, 3 + c] = suay
        A[:, 6, 6], A[:, 7, 7], A[:, 6, 7], A[:, 7, 6] = 3 * sxx, 3 * syy, 3 * sxy, 3 * sxy
        A = A + torch.eye(8) * 1e-4
        rhs = torch.cat(
            [ui.sum((2, 3)), ai.sum((2, 3)), (ui * X).sum((1, 2, 3)).view(-1, 1), (ui * Y).sum((1, 2, 3)).view(-1, 1)],
            1,
        )
        sol = torch.linalg.solve(A, rhs)
        return torch.cat([sol[:, :3], sol[:, 6:]], 1), sol[:, 3:6]

    def _readout(self, img: Tensor, shape: Tensor, q: Tensor, noise: Tensor) -> ShapesFit:
        B, S = img.shape[0], self.size
        alpha = self._full_alpha(shape, q)
        plane, rgb = self._joint_ls(img, alpha)
        bg = self._bg(plane)
        render = (bg + alpha.unsqueeze(1) * (rgb.view(-1, 3, 1, 1) - bg)).clamp(0.0, 1.0)
        residual = (img - render).pow(2).mean((1, 2, 3)).sqrt()
        noise = self._noise(img - bg, alpha == 0)
        a_img = self._coverage_map(img, bg, rgb.clamp(0.0, 1.0), noise)
        iou = self._soft_iou(alpha, a_img, torch.zeros(B))
        inter = ((alpha > 0.5) & (a_img > 0.5)).sum((1, 2)).float()
        union = ((alpha > 0.5) | (a_img > 0.5)).sum((1, 2)).float()
        iou_hard = inter / union.clamp_min(1.0)
        hue, sat, _ = _rgb_to_hsv(rgb)
        hd = hue_distance(hue.view(-1, 1), WORLD_HUES.view(1, -1))  # [B, 6]
        hdist, colour = hd.min(1)
        base_mid = plane[:, :3] + 0.0  # background at the image centre
        contrast = (rgb.clamp(0, 1) - base_mid).norm(dim=1)
        centre = q[:, :2] / S  # fraction of the side
        pos = (centre.view(-1, 1, 2) - self._centres.view(1, -1, 2)).norm(dim=2).argmin(1)
        offset = centre - self._centres[pos]
        r_frac = q[:, 2] / S
        size = (r_frac > math.sqrt(SIZE_RADII[0] * SIZE_RADII[1])).long()
        scale = r_frac / torch.tensor(SIZE_RADII)[size]
        period = torch.tensor(PERIOD)[shape]
        rot = torch.where(
            period > 0, torch.remainder(q[:, 3] + period / 2, period.clamp_min(1e-6)) - period / 2, torch.nan
        )
        level = plane[:, :3].mean(1)
        return ShapesFit(
            colour=colour,
            shape=shape,
            size=size,
            position=pos,
            offset=offset,
            scale=scale,
            rotation=rot,
            bg_level=level,
            bg_tint=plane[:, :3] - level.view(-1, 1),
            bg_gradient=plane[:, 3:5].clone(),
            rgb=rgb,
            iou=iou,
            iou_hard=iou_hard,
            hue_distance=hdist,
            saturation=sat,
            contrast=contrast,
            residual=residual,
            area=alpha.mean((1, 2)),
        )


_FITTERS: dict[int, ShapesFitter] = {}


def fit_shapes(images: Tensor, batch_size: int = 256) -> ShapesFit:
    """Fit the world's renderer to 64x64 images (see :class:`ShapesFitter`); the fitter is cached."""
    if FIT_SIZE not in _FITTERS:
        _FITTERS[FIT_SIZE] = ShapesFitter(FIT_SIZE)
    return _FITTERS[FIT_SIZE].fit(images, batch_size=batch_size)


def resize_for_fit(images: Tensor, size: int = FIT_SIZE) -> Tensor:
    """Antialiased bilinear resize of ``[B, 3, H, W]`` to ``size`` x ``size`` (identity if already that size)."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    shrink = min(images.shape[-2:]) > size
    return F.interpolate(
        images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    ).clamp(0.0, 1.0)
