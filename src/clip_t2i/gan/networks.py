"""Networks of the CLIP-aided GAN: a GALIP-style generator and the discriminators (GALIP, SCAD).

Generator (:class:`Generator`, after GALIP's NetG, re-implemented from the facts in the reference note)::

    z [B, z_dim] ──FC──> [B, C_a, g, g] ──M_Blocks(cond)──> conv ──> bridge [B, W, g, g]
                                                                        │
    cond = [z; e]  ──FC──> P prompt tokens [B, P, W]  ──>  frozen CLIP ViT blocks on the bridge tokens
                                                           (CLS + pos. emb. + ln_pre; prompt k appended
                                                            before block prompt_blocks[k], removed after)
                                                                        │ mapped [B, W, g, g]
    conv(bridge + mapper_weight · mapped) ──> G_Blocks (upsample ×2, DFBLK(cond) + conv3×3) ──> RGB

``g`` is the CLIP's token grid, ``W`` its width; the output side follows the CLIP (``g · patch``) unless
``resolution`` asks for another ``g · 2^k``. Images are in GALIP's [-1, 1] scale without a final tanh (clamp
when sampling). The CLIP stays frozen (``requires_grad=False``) but gradients flow through its blocks.

Discriminators (:class:`Discriminator`) read frozen CLIP ViT features (patch tokens after ``clip_layers``,
reshaped to grids; :class:`ClipTaps`) through a trunk of residual conv blocks (GALIP NetD), then

* a joint head ``h(x, c)`` (GALIP NetC: text tiled and concatenated; a scalar, or a ``head_dim`` vector for
  SAN with a direction ``ω(c) = normalize(W e)`` — :class:`SanDirection`);
* optionally a text-free PatchGAN on pixels (:class:`PatchDiscriminator`, one global SAN direction);
* optionally an MI head ``Q`` predicting ``z`` from the (pooled) trunk features (:class:`MIHead`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from clip_t2i.errors import UserError
from clip_t2i.utils.config import dataclass_from_dict

DIRECTIONS = ("none", "text", "global")
SCALE_PLACES = ("h", "none")
MI_SOURCES = ("semantic", "fidelity")


# ------------------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class GeneratorConfig:
    """Generator widths; the token grid and width come from the wrapped CLIP."""

    z_dim: int = 100  # noise dimension
    adapter_channels: int = 64  # C_a: channels of the FC code and the M_Blocks before the bridge
    adapter_blocks: int = 2  # M_Blocks (GALIP: 4)
    bridge_kernel: int = 3  # kernel of the conv to the bridge feature (GALIP: 5)
    num_prompts: int | None = None  # prompt tokens; None = GALIP's share of blocks (blocks 1..⌊2L/3⌋)
    prompt_blocks: tuple[int, ...] | None = None  # explicit CLIP block indices taking a prompt (overrides)
    mapper_weight: float = 0.1  # conv(bridge + mapper_weight · CLIP-mapped bridge)
    base_channels: int = 8  # channels at the output resolution; ×2 per halving of the resolution
    max_channels: int = 128  # cap on any G_Block's channels
    resolution: int | None = None  # output side; None = the CLIP's input size (grid × patch)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        return dataclass_from_dict(cls, data, "generator")

    def validate(self) -> None:
        for name in ("z_dim", "adapter_channels", "base_channels", "max_channels", "bridge_kernel"):
            if getattr(self, name) < 1:
                raise UserError(f"generator.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.adapter_blocks < 0:
            raise UserError(f"generator.adapter_blocks must be ≥ 0, got {self.adapter_blocks}")
        if self.bridge_kernel % 2 == 0:
            raise UserError(f"generator.bridge_kernel must be odd, got {self.bridge_kernel}")
        if self.num_prompts is not None and self.num_prompts < 0:
            raise UserError(f"generator.num_prompts must be ≥ 0, got {self.num_prompts}")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Discriminator options; ``direction``/``spectral_norm`` are the formulation ablation switches."""

    clip_layers: tuple[int, ...] | None = None  # CLIP blocks whose patch tokens D reads; None = GALIP's 1,4,8 of 12
    trunk_channels: int = 128  # output channels of the trunk (GALIP: 512)
    head_hidden: int = 128  # hidden channels of the joint head (GALIP NetC: 128)
    head_dim: int = 1  # output dimension of h; 1 for a scalar logit (direction "none")
    direction: str = "none"  # none: f = h (scalar); text: ω(c) = normalize(W e); global: one learnable ω
    scale: str = "h"  # where ‖W e‖ (or ‖w‖) goes: "h" (SAN: h ← ‖w‖·h) or "none" (dropped)
    text_in_head: bool = True  # h(x, c) sees the tiled text embedding (GALIP NetC); False: h(x)
    spectral_norm: bool = False  # spectral norm on every trunk / head / PatchGAN conv (never on W of ω)
    fidelity: bool = False  # add the text-free PatchGAN on pixels
    patch_channels: int = 32  # PatchGAN width of the first layer (×2 per downsampling, max 4×)
    patch_layers: int = 3  # stride-2 convs of the PatchGAN (64 px -> 8×8 patches)
    patch_dim: int = 64  # per-patch feature dimension (projected on one global direction)
    mi_source: str = "semantic"  # trunk Q reads: semantic (CLIP-feature trunk) or fidelity (PatchGAN)
    mi_hidden: int = 256  # hidden units of Q
    mi_trunk_grad: bool = True  # L_MI also trains the trunk Q reads (InfoGAN); False: Q's own layers only
    group_std: int = 0  # k ≥ 2: both heads also see the std over groups of k same-caption images (0 = off)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiscriminatorConfig:
        return dataclass_from_dict(cls, data, "discriminator")

    def validate(self) -> None:
        if self.direction not in DIRECTIONS:
            raise UserError(f"discriminator.direction must be one of {list(DIRECTIONS)}, got {self.direction!r}")
        if self.scale not in SCALE_PLACES:
            raise UserError(f"discriminator.scale must be one of {list(SCALE_PLACES)}, got {self.scale!r}")
        if self.mi_source not in MI_SOURCES:
            raise UserError(f"discriminator.mi_source must be one of {list(MI_SOURCES)}, got {self.mi_source!r}")
        if self.direction == "none" and self.head_dim != 1:
            raise UserError("discriminator.direction 'none' needs head_dim 1 (a scalar logit)")
        if self.direction != "none" and self.head_dim < 2:
            raise UserError(f"discriminator.direction {self.direction!r} needs head_dim ≥ 2, got {self.head_dim}")
        for name in ("trunk_channels", "head_hidden", "patch_channels", "patch_layers", "patch_dim", "mi_hidden"):
            if getattr(self, name) < 1:
                raise UserError(f"discriminator.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.group_std < 0 or self.group_std == 1:
            raise UserError(f"discriminator.group_std must be 0 (off) or a group size ≥ 2, got {self.group_std}")


# ------------------------------------------------------------------------------------------ frozen CLIP ViT
class FrozenViT(nn.Module):
    """Access to a CLIP ViT image tower's pieces (shared, frozen): patchify, embed, blocks, pool.

    Raises:
        UserError: the image tower is not an open_clip ``VisionTransformer`` (e.g. a ResNet CLIP).
    """

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        from open_clip.transformer import VisionTransformer

        visual = clip.visual
        if not isinstance(visual, VisionTransformer):
            name = getattr(clip, "name", type(clip).__name__)
            raise UserError(
                f"the GAN needs a ViT CLIP (it runs the ViT blocks); {name} has a {type(visual).__name__} image tower"
            )
        if getattr(visual, "attn_pool", None) is not None:
            raise UserError("CLIP ViTs with attentional pooling are not supported by the GAN")
        for p in visual.parameters():
            p.requires_grad_(False)
        self.visual = visual
        self.clip_mean: Tensor
        self.clip_std: Tensor
        self.register_buffer("clip_mean", clip.mean.clone(), persistent=False)
        self.register_buffer("clip_std", clip.std.clone(), persistent=False)
        self.image_size = int(clip.image_size)
        self.grid = int(visual.grid_size[0])
        self.patch = int(visual.conv1.kernel_size[0])
        self.width = int(visual.conv1.out_channels)
        self.layers = len(visual.transformer.resblocks)
        self.embed_dim = int(visual.proj.shape[1]) if visual.proj is not None else self.width
        self.batch_first = bool(getattr(visual.transformer, "batch_first", True))
        if visual.grid_size[0] != visual.grid_size[1]:
            raise UserError(f"the GAN needs a square token grid, got {tuple(visual.grid_size)}")

    def train(self, mode: bool = True) -> FrozenViT:
        """Always eval (no patch dropout); the module is frozen."""
        return super().train(False)

    def preprocess(self, images: Tensor) -> Tensor:
        """[-1, 1]-scale images -> the CLIP's normalised input (differentiable resize to its size)."""
        x = images * 0.5 + 0.5
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            shrink = x.shape[-1] > self.image_size
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False, antialias=shrink)
        return (x - self.clip_mean.to(x.dtype)) / self.clip_std.to(x.dtype)

    def patch_tokens(self, x: Tensor) -> Tensor:
        """Normalised pixels [B, 3, S, S] -> patch tokens [B, g², W]."""
        t = self.visual.conv1(x.to(self.visual.conv1.weight.dtype))
        return t.flatten(2).transpose(1, 2)

    def embed(self, tokens: Tensor) -> Tensor:
        """Patch tokens [B, g², W] -> [B, 1 + g², W]: class token, positional embedding, ln_pre."""
        v = self.visual
        cls = v.class_embedding.to(tokens.dtype).view(1, 1, -1).expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], 1) + v.positional_embedding.to(tokens.dtype)
        return v.ln_pre(x)

    def block(self, i: int, x: Tensor) -> Tensor:
        """Run ViT block ``i`` on batch-first tokens [B, L, W]."""
        blk = self.visual.transformer.resblocks[i]
        if self.batch_first:
            return blk(x)
        return blk(x.transpose(0, 1)).transpose(0, 1)

    def pool(self, x: Tensor) -> Tensor:
        """Final tokens -> projected image embedding [B, E] (open_clip's own pooling + ln_post + proj)."""
        pooled, _ = self.visual._pool(x)
        return pooled @ self.visual.proj if self.visual.proj is not None else pooled

    def to_grid(self, tokens: Tensor) -> Tensor:
        """Patch tokens [B, g², W] -> [B, W, g, g]."""
        return tokens.transpose(1, 2).reshape(tokens.shape[0], self.width, self.grid, self.grid)


