"""A VQGAN whose state-dict keys are taming-transformers' ``VQModel`` / ``GumbelVQ`` keys (no loss attached).

Layout (taming's ``diffusionmodules/model.py``): ``encoder.{conv_in, down.{i}.block.{j}, down.{i}.attn.{j},
down.{i}.downsample.conv, mid.block_1, mid.attn_1, mid.block_2, norm_out, conv_out}``, the decoder the same with
``up.{i}.block.{j}`` (``num_res_blocks + 1`` per level), ``up.{i}.upsample.conv``; ``quant_conv`` (z_channels →
embed_dim, 1×1), ``post_quant_conv`` (embed_dim → z_channels, 1×1), and the quantiser: ``quantize.embedding.weight``
``[n_embed, embed_dim]`` (``VQModel``) or ``quantize.proj`` + ``quantize.embed.weight`` (``GumbelVQ``). Residual
blocks: GroupNorm(32, eps 1e-6) → swish → 3×3 conv, twice, with a 1×1 ``nin_shortcut`` when channels change;
attention: single-head over the h·w positions with 1×1 ``q``, ``k``, ``v``, ``proj_out``; downsampling pads
(0, 1, 0, 1) and applies a stride-2 3×3 conv; upsampling is nearest ×2 then a 3×3 conv. Images are in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.renderers.vqgan.config import GROUPS, VQGANConfig


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPS, c, eps=1e-6, affine=True)


def _swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    """``x + conv2(drop(swish(norm2(conv1(swish(norm1(x)))))))``, the skip a 1×1 conv if channels change."""

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.dropout = nn.Dropout(dropout)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(self.dropout(_swish(self.norm2(h))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over positions: ``x + proj_out(softmax(q kᵀ / √c) v)``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        b, c, hh, ww = h.shape
        q = self.q(h).flatten(2).transpose(1, 2)  # [b, hw, c]
        k = self.k(h).flatten(2).transpose(1, 2)
        v = self.v(h).flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √c) v
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, hh, ww))


class Downsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Mid(nn.Module):
    def __init__(self, c: int, dropout: float) -> None:
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResnetBlock(c, c, dropout), AttnBlock(c), ResnetBlock(c, c, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Level(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block, self.attn = nn.ModuleList(), nn.ModuleList()


class Encoder(nn.Module):
    """Image ``[B, in_channels, H, W]`` in [-1, 1] → ``[B, z_channels, H/f, W/f]``."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, 1, 1)
        self.down = nn.ModuleList()
        mults, res = (1, *cfg.ch_mult), cfg.resolution
        cout = cfg.ch
        for i, m in enumerate(cfg.ch_mult):
            level, cin, cout = _Level(), cfg.ch * mults[i], cfg.ch * m
            for _ in range(cfg.num_res_blocks):
                level.block.append(ResnetBlock(cin, cout, cfg.dropout))
                cin = cout
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(cout))
            if i != len(cfg.ch_mult) - 1:
                level.downsample = Downsample(cout)
                res //= 2
            self.down.append(level)
        self.mid = _Mid(cout, cfg.dropout)
        self.norm_out = _norm(cout)
        self.conv_out = nn.Conv2d(cout, cfg.z_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        return self.conv_out(_swish(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """``[B, z_channels, h, w]`` → image ``[B, out_ch, h·f, w·f]`` (about [-1, 1], not clamped)."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        n = len(cfg.ch_mult)
        cin = cfg.ch * cfg.ch_mult[-1]
        res = cfg.resolution // cfg.factor
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, 1, 1)
        self.mid = _Mid(cin, cfg.dropout)
        levels: list[_Level] = []
        for i in reversed(range(n)):
            level, cout = _Level(), cfg.ch * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(ResnetBlock(cin, cout, cfg.dropout))
                cin = cout
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(cout))
            if i != 0:
                level.upsample = Upsample(cout)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, cfg.out_ch, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(_swish(self.norm_out(h)))


def nearest_codes(z: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest code (squared L2) for every vector of ``z [B, D, h, w]`` → ``[B, h, w]``."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
    return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])


def straight_through(z: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """``z_q = z + sg(e_k − z)`` with ``k`` the nearest code: forward value ``e_k``, gradient of the identity."""
    idx = nearest_codes(z.detach(), codebook)
    zq = codebook[idx].permute(0, 3, 1, 2)
    return z + (zq - z).detach(), idx


class VectorQuantizer(nn.Module):
    """taming's ``VectorQuantizer2``: nearest-code lookup in ``embedding.weight [n_embed, embed_dim]``."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_embed, 1.0 / n_embed)

    @property
    def codebook(self) -> Tensor:
        return self.embedding.weight

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(straight-through ``z_q``, indices ``[B, h, w]``)."""
        return straight_through(z, self.codebook)


class GumbelQuantize(nn.Module):
    """taming's ``GumbelQuantize`` at inference: ``k = argmax proj(z)``, ``z_q = embed.weight[k]``."""

    def __init__(self, z_channels: int, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(z_channels, n_embed, 1)
        self.embed = nn.Embedding(n_embed, embed_dim)

    @property
    def codebook(self) -> Tensor:
        return self.embed.weight

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        idx = self.proj(z).argmax(1)
        return self.codebook[idx].permute(0, 3, 1, 2), idx


class VQGAN(nn.Module):
    """Encoder, quant_conv, quantiser, post_quant_conv, decoder; images in [0, 1] at the public methods."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.config = cfg.validate()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.quantize: VectorQuantizer | GumbelQuantize = (
            GumbelQuantize(cfg.z_channels, cfg.n_embed, cfg.embed_dim)
            if cfg.quantizer == "gumbel"
            else VectorQuantizer(cfg.n_embed, cfg.embed_dim)
        )

    @property
    def codebook(self) -> Tensor:
        """``[n_embed, embed_dim]``."""
        return self.quantize.codebook

    def encode_latent(self, images: Tensor) -> Tensor:
        """Pre-quantisation latents ``[B, embed_dim, h, w]`` of images in [0, 1]."""
        return self.quant_conv(self.encoder(images * 2 - 1))

    def quantise(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(quantised latents with straight-through gradients, code indices)."""
        return self.quantize(z)

    def encode(self, images: Tensor) -> Tensor:
        """Code indices ``[B, h, w]`` of images in [0, 1]."""
        return self.quantise(self.encode_latent(images))[1]

    def decode_latent(self, zq: Tensor) -> Tensor:
        """Images in about [0, 1] (not clamped) from quantised latents ``[B, embed_dim, h, w]``."""
        return (self.decoder(self.post_quant_conv(zq)) + 1) / 2

    def decode_codes(self, idx: Tensor) -> Tensor:
        """Images from code indices ``[B, h, w]``."""
        return self.decode_latent(self.codebook[idx].permute(0, 3, 1, 2))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(reconstruction in about [0, 1], pre-quantisation ``z``, indices); the decoder sees ``z_q`` with
        straight-through gradients to ``z``."""
        z = self.encode_latent(images)
        zq, idx = self.quantise(z)
        return self.decode_latent(zq), z, idx


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
