"""Training losses of the VQGAN (weight-free by default: no LPIPS, no VGG download).

``L = L_rec + w_p L_perc + L_vq + w_d L_G`` with

* ``L_rec = mean |x − x̂|`` (L1);
* ``L_perc`` (``gradient``, default) ``= Σ_{s ∈ {1, ½, ¼}} mean |∇x_s − ∇x̂_s|``: L1 between the horizontal and
  vertical finite differences of ``x`` and ``x̂`` average-pooled to scale ``s`` (edges and textures at three
  scales; weight-free stand-in for LPIPS), or (``ssim``) ``1 − SSIM(x, x̂)`` on luminance (7×7 window);
* ``L_vq = mean ‖sg(z) − e‖² + β mean ‖z − sg(e)‖²`` (codebook + commitment, ``e`` the nearest code);
* ``L_G = −mean D(x̂)`` and ``L_D = mean relu(1 − D(x)) + mean relu(1 + D(x̂))`` (hinge), for the optional
  patch discriminator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def reconstruction_loss(x: Tensor, xr: Tensor) -> Tensor:
    """``L_rec = mean |x − x̂|``."""
    return (x - xr).abs().mean()


def gradient_loss(x: Tensor, xr: Tensor, scales: int = 3) -> Tensor:
    """``Σ_s mean |∇x_s − ∇x̂_s|`` over ``scales`` dyadic scales (finite differences along h and w)."""
    total = x.new_zeros(())
    for s in range(scales):
        if s:
            x, xr = F.avg_pool2d(x, 2), F.avg_pool2d(xr, 2)
        for dim in (-1, -2):
            total = total + (x.diff(dim=dim) - xr.diff(dim=dim)).abs().mean()
        if min(x.shape[-2:]) < 4:
            break
    return total


def ssim_loss(x: Tensor, xr: Tensor) -> Tensor:
    """``1 − SSIM(luma x, luma x̂)`` (mean over the batch)."""
    from clip_t2i.renderers.style import ssim

    return (1.0 - ssim(x, xr)).mean()


def perceptual_loss(kind: str, x: Tensor, xr: Tensor) -> Tensor:
    """The configured weight-free perceptual term (``gradient`` | ``ssim`` | ``none`` → 0)."""
    if kind == "gradient":
        return gradient_loss(x, xr)
    if kind == "ssim":
        return ssim_loss(x, xr)
    return x.new_zeros(())


def vq_loss(z: Tensor, e: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """(codebook ``mean ‖sg(z) − e‖²``, ``β`` × commitment ``mean ‖z − sg(e)‖²``)."""
    return F.mse_loss(e, z.detach()), beta * F.mse_loss(z, e.detach())


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: stride-2 4×4 convs with LeakyReLU(0.2), one logit per patch; input in [-1, 1]."""

    def __init__(self, ch: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.GroupNorm(8, c * 2), nn.LeakyReLU(0.2)]
            c *= 2
        mods.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * 2 - 1)


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``L_D = mean relu(1 − D(x)) + mean relu(1 + D(x̂))``."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """``L_G = −mean D(x̂)``."""
    return -fake_logits.mean()


def psnr(x: Tensor, xr: Tensor) -> Tensor:
    """Per-image ``PSNR = 10 log10(1 / mean (x − clamp(x̂, 0, 1))²)`` in dB, images in [0, 1]."""
    mse = (x - xr.clamp(0, 1)).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)