class ClipTaps(nn.Module):
    """Frozen CLIP features of images: patch-token grids after ``layers`` and (optionally) the embedding.

    ``forward(images in [-1, 1]) -> (feats [B, k, W, g, g], emb [B, E] or None)``; the embedding needs the
    full tower, the taps only the blocks up to ``max(layers)``.
    """

    def __init__(self, vit: FrozenViT, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.vit = vit
        self.layers = tuple(layers)

    def forward(self, images: Tensor, with_embedding: bool = False) -> tuple[Tensor, Tensor | None]:
        vit = self.vit
        x = vit.embed(vit.patch_tokens(vit.preprocess(images)))
        last = vit.layers - 1 if with_embedding else max(self.layers)
        taps = []
        for i in range(last + 1):
            x = vit.block(i, x)
            if i in self.layers:
                taps.append(vit.to_grid(x[:, 1:]))
        emb = vit.pool(x) if with_embedding else None
        return torch.stack(taps, 1), emb


def text_embedding(clip: nn.Module, texts: list[str]) -> Tensor:
    """The GAN's sentence embedding ``ẽ = √E · normalize(CLIP_text(c))`` [B, E] (no gradient).

    The √E scale gives ẽ unit variance per component, like z ~ N(0, I), so neither dominates ``[z; ẽ]`` in
    the generator's affine layers or the discriminator's concatenated head (GALIP uses raw ViT-B/32 text
    features, whose norm ≈ 10 is comparable to ‖z‖ for z_dim 100; an L2-normalised ẽ would be 10× weaker).
    """
    with torch.no_grad():
        e = clip.encode_text(texts)
    return e * math.sqrt(e.shape[1])


def default_clip_layers(n_layers: int) -> tuple[int, ...]:
    """GALIP's taps (blocks 1, 4, 8 of 12), rescaled to ``n_layers`` blocks: 4 -> (0, 1, 2), 6 -> (0, 2, 4)."""
    return tuple(sorted({round(k * (n_layers - 1) / 11) for k in (1, 4, 8)}))


def default_prompt_blocks(n_layers: int) -> tuple[int, ...]:
    """GALIP's prompt blocks (1..8 of 12), rescaled: blocks 1..⌊2L/3⌋ (4 -> (1, 2), 6 -> (1, 2, 3, 4))."""
    return tuple(range(1, max(1, (2 * n_layers) // 3) + 1))


def _check_layers(layers: tuple[int, ...], n: int, what: str) -> None:
    bad = [i for i in layers if not 0 <= i < n]
    if bad or len(set(layers)) != len(layers) or not layers:
        raise UserError(f"{what} must be distinct block indices in 0..{n - 1}, got {list(layers)}")


# ---------------------------------------------------------------------------------------------- generator
class Affine(nn.Module):
    """Per-channel FiLM from the condition: ``x · γ(y) + β(y)``, γ and β small MLPs (γ starts near 1, β near 0).

    GALIP zero-initialises the MLPs' output layers; a small random init (std 0.01) instead lets the first
    layer receive gradient from step one, which matters for short CPU runs.
    """

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        for head, bias in ((self.gamma[2], 1.0), (self.beta[2], 0.0)):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.constant_(head.bias, bias)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.addcmul(self.beta(y)[:, :, None, None], x, self.gamma(y)[:, :, None, None])


class DFBlock(nn.Module):
    """DF-GAN's fusion block: affine -> LeakyReLU(0.2) -> affine -> LeakyReLU(0.2)."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.a0 = Affine(cond_dim, channels)
        self.a1 = Affine(cond_dim, channels)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x = F.leaky_relu_(self.a0(x, y), 0.2)  # in place on fresh tensors: one memory pass each
        return F.leaky_relu_(self.a1(x, y), 0.2)


class MBlock(nn.Module):
    """Adapter block at the token grid: ``x + DF(conv(DF(conv(x))))`` (GALIP M_Block)."""

    def __init__(self, cond_dim: int, channels: int, hidden: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.f1 = DFBlock(cond_dim, hidden)
        self.c2 = nn.Conv2d(hidden, channels, 3, padding=1)
        self.f2 = DFBlock(cond_dim, channels)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x + self.f2(self.c2(self.f1(self.c1(x), y)), y)


class GBlock(nn.Module):
    """Upsampling block: nearest resize to ``size``, then ``(shortcut(x) + conv(DF(conv(DF(x))))) / √2``.

    The 1/√2 (as StyleGAN2's residual blocks) keeps the activation scale constant with variance-preserving
    initialisation; GALIP's G_Block has no such factor (it relies on PyTorch's shrinking default init).
    """

    def __init__(self, cond_dim: int, c_in: int, c_out: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.f1 = DFBlock(cond_dim, c_in)
        self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.f2 = DFBlock(cond_dim, c_out)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x = F.interpolate(x, size=(self.size, self.size), mode="nearest")
        return (self.shortcut(x) + self.c2(self.f2(self.c1(self.f1(x, y)), y))) * 0.7071067811865476


def stage_sizes(grid: int, resolution: int, clip_size: int | None = None) -> list[int]:
    """Resolutions of the G_Blocks: doubling from the token grid up to ``resolution``.

    ``resolution`` must be ``grid · 2^k`` (k ≥ 1) or the CLIP's own input size ``clip_size`` (= grid × patch; the
    last block then resizes by less than 2, e.g. 16 -> ... -> 128 -> 224 for a patch-14 ViT).
    """
    ratio = resolution // grid if resolution % grid == 0 else 0
    power_of_two = ratio >= 2 and ratio & (ratio - 1) == 0
    if not power_of_two and not (resolution == clip_size and resolution > grid):
        ok = ", ".join(str(grid << k) for k in range(1, 7))
        extra = f" or {clip_size}" if clip_size and clip_size not in [grid << k for k in range(1, 7)] else ""
        raise UserError(
            f"resolution {resolution} cannot be reached from the CLIP's {grid}×{grid} token grid; use {ok}{extra}"
        )
    sizes, s = [], grid
    while s < resolution:
        s = min(2 * s, resolution) if 2 * s < resolution or power_of_two else resolution
        sizes.append(s)
    return sizes


class Generator(nn.Module):
    """GALIP-style text-to-image generator around a frozen CLIP ViT. ``forward(z, e) -> [B, 3, S, S]`` in [-1, 1].

    Args:
        cfg: widths (:class:`GeneratorConfig`).
        clip: a ``ClipModel`` with a ViT image tower; its weights are shared (not copied) and frozen.
    """

    def __init__(self, cfg: GeneratorConfig, clip: nn.Module) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.vit = FrozenViT(clip)
        vit = self.vit
        g, w = vit.grid, vit.width
        self.resolution = int(cfg.resolution or vit.image_size)
        sizes = stage_sizes(g, self.resolution, vit.image_size)
        self.z_dim = cfg.z_dim
        self.text_dim = vit.embed_dim
        cond = cfg.z_dim + self.text_dim
        if cfg.prompt_blocks is not None:
            blocks = tuple(cfg.prompt_blocks)
            if blocks:
                _check_layers(blocks, vit.layers, "generator.prompt_blocks")
        elif cfg.num_prompts is not None:
            if cfg.num_prompts > vit.layers:
                raise UserError(f"generator.num_prompts {cfg.num_prompts} > {vit.layers} CLIP blocks")
            start = 1 if cfg.num_prompts < vit.layers else 0  # GALIP leaves block 0 without a prompt
            blocks = tuple(range(start, start + cfg.num_prompts))
        else:
            blocks = default_prompt_blocks(vit.layers)
        self.prompt_blocks = blocks
        ca = cfg.adapter_channels
        self.fc_code = nn.Linear(cfg.z_dim, ca * g * g)
        self.adapter = nn.ModuleList(MBlock(cond, ca, max(1, ca // 2)) for _ in range(cfg.adapter_blocks))
        self.to_bridge = nn.Conv2d(ca, w, cfg.bridge_kernel, padding=cfg.bridge_kernel // 2)
        self.fc_prompt = nn.Linear(cond, len(blocks) * w) if blocks else None

        def ch(size: int) -> int:
            return min(cfg.max_channels, cfg.base_channels * (self.resolution // size))

        self.from_mapped = nn.Conv2d(w, ch(g), cfg.bridge_kernel, padding=cfg.bridge_kernel // 2)
        chans = [ch(g)] + [ch(s) for s in sizes]
        self.blocks = nn.ModuleList(GBlock(cond, chans[i], chans[i + 1], s) for i, s in enumerate(sizes))
        self.to_rgb = nn.Conv2d(chans[-1], 3, 3, padding=1)
        for name, m in self.named_modules():  # variance-preserving init (PyTorch's default shrinks ~√3 per conv,
            if isinstance(m, nn.Conv2d) and not name.startswith("vit"):  # so z barely reached the output)
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        self.to_rgb.weight.data.mul_(0.3)  # output std ≈ 0.7 at init: inside [-1, 1] but far from constant

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """State dict without the frozen CLIP (keys under ``vit.``)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("vit.")}

    def load_trainable_state_dict(self, sd: dict[str, Tensor]) -> None:
        own = self.trainable_state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        bad = [k for k in own if k in sd and sd[k].shape != own[k].shape]
        if missing or unexpected or bad:
            raise UserError(
                f"generator weights do not fit the config: {len(missing)} missing, {len(unexpected)} unexpected, "
                f"{len(bad)} mis-shaped keys (e.g. {(missing + unexpected + bad)[:2]})"
            )
        self.load_state_dict({**self.state_dict(), **{k: v.to(own[k].dtype) for k, v in sd.items()}})

    def map_bridge(self, bridge: Tensor, prompts: Tensor | None) -> Tensor:
        """Run the frozen CLIP blocks on the bridge (as patch tokens) with the prompt tokens; -> [B, W, g, g]."""
        vit = self.vit
        x = vit.embed(bridge.flatten(2).transpose(1, 2))
        k = 0
        for i in range(vit.layers):
            if i in self.prompt_blocks:
                x = vit.block(i, torch.cat([x, prompts[:, k : k + 1]], 1))[:, :-1]
                k += 1
            else:
                x = vit.block(i, x)
        return vit.to_grid(x[:, 1:])

    def forward(self, z: Tensor, e: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim or e.shape != (z.shape[0], self.text_dim):
            raise ValueError(f"expected z [B, {self.z_dim}] and e [B, {self.text_dim}], got {z.shape}, {e.shape}")
        b, g = z.shape[0], self.vit.grid
        y = torch.cat([z, e.to(z.dtype)], 1)
        x = self.fc_code(z).view(b, -1, g, g)
        for blk in self.adapter:
            x = blk(x, y)
        bridge = self.to_bridge(x)
        prompts = self.fc_prompt(y).view(b, len(self.prompt_blocks), -1) if self.fc_prompt is not None else None
        mapped = self.map_bridge(bridge, prompts)
        x = self.from_mapped(bridge + self.cfg.mapper_weight * mapped)
        for blk in self.blocks:
            x = blk(x, y)
        return self.to_rgb(F.leaky_relu(x, 0.2))


# ------------------------------------------------------------------------------------------ discriminators
def _conv(c_in: int, c_out: int, k: int, sn: bool, stride: int = 1, padding: int | None = None) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2 if padding is None else padding)
    return spectral_norm(conv) if sn else conv


class DBlock(nn.Module):
    """Trunk block (GALIP D_Block): ``shortcut(x) + γ·res(x) [+ β·clip_feat]``, γ and β scalars starting at 0."""

    def __init__(self, c_in: int, c_out: int, sn: bool, with_clip: bool) -> None:
        super().__init__()
        self.res = nn.Sequential(
            _conv(c_in, c_out, 3, sn),
            nn.LeakyReLU(0.2, inplace=True),
            _conv(c_out, c_out, 3, sn),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.shortcut = _conv(c_in, c_out, 1, sn) if c_in != c_out else nn.Identity()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1)) if with_clip else None

    def forward(self, x: Tensor, clip_feat: Tensor | None = None) -> Tensor:
        out = self.shortcut(x) + self.gamma * self.res(x)
        if self.beta is not None:
            out = out + self.beta * clip_feat
        return out


class Trunk(nn.Module):
    """GALIP NetD on the CLIP feature stack [B, k, W, g, g] -> [B, C, g, g] (text-free)."""

    def __init__(self, width: int, k: int, c_out: int, sn: bool) -> None:
        super().__init__()
        self.mix = nn.ModuleList(DBlock(width, width, sn, with_clip=True) for _ in range(k - 1))
        self.out = DBlock(width, c_out, sn, with_clip=False)

    def forward(self, feats: Tensor) -> Tensor:
        x = feats[:, 0]
        for i, blk in enumerate(self.mix):
            x = blk(x, feats[:, i + 1])
        return self.out(x)


class JointHead(nn.Module):
    """``h(x, c)`` (GALIP NetC): [trunk; tiled e] -> conv3×3 -> LReLU -> conv over the whole grid -> [B, dim]."""

    def __init__(self, c_in: int, text_dim: int, grid: int, hidden: int, dim: int, sn: bool, text: bool) -> None:
        super().__init__()
        self.text = text
        self.c1 = _conv(c_in + (text_dim if text else 0), hidden, 3, sn)
        self.c2 = _conv(hidden, dim, grid, sn, padding=0)

    def forward(self, x: Tensor, e: Tensor | None) -> Tensor:
        if self.text:
            x = torch.cat([x, e.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1)
        return self.c2(F.leaky_relu(self.c1(x), 0.2)).flatten(1)


class SanLogits(NamedTuple):
    """SAN logits: ``fun = <sg(ω), h>`` (hinge part), ``dir = <ω, sg(h)>`` (Wasserstein part), ``full = <ω, h>``."""

    fun: Tensor
    dir: Tensor
    full: Tensor


def san_logits(h: Tensor, omega: Tensor, scale: Tensor | None) -> SanLogits:
    """Project ``h`` [B, d, ...] on unit directions ``omega`` [B or 1, d]; ``scale`` [B or 1] multiplies h.

    With ``scale`` s (SAN's ‖w‖) the feature is ``s·h``: the hinge part trains s, the Wasserstein part sees
    ``sg(s·h)`` so s gets no Wasserstein gradient, exactly as in sony/san's ``SanDiscriminator``.
    """
    extra = h.ndim - 2
    om = omega.view(*omega.shape, *([1] * extra)).to(h.dtype)
    if scale is not None:
        h = h * scale.view(-1, *([1] * (h.ndim - 1))).to(h.dtype)
    return SanLogits(
        fun=(h * om.detach()).sum(1),
        dir=(h.detach() * om).sum(1),
        full=(h * om).sum(1),
    )


class SanDirection(nn.Module):
    """ω(c) = W e / ‖W e‖ (``text``; no spectral norm on W) or one learnable ω = w / ‖w‖ (``global``).

    Returns ``(ω [B or 1, d], ‖·‖ [B or 1])``; the norm is the scale SAN folds into h.
    """

    def __init__(self, kind: str, text_dim: int, dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "text":
            self.proj = nn.Linear(text_dim, dim, bias=False)  # ‖W ẽ‖ ≈ 1 at init for ‖ẽ‖ = √text_dim
            nn.init.normal_(self.proj.weight, std=1.0 / math.sqrt(text_dim * dim))
        else:
            self.w = nn.Parameter(torch.randn(1, dim) / math.sqrt(dim))

    def forward(self, e: Tensor | None) -> tuple[Tensor, Tensor]:
        v = self.proj(e) if self.kind == "text" else self.w
        norm = v.norm(dim=1).clamp_min(1e-12)
        return v / norm[:, None], norm


def group_std(x: Tensor, k: int) -> Tensor:
    """Conditional minibatch standard deviation (StyleGAN's layer over same-caption groups).

    ``x`` ``[B, C, H, W]`` holds ``B / k`` consecutive groups of ``k`` images that share a caption. Returns
    ``x`` with one more channel: for every group and location, ``s = mean_C sqrt(Var_group(x) + 1e-8)``, repeated
    for the group's members — so a head sees how much the group varies, and a generator whose seeds of one
    caption look alike is told apart from real renders of it, which vary.
    """
    b, c, h, w = x.shape
    if b % k:
        raise ValueError(f"group_std: batch {b} is not a multiple of the group size {k}")
    y = x.float().view(b // k, k, c, h, w)
    s = (y.var(1, unbiased=False) + 1e-8).sqrt().mean(1, keepdim=True)  # [B/k, 1, H, W]
    return torch.cat([x, s.repeat_interleave(k, 0).to(x.dtype)], 1)


class SemanticDiscriminator(nn.Module):
    """Text-conditional discriminator on frozen CLIP features: trunk -> h(x, c) -> scalar or SAN projection."""

    def __init__(self, cfg: DiscriminatorConfig, width: int, grid: int, text_dim: int, k: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = Trunk(width, k, cfg.trunk_channels, cfg.spectral_norm)
        c_head = cfg.trunk_channels + (1 if cfg.group_std else 0)
        self.head = JointHead(
            c_head, text_dim, grid, cfg.head_hidden, cfg.head_dim, cfg.spectral_norm, cfg.text_in_head
        )
        self.direction = SanDirection(cfg.direction, text_dim, cfg.head_dim) if cfg.direction != "none" else None

    def logits(self, trunk_out: Tensor, e: Tensor) -> SanLogits:
        """Logits of trunk features with sentence embeddings ``e``; direction 'none' -> fun = dir = full = h."""
        if self.cfg.group_std:
            trunk_out = group_std(trunk_out, self.cfg.group_std)
        h = self.head(trunk_out, e)
        if self.direction is None:
            f = h[:, 0]
            return SanLogits(f, f, f)
        omega, norm = self.direction(e)
        return san_logits(h, omega, norm if self.cfg.scale == "h" else None)


class PatchDiscriminator(nn.Module):
    """Text-free PatchGAN on pixels: stride-2 convs -> per-patch features h_p [B, d, P, P] -> <ω, h_p>."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in, c = 3, cfg.patch_channels
        for i in range(cfg.patch_layers):
            c_out = cfg.patch_channels * min(2**i, 4)
            layers += [_conv(c_in, c_out, 4, cfg.spectral_norm, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c = c_out
        self.features = nn.Sequential(*layers)
        self.channels = c
        self.head = _conv(c + (1 if cfg.group_std else 0), cfg.patch_dim, 3, cfg.spectral_norm)
        self.direction = SanDirection("global", 0, cfg.patch_dim)

    def forward(self, images: Tensor) -> tuple[SanLogits, Tensor]:
        """-> (per-patch logits [B, P, P], trunk features [B, C, P, P])."""
        feat = self.features(images)
        omega, norm = self.direction(None)
        h = self.head(group_std(feat, self.cfg.group_std) if self.cfg.group_std else feat)
        return san_logits(h, omega, norm if self.cfg.scale == "h" else None), feat


class MIHead(nn.Module):
    """Q(z | x): global-average-pooled trunk features -> MLP -> ẑ [B, z_dim]."""

    def __init__(self, c_in: int, hidden: int, z_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(c_in, hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, z_dim))

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat.float().mean((2, 3)))


class Discriminator(nn.Module):
    """All discriminator parts of one variant, sharing the frozen CLIP with the generator.

    ``semantic``: :class:`SemanticDiscriminator` (always); ``fidelity``: :class:`PatchDiscriminator` or None;
    ``q``: :class:`MIHead` or None (built when ``with_q``). ``taps`` gives the CLIP feature stack.
    """

    def __init__(self, cfg: DiscriminatorConfig, clip: nn.Module, z_dim: int = 100, with_q: bool = False) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        vit = FrozenViT(clip)
        layers = tuple(cfg.clip_layers) if cfg.clip_layers is not None else default_clip_layers(vit.layers)
        _check_layers(layers, vit.layers, "discriminator.clip_layers")
        self.taps = ClipTaps(vit, layers)
        self.semantic = SemanticDiscriminator(cfg, vit.width, vit.grid, vit.embed_dim, len(layers))
        self.fidelity = PatchDiscriminator(cfg) if cfg.fidelity else None
        if with_q and cfg.mi_source == "fidelity" and self.fidelity is None:
            raise UserError("discriminator.mi_source 'fidelity' needs discriminator.fidelity true")
        q_in = cfg.trunk_channels if cfg.mi_source == "semantic" else (self.fidelity.channels if self.fidelity else 0)
        self.q = MIHead(q_in, cfg.mi_hidden, z_dim) if with_q else None

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("taps.")}


def count_parameters(module: nn.Module, trainable: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)
