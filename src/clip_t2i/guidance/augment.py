"""Differentiable views of an image for CLIP guidance: DiffAugment, patch crops, perspective, noise.

Every augmentation has two halves: ``sample(shape, generator) -> params`` draws its random numbers from a
``torch.Generator`` and ``apply(x, params) -> x`` is a differentiable, shape-preserving function of the pixels
``x [N, 3, H, W]``. :class:`ViewMaker` samples each image's parameters from *that image's own* generator and
then applies every augmentation to the whole batch at once, so a batch of images gets exactly the views each
image would get alone (what makes batched generation equal to separate runs).

Ranges follow DiffAugment (policy ``color,translation,resize,cutout``): brightness ``+U(-0.5, 0.5)``,
saturation ``xU(0, 2)``, contrast ``xU(0.5, 1.5)``, translation ``+-12.5 %`` (whole pixels, zero padding),
resize ``xU(0.8, 1.2)`` (bilinear, centre pad or crop), cutout a ``50 %`` square at a random centre. DiffAugment
draws one resize factor per batch; here it is per view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Augmentation",
    "ColourJitter",
    "Cutout",
    "Noise",
    "PatchCrop",
    "Perspective",
    "Resize",
    "SpatialAugmentation",
    "Translate",
    "ViewMaker",
    "ViewSettings",
    "warp",
]


class Augmentation:
    """Base class: ``aug(x, generator)`` = ``aug.apply(x, aug.sample(x.shape, generator))``."""

    name = "augmentation"

    def sample(self, shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        raise NotImplementedError

    def sample_batch(self, shape: torch.Size | tuple[int, ...], generators: Sequence[torch.Generator]) -> Tensor:
        """Parameters for ``len(generators)`` images of ``shape[0]`` views each, image b's from generator b."""
        return torch.cat([self.sample(shape, g) for g in generators])

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self.apply(x, self.sample(x.shape, generator).to(x.device))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class SpatialAugmentation(Augmentation):
    """An augmentation that moves pixels: ``matrix(params, shape) -> [N, 3, 3]`` maps each output position to
    the input position it samples (normalised coordinates, homogeneous). Consecutive spatial augmentations
    compose into one matrix, so :class:`ViewMaker` resamples each view once."""

    def matrix(self, params: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
        raise NotImplementedError

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        return warp(x, self.matrix(params.to(x.device), x.shape))


def _eye(n: int, device: torch.device | str = "cpu") -> Tensor:
    return torch.eye(3, device=device).expand(n, 3, 3).clone()


def warp(x: Tensor, m: Tensor) -> Tensor:
    """Bilinear resampling of ``x [N, 3, H, W]``: output pixel ``p`` takes the input at ``m p`` (``m [N, 3, 3]``
    output -> input, normalised coordinates, perspective divide when the last row is not ``[0, 0, 1]``);
    zero padding outside the image."""
    n, _, h, w = x.shape
    m = m.to(device=x.device, dtype=torch.float32)
    if bool((m[:, 2, :2] == 0).all()) and bool((m[:, 2, 2] == 1).all()):
        grid = F.affine_grid(m[:, :2, :].to(x.dtype), list(x.shape), align_corners=False)
    else:
        ys = (torch.arange(h, device=x.device) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, device=x.device) + 0.5) / w * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pts = torch.stack([gx, gy, torch.ones_like(gx)], -1).view(1, h * w, 3)
        mapped = pts @ m.transpose(1, 2)  # [N, HW, 3]
        grid = (mapped[..., :2] / mapped[..., 2:].clamp_min(1e-6)).view(n, h, w, 2).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Noise(Augmentation):
    """Additive Gaussian noise ``x + std * z``; ``shared`` uses one noise image for all N views."""

    name = "noise"

    def __init__(self, std: float = 0.01, shared: bool = False) -> None:
        self.std, self.shared = float(std), bool(shared)

    def sample(self, shape, generator):
        return self.sample_batch(shape, [generator])

    def sample_batch(self, shape, generators):
        n, *rest = shape
        k = 1 if self.shared else n
        z = torch.empty((len(generators) * k, *rest), device=generators[0].device)
        for b, g in enumerate(generators):  # fill in place: no per-image tensors to concatenate
            z[b * k : (b + 1) * k].normal_(generator=g)
        z.mul_(self.std)
        return z.repeat_interleave(n, dim=0) if self.shared else z

    def apply(self, x, params):
        return x + params


class ColourJitter(Augmentation):
    """DiffAugment colour: ``x + b``, then saturation ``(x - mean_c) s + mean_c``, then contrast
    ``(x - mean_chw) c + mean_chw`` with ``b ~ U(-brightness, brightness)``, ``s ~ U(*saturation)``,
    ``c ~ U(*contrast)`` per view."""

    name = "colour"

    def __init__(
        self,
        brightness: float = 0.5,
        saturation: tuple[float, float] = (0.0, 2.0),
        contrast: tuple[float, float] = (0.5, 1.5),
    ) -> None:
        self.brightness, self.saturation, self.contrast = float(brightness), tuple(saturation), tuple(contrast)

    def sample(self, shape, generator):
        u = torch.rand(shape[0], 3, generator=generator, device=generator.device)
        lo_s, hi_s = self.saturation
        lo_c, hi_c = self.contrast
        return torch.stack(
            [(u[:, 0] * 2 - 1) * self.brightness, lo_s + u[:, 1] * (hi_s - lo_s), lo_c + u[:, 2] * (hi_c - lo_c)], 1
        )

    def apply(self, x, params):
        # The three steps in one pass: with brightness b, saturation s and contrast c,
        # out = c s x + c (1 - s) mean_c(x) + b + (1 - c) mean_chw(x).
        p = params.to(x.dtype).view(-1, 3, 1, 1)
        b, s, c = p[:, 0:1], p[:, 1:2], p[:, 2:3]
        mean_c = x.mean(dim=1, keepdim=True)  # [N, 1, H, W]
        mean_all = mean_c.mean(dim=(2, 3), keepdim=True)  # [N, 1, 1, 1]
        offset = mean_c * (c * (1 - s)) + (b + (1 - c) * mean_all)
        return torch.addcmul(offset, x, c * s)


class Translate(SpatialAugmentation):
    """Shift by whole pixels, up to ``fraction`` of the side in x and y, zero padding."""

    name = "translation"

    def __init__(self, fraction: float = 0.125) -> None:
        self.fraction = float(fraction)

    def sample(self, shape, generator):
        h, w = shape[-2:]
        u = torch.rand(shape[0], 2, generator=generator, device=generator.device) * 2 - 1
        px = torch.round(u * self.fraction * torch.tensor([w, h], device=u.device))
        return px * 2 / torch.tensor([w, h], device=u.device)  # normalised shift (2 units per side)

    def matrix(self, params, shape):
        m = _eye(params.shape[0], params.device)
        m[:, :2, 2] = -params  # sampling grid moves opposite to the content
        return m


class Resize(SpatialAugmentation):
    """Zoom about the centre by ``s ~ U(*scale)`` per view (s > 1 crops, s < 1 pads with zeros)."""

    name = "resize"

    def __init__(self, scale: tuple[float, float] = (0.8, 1.2)) -> None:
        self.scale = (float(scale[0]), float(scale[1]))

    def sample(self, shape, generator):
        lo, hi = self.scale
        return lo + torch.rand(shape[0], 1, generator=generator, device=generator.device) * (hi - lo)

    def matrix(self, params, shape):
        m = _eye(params.shape[0], params.device)
        m[:, 0, 0] = m[:, 1, 1] = 1.0 / params[:, 0]
        return m


class Cutout(Augmentation):
    """Zero a square of side ``fraction`` x side at a uniformly random centre (may overhang the border)."""

    name = "cutout"

    def __init__(self, fraction: float = 0.5) -> None:
        self.fraction = float(fraction)

    def sample(self, shape, generator):
        return torch.rand(shape[0], 2, generator=generator, device=generator.device)  # centre (x, y) in [0, 1]

    def apply(self, x, params):
        h, w = x.shape[-2:]
        ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h
        xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w
        half = self.fraction / 2
        inside_x = (xs.view(1, w) - params[:, :1].to(x.dtype)).abs() < half  # [N, W]
        inside_y = (ys.view(1, h) - params[:, 1:].to(x.dtype)).abs() < half  # [N, H]
        keep = ~(inside_y.unsqueeze(2) & inside_x.unsqueeze(1))  # [N, H, W]
        return x * keep.unsqueeze(1).to(x.dtype)


class PatchCrop(SpatialAugmentation):
    """A random square crop of side ``fraction`` x side, resized back to the full size (bilinear).

    This is RandomCrop(128) -> Resize(224) of the CLIPAG recipe, expressed as a fraction (128/224 = 0.571).
    (The recipe then clamps the crop to [0, 1]; here the only values outside [0, 1] are the small view noise,
    and dropping the clamp lets the crop fuse with the other spatial augmentations into one resampling.)
    """

    name = "patch"

    def __init__(self, fraction: float = 128 / 224) -> None:
        self.fraction = float(fraction)

    def sample(self, shape, generator):
        return torch.rand(shape[0], 2, generator=generator, device=generator.device) * (1 - self.fraction)

    def matrix(self, params, shape):
        f = self.fraction
        m = _eye(params.shape[0], params.device)
        m[:, 0, 0] = m[:, 1, 1] = f
        m[:, :2, 2] = (params * 2 - 1) + f  # crop centre in normalised coordinates: 2 * (x0 + f/2) - 1
        return m


class Perspective(SpatialAugmentation):
    """Random perspective warp: each corner moves by up to ``distortion`` / 2 of the side (torchvision's
    ``distortion_scale`` convention), zero padding."""

    name = "perspective"

    def __init__(self, distortion: float = 0.5) -> None:
        self.distortion = float(distortion)

    def sample(self, shape, generator):
        u = torch.rand(shape[0], 4, 2, generator=generator, device=generator.device)
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=u.device)
        return corners - corners * u * self.distortion  # each corner moves inwards by U(0, d) half sides

    def matrix(self, params, shape):
        n = params.shape[0]
        src = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=params.device)
        return _homography(src.expand(n, 4, 2), params.float())  # output corner -> input position


def _homography(src: Tensor, dst: Tensor) -> Tensor:
    """3x3 homographies ``[N, 3, 3]`` mapping 4 points ``src [N, 4, 2]`` onto ``dst [N, 4, 2]``."""
    n = src.shape[0]
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], -1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1)  # [N, 8, 8]
    b = torch.cat([u, v], 1).unsqueeze(-1)  # [N, 8, 1]
    h = torch.linalg.solve(a, b).squeeze(-1)
    return torch.cat([h, torch.ones(n, 1, device=h.device)], 1).view(n, 3, 3)


@dataclass(frozen=True)
class ViewSettings:
    """Which augmentations make the views (0 / False / None switches one off)."""

    colour: bool = True
    translation: float = 0.125
    resize: tuple[float, float] | None = (0.8, 1.2)
    cutout: float = 0.5
    perspective: float = 0.0
    noise_std: float = 0.01
    patch_fraction: float = 128 / 224
    patch_noise_shared: bool = True


class ViewMaker:
    """Builds ``n`` augmented views per image, seeded per image.

    ``kind="global"``: noise (per view) -> colour -> translation -> resize -> perspective -> cutout.
    ``kind="patch"``: noise (one draw shared by the image's views, as in the CLIPAG recipe) -> colour -> patch
    crop -> translation -> ... Consecutive spatial steps (crop, translation, resize, perspective) are composed
    into one matrix and applied with a single bilinear resampling.
    """

    def __init__(self, settings: ViewSettings, kind: str = "global") -> None:
        if kind not in ("global", "patch"):
            raise ValueError(f"view kind must be 'global' or 'patch', got {kind!r}")
        s = settings
        chain: list[Augmentation] = []
        if s.noise_std > 0:
            chain.append(Noise(s.noise_std, shared=kind == "patch" and s.patch_noise_shared))
        if s.colour:
            chain.append(ColourJitter())
        if kind == "patch":
            chain.append(PatchCrop(s.patch_fraction))
        if s.translation > 0:
            chain.append(Translate(s.translation))
        if s.resize is not None:
            chain.append(Resize(s.resize))
        if s.perspective > 0:
            chain.append(Perspective(s.perspective))
        if s.cutout > 0:
            chain.append(Cutout(s.cutout))
        self.chain = chain
        self.kind = kind

    def __call__(self, images: Tensor, generators: Sequence[torch.Generator], n: int) -> Tensor:
        """``images [B, 3, H, W]`` -> views ``[B * n, 3, H, W]`` (image b's views at rows ``b*n .. b*n+n-1``)."""
        b = images.shape[0]
        if len(generators) != b:
            raise ValueError(f"need one generator per image: {b} images, {len(generators)} generators")
        x = images.repeat_interleave(n, dim=0)
        shape = (n, *images.shape[1:])
        pending: Tensor | None = None  # composed matrix of consecutive spatial augmentations
        for aug in self.chain:
            params = aug.sample_batch(shape, generators).to(images.device)
            if isinstance(aug, SpatialAugmentation):
                m = aug.matrix(params, x.shape)
                pending = m if pending is None else pending @ m
                continue
            if pending is not None:
                x, pending = warp(x, pending), None
            x = aug.apply(x, params)
        return warp(x, pending) if pending is not None else x
