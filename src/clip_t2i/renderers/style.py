"""Text-driven style transfer (CLIPStyler): optimise a small residual U-Net per (content image, style text).

The StyleNet maps the content image ``x`` to ``y = sigmoid(logit(x) + U(x))``; ``U``'s last convolution starts at
zero, so the optimisation starts from the content image itself. Losses (see each function's docstring):
directional CLIP on the whole image, patch directional CLIP over random perspective crops with CLIPStyler's
threshold rejection (τ), a content loss and total variation. Content losses: ``vgg`` (VGG19 conv4_2 + conv5_2
MSE, the paper's; needs local weights: ``vgg_weights=PATH`` or ``$CLIP_T2I_VGG19``), and the weight-free
``ssim`` (default) and ``edges`` (Sobel) losses. Views come from the guidance engine's
:class:`~clip_t2i.guidance.augment.ViewMaker`, one generator per run, so a seed fixes the whole run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.errors import UserError

CONTENT_LOSSES = ("ssim", "edges", "vgg", "none")
VGG_ENV = "CLIP_T2I_VGG19"


# ------------------------------------------------------------------------------------------------ network
class _Block(nn.Module):
    """Two 3x3 conv + InstanceNorm + ReLU with a 1x1 residual skip."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(cout, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(cout, affine=True),
            nn.ReLU(inplace=True),
        )
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class StyleNet(nn.Module):
    """CLIPStyler's small residual U-Net (``ngf`` 16: 16 -> 32 -> 64 -> 128 bottleneck), output in (0, 1)."""

    def __init__(self, ngf: int = 16) -> None:
        super().__init__()
        self.ngf = ngf
        chans = [ngf, ngf, ngf * 2, ngf * 4]
        self.inp = nn.Conv2d(3, ngf, 1)
        self.enc = nn.ModuleList([_Block(chans[i], chans[i + 1]) for i in range(3)])
        self.down = nn.ModuleList([nn.Conv2d(c, c, 4, stride=2, padding=1) for c in chans[1:]])
        self.mid = _Block(chans[-1], ngf * 8)
        self.up = nn.ModuleList(
            [
                _Block(ngf * 8 + chans[3], chans[3]),
                _Block(chans[3] + chans[2], chans[2]),
                _Block(chans[2] + chans[1], ngf),
            ]
        )
        self.out = nn.Conv2d(ngf, 3, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``y = sigmoid(logit(x) + U(x))`` for ``x [B, 3, H, W]`` in [0, 1] (H, W multiples of 8)."""
        h = self.inp(x)
        skips = []
        for enc, down in zip(self.enc, self.down, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for up, skip in zip(self.up, reversed(skips), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = up(torch.cat([h, skip], 1))
        return torch.sigmoid(torch.logit(x.clamp(1e-3, 1 - 1e-3)) + self.out(h))


# ------------------------------------------------------------------------------------------------- losses
def directional_loss(e_out: Tensor, e_content: Tensor, text_dir: Tensor) -> Tensor:
    """``L_dir = 1 - cos(E(out) - E(content), ΔT)`` per row, ``ΔT`` the unit text direction (style - source)."""
    return 1.0 - F.cosine_similarity(e_out - e_content, text_dir.expand_as(e_out), dim=-1)


def patch_loss(e_patches: Tensor, e_content: Tensor, text_dir: Tensor, tau: float) -> Tensor:
    """``L_patch = mean_i [l_i * 1(l_i >= τ)]``, ``l_i = 1 - cos(E(patch_i) - E(content), ΔT)`` (CLIPStyler zeroes
    the patches whose loss is already below τ, so well-styled patches stop pulling)."""
    lp = directional_loss(e_patches, e_content.expand_as(e_patches), text_dir)
    return (lp * (lp >= tau).to(lp.dtype)).mean()


def tv_loss(x: Tensor) -> Tensor:
    """``L_tv = mean (x[i+1, j] - x[i, j])^2 + mean (x[i, j+1] - x[i, j])^2``."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def _luma(x: Tensor) -> Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def ssim(x: Tensor, y: Tensor, window: int = 7) -> Tensor:
    """Mean SSIM of the luminances with a uniform ``window``: ``((2 μx μy + C1)(2 σxy + C2)) /
    ((μx² + μy² + C1)(σx² + σy² + C2))``, ``C1 = 0.01²``, ``C2 = 0.03²``, per image ``[B]``."""
    a, b = _luma(x), _luma(y)
    pool = lambda t: F.avg_pool2d(t, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    mx, my = pool(a), pool(b)
    vx, vy, cxy = pool(a * a) - mx**2, pool(b * b) - my**2, pool(a * b) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def ssim_content_loss(out: Tensor, content: Tensor) -> Tensor:
    """``L_c = 1 - SSIM(luma(out), luma(content))``: structure kept, colour free to change."""
    return (1.0 - ssim(out, content)).mean()


def sobel(x: Tensor) -> Tensor:
    """Sobel gradient magnitude of the luminance, ``[B, 1, H, W]``."""
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    lum = F.pad(_luma(x), (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(lum, k.view(1, 1, 3, 3))
    gy = F.conv2d(lum, k.t().reshape(1, 1, 3, 3))
    return (gx.pow(2) + gy.pow(2) + 1e-8).sqrt()


def edge_content_loss(out: Tensor, content: Tensor) -> Tensor:
    """``L_c = mean |Sobel(luma(out)) - Sobel(luma(content))|``: edges kept where they are."""
    return (sobel(out) - sobel(content)).abs().mean()


def edge_correlation(out: Tensor, content: Tensor) -> Tensor:
    """Pearson correlation of the Sobel magnitudes of ``out`` and ``content``, per image ``[B]`` (1 = same edges)."""
    a, b = sobel(out).flatten(1), sobel(content).flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


class VGGContent(nn.Module):
    """``L_c = MSE(φ4_2(out), φ4_2(content)) + MSE(φ5_2(out), φ5_2(content))`` on VGG19 features (ImageNet
    normalisation), from a local torchvision ``vgg19`` state dict."""

    LAYERS = (21, 30)  # conv4_2, conv5_2 in torchvision's vgg19().features

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        from torchvision.models import vgg19

        net = vgg19()
        try:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
            raise UserError(f"cannot load VGG19 weights {weights}: {type(e).__name__}") from None
        self.features = net.features[: max(self.LAYERS) + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def feats(self, x: Tensor) -> list[Tensor]:
        h, out = (x - self.mean) / self.std, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.LAYERS:
                out.append(h)
        return out

    def forward(self, out: Tensor, content: Tensor) -> Tensor:
        return sum(F.mse_loss(a, b) for a, b in zip(self.feats(out), self.feats(content), strict=True))  # type: ignore[return-value]


def resolve_vgg_weights(path: str | Path | None) -> Path:
    """The VGG19 weights file: ``path`` or ``$CLIP_T2I_VGG19``; a one-line error naming both otherwise."""
    p = path or os.environ.get(VGG_ENV)
    if not p or not Path(p).is_file():
        raise UserError(
            f"content loss 'vgg' needs local VGG19 weights (torchvision vgg19 state dict): pass --vgg-weights PATH "
            f"or set ${VGG_ENV}{f' ({p} is not a file)' if p else ''}; no download is attempted"
        )
    return Path(p)


# --------------------------------------------------------------------------------------------- config + IO
@dataclass(frozen=True)
class StyleConfig:
    """CLIPStyler's settings scaled to the small CLIPs (paper defaults in comments)."""

    steps: int = 100  # 200
    lr: float = 5e-4  # Adam
    lr_step: int = 50  # StepLR(100, 0.5) in the paper: halve every lr_step steps
    size: int = 128  # content side (paper 512); a multiple of 8
    source: str = "a photo"  # "a Photo"
    lambda_dir: float = 500.0
    lambda_patch: float = 9000.0
    lambda_content: float = 150.0
    lambda_tv: float = 2e-3
    content_loss: str = "ssim"  # ssim | edges | vgg | none
    content_scale: float = 0.01  # ssim/edges loss x content_scale enters with lambda_content
    vgg_weights: str | None = None
    patches: int = 16  # 64 in the paper
    patch_fraction: float = 0.5  # crop side / image side (paper 128/512 = 0.25)
    perspective: float = 0.5
    tau: float = 0.7
    snapshot_every: int = 10

    def validate(self) -> StyleConfig:
        if self.content_loss not in CONTENT_LOSSES:
            raise UserError(f"content_loss must be one of {', '.join(CONTENT_LOSSES)}, got {self.content_loss!r}")
        if self.size % 8 or not 16 <= self.size:
            raise UserError(f"style size must be a multiple of 8 and >= 16, got {self.size}")
        if self.steps < 1 or self.patches < 0 or not 0 < self.patch_fraction <= 1 or self.lr <= 0:
            raise UserError("steps must be >= 1, patches >= 0, patch_fraction in (0, 1] and lr > 0")
        if not self.source.strip():
            raise UserError("the source text must not be empty")
        return self


def load_content(spec: str | Path | Tensor, size: int) -> Tensor:
    """A content image ``[1, 3, size, size]`` in [0, 1] from a file, ``skimage:NAME`` (scikit-image sample),
    ``shapes:SEED`` (the shapes world) or ``digits:INDEX``. Files larger than the ``image_size`` cap (per side,
    ``$CLIP_T2I_MAX_IMAGE_SIZE``, default 1024, checked before decoding) are refused."""
    from clip_t2i.utils.checks import check_cap

    if isinstance(spec, Tensor):
        x = spec.float().unsqueeze(0) if spec.ndim == 3 else spec.float()
    else:
        s = str(spec)
        kind, _, arg = s.partition(":")
        if kind == "skimage" and arg:
            import numpy as np
            from skimage import data as skdata

            fn = getattr(skdata, arg, None)
            if fn is None or not callable(fn):
                raise UserError(f"unknown scikit-image sample {arg!r} (e.g. astronaut, chelsea, coffee, rocket)")
            arr = np.asarray(fn())
            if arr.ndim == 2:
                arr = np.stack([arr] * 3, -1)
            x = torch.from_numpy(arr[..., :3].astype("float32") / 255.0).permute(2, 0, 1).unsqueeze(0)
        elif kind == "shapes" and arg.isdigit():
            from clip_t2i.data.shapes import ShapesWorld

            world = ShapesWorld(size=size)
            x = world.render(world.sample_scenes(1, torch.Generator().manual_seed(int(arg))))  # type: ignore[assignment]
        elif kind == "digits" and arg.isdigit():
            from sklearn.datasets import load_digits

            d = load_digits().images[int(arg)] / 16.0
            x = torch.tensor(d, dtype=torch.float32).view(1, 1, 8, 8).expand(1, 3, 8, 8)
        else:
            from PIL import Image, UnidentifiedImageError

            p = Path(s)
            if not p.is_file():
                raise UserError(f"content image {s} does not exist (a file, skimage:NAME, shapes:SEED or digits:N)")
            try:
                with Image.open(p) as img:
                    check_cap(max(img.size), "image_size", f"content image {p.name}: side")
                    arr = img.convert("RGB")
                    import numpy as np

                    x = torch.from_numpy(np.asarray(arr, dtype="float32") / 255.0).permute(2, 0, 1).unsqueeze(0)
            except (UnidentifiedImageError, OSError) as e:
                raise UserError(f"cannot read content image {p}: {type(e).__name__}") from None
    if x.ndim != 4 or x.shape[1] != 3:
        raise UserError(f"content image must be RGB, got shape {tuple(x.shape)}")
    return F.interpolate(x.clamp(0, 1), size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def save_stylenet(path: str | Path, net: StyleNet, meta: dict[str, Any]) -> Path:
    """Write the StyleNet as safetensors with ``meta`` (style text, source, size, ...) in the metadata."""
    from safetensors.torch import save_file

    from clip_t2i.utils.io import atomic_write

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata={"clip_t2i_stylenet": json.dumps({"ngf": net.ngf, **meta})})
    return path


def load_stylenet(path: str | Path) -> tuple[StyleNet, dict[str, Any]]:
    """A StyleNet saved by :func:`save_stylenet` and its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("clip_t2i_stylenet", "{}"))
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot read StyleNet {path}: {type(e).__name__}") from None
    net = StyleNet(int(meta.get("ngf", 16)))
    net.load_state_dict(state)
    return net.eval(), meta


def apply_stylenet(net: StyleNet | str | Path, images: Tensor | str | Path, size: int | None = None) -> Tensor:
    """Stylise other images with a trained StyleNet: ``[B, 3, H, W]`` in [0, 1] (or one image spec)."""
    meta: dict[str, Any] = {}
    if not isinstance(net, StyleNet):
        net, meta = load_stylenet(net)
    if not isinstance(images, Tensor):
        images = load_content(images, size or int(meta.get("size", 128)))
    with torch.no_grad():
        return net(images)


# ------------------------------------------------------------------------------------------------- driver
@dataclass
class StyleResult:
    """The stylised image ``[1, 3, S, S]``, the content, the net, a record, snapshots and the loss history."""

    image: Tensor
    content: Tensor
    net: StyleNet
    record: dict[str, Any]
    snapshots: list[Tensor] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)


def text_direction(clip: Any, text: str, source: str) -> Tensor:
    """Unit ``ΔT = normalize(Σ_k w_k (T(text_k) - T(source)))`` over the weighted sub-prompts of ``text``."""
    from clip_t2i.guidance.prompts import parse_prompt

    parts = parse_prompt(text)
    with torch.no_grad():
        emb = F.normalize(clip.encode_text([p.text for p in parts] + [source]).float(), dim=-1)
    w = torch.tensor([p.weight for p in parts], dtype=emb.dtype, device=emb.device)
    d = (w.unsqueeze(1) * (emb[:-1] - emb[-1:])).sum(0)
    return F.normalize(d, dim=0)


def run_style(
    clip: Any, content: Tensor, text: str, cfg: StyleConfig, seed: int = 0, content_model: Any = None
) -> StyleResult:
    """Optimise a fresh StyleNet so ``net(content)`` moves along the text direction under ``clip``.

    ``L = λ_dir L_dir + λ_patch L_patch + λ_c L_c + λ_tv L_tv`` (each defined in its function's docstring;
    ``ssim`` / ``edges`` content losses are multiplied by ``content_scale`` to sit at the VGG loss's scale).
    """
    from clip_t2i.guidance.augment import ViewMaker, ViewSettings
    from clip_t2i.guidance.loop import frozen

    cfg.validate()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = StyleNet()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=0.5)
    maker = ViewMaker(
        ViewSettings(
            colour=False,
            translation=0.0,
            resize=None,
            cutout=0.0,
            perspective=cfg.perspective,
            noise_std=0.0,
            patch_fraction=cfg.patch_fraction,
        ),
        "patch",
    )
    tdir = text_direction(clip, text, cfg.source)
    snaps, history = [], []
    with frozen(clip):
        e_content = F.normalize(clip.encode_image(content).float(), dim=-1)
        for step in range(cfg.steps):
            out = net(content)
            if cfg.snapshot_every and step % cfg.snapshot_every == 0:
                snaps.append(out.detach()[0].clone())
            views = [out]
            if cfg.patches > 0:
                views.append(maker(out, [gen], cfg.patches))
            emb = F.normalize(clip.encode_image(torch.cat(views)).float(), dim=-1)
            l_dir = directional_loss(emb[:1], e_content, tdir).mean()
            l_patch = patch_loss(emb[1:], e_content, tdir, cfg.tau) if cfg.patches > 0 else out.new_zeros(())
            if cfg.content_loss == "vgg":
                l_c = content_model(out, content)
            elif cfg.content_loss == "ssim":
                l_c = cfg.content_scale * ssim_content_loss(out, content)
            elif cfg.content_loss == "edges":
                l_c = cfg.content_scale * edge_content_loss(out, content)
            else:
                l_c = out.new_zeros(())
            l_tv = tv_loss(out)
            loss = cfg.lambda_dir * l_dir + cfg.lambda_patch * l_patch + cfg.lambda_content * l_c + cfg.lambda_tv * l_tv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(
                {
                    k: float(v.detach())
                    for k, v in (("loss", loss), ("dir", l_dir), ("patch", l_patch), ("content", l_c))
                }
            )
    with torch.no_grad():
        final = net(content)
    snaps.append(final[0].clone())
    record = {
        "prompt": text,
        "seed": seed,
        "renderer": "stylenet",
        "preset": "clipstyler",
        "similarity_dir": round(1 - history[-1]["dir"], 5),
        "settings": asdict(cfg),
    }
    return StyleResult(final, content, net.eval(), record, snaps, history)


def stylize(
    content: str | Path | Tensor,
    text: str,
    *,
    model: str | Any = "shapes-clipag",
    seed: int = 0,
    steps: int | None = None,
    size: int | None = None,
    content_loss: str | None = None,
    vgg_weights: str | Path | None = None,
    config: dict[str, Any] | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    gif: bool = False,
    save_net: bool = False,
    overwrite: bool = False,
) -> StyleResult:
    """Stylise one content image with a style text (CLIPStyler); see :func:`run_style`.

    ``content``: a file, ``skimage:NAME``, ``shapes:SEED``, ``digits:N`` or a tensor. ``text`` uses the prompt
    syntax of ``generate`` (``"red:1 | blue:-0.5"``). ``out``: folder for ``NAME.png`` (+ JSON sidecar, ``.gif``,
    ``.stylenet.safetensors``). Every input is checked before any work or file: empty text, bad content image,
    unwritable or already-filled output (unless ``overwrite``), missing VGG weights.
    """
    from clip_t2i.guidance.prompts import parse_prompt

    if not isinstance(text, str) or not text.strip():
        raise UserError('empty style text: give e.g. "red" or "a blue painting"')
    parse_prompt(text)
    over = dict(config or {})
    if steps is not None:
        from clip_t2i.utils.checks import check_int

        over["steps"] = check_int(steps, "--steps", cap="steps")
    if size is not None:
        over["size"] = size
    if content_loss is not None:
        over["content_loss"] = content_loss
    if vgg_weights is not None:
        over["vgg_weights"] = str(vgg_weights)
    try:
        cfg = StyleConfig(**over).validate()
    except TypeError as e:
        raise UserError(f"bad style setting: {e}") from None
    vgg = VGGContent(resolve_vgg_weights(cfg.vgg_weights)) if cfg.content_loss == "vgg" else None
    content_img = load_content(content, cfg.size)
    stem = name or _stem(content, text, seed)
    files = [f"{stem}.png", f"{stem}.json"] + [f"{stem}.gif"] * gif + [f"{stem}.stylenet.safetensors"] * save_net
    if out is not None:
        from clip_t2i.utils.paths import check_writable_dir, refuse_existing

        check_writable_dir(Path(out))
        refuse_existing(Path(out), files, overwrite)
    from clip_t2i.pipeline import load_guide

    clip = load_guide(model) if isinstance(model, str) else model
    from clip_t2i.backbones.vocabulary import check_prompts

    check_prompts(clip, [text], model if isinstance(model, str) else None)
    res = run_style(clip, content_img, text, cfg, seed, vgg)
    res.record.update(model=model if isinstance(model, str) else getattr(model, "name", "clip"))
    res.record["content"] = content if not isinstance(content, Tensor) else "tensor"
    if out is not None:
        from clip_t2i.renderers.outputs import save_gif, save_png

        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        res.record["file"] = files[0]
        if save_net:
            res.record["stylenet"] = f"{stem}.stylenet.safetensors"
            save_stylenet(o / res.record["stylenet"], res.net, {"text": text, "source": cfg.source, "size": cfg.size})
        if gif:
            res.record["gif"] = f"{stem}.gif"
            save_gif(o / res.record["gif"], res.snapshots)
        save_png(o / files[0], res.image[0], res.record)
    return res


def _stem(content: Any, text: str, seed: int) -> str:
    from clip_t2i.renderers.outputs import slugify

    c = (
        "tensor"
        if isinstance(content, Tensor)
        else Path(str(content)).stem
        if ":" not in str(content)
        else str(content)
    )
    return f"{slugify(str(c), 24)}-{slugify(text, 24)}-seed{seed:04d}"


def dominant_colour(
    images: Tensor, names: Sequence[str] | None = None, min_sat: float = 0.35, min_fraction: float = 0.005
) -> list[str | None]:
    """Per image, the colour word (of the shapes world's six) whose hue most saturated pixels are nearest to;
    None if fewer than ``min_fraction`` of the pixels have saturation and value >= ``min_sat``.

    The default floor, 0.5 % of the pixels (20 at 64²), is a third of the smallest object the shapes world draws
    (a small triangle covers 1.5–1.9 % at 64², a small cross 1.7–2.3 %), so a lone small object still has a colour.
    """
    from clip_t2i.data.shapes import COLOUR_RGB, COLOURS

    def hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mx, mn = x.max(1).values, x.min(1).values
        d = (mx - mn).clamp_min(1e-8)
        r, g, b = x.unbind(1)
        h = torch.where(mx == r, ((g - b) / d) % 6, torch.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) * 60
        return h, (mx - mn) / mx.clamp_min(1e-8), mx

    names = list(names or COLOURS)
    ref_h, _, _ = hsv(torch.tensor([COLOUR_RGB[COLOURS.index(c)] for c in names]).view(len(names), 3, 1, 1))
    out: list[str | None] = []
    h, s, v = hsv(images.float())
    for i in range(images.shape[0]):
        m = (s[i] >= min_sat) & (v[i] >= min_sat)
        if m.float().mean() < min_fraction:
            out.append(None)
            continue
        diff = (h[i][m].view(-1, 1) - ref_h.view(1, -1)).abs()
        diff = torch.minimum(diff, 360 - diff)
        counts = torch.bincount(diff.argmin(1), minlength=len(names))
        out.append(names[int(counts.argmax())])
    return out


__all__ = [
    "StyleConfig",
    "StyleNet",
    "StyleResult",
    "apply_stylenet",
    "directional_loss",
    "dominant_colour",
    "edge_content_loss",
    "edge_correlation",
    "load_content",
    "load_stylenet",
    "patch_loss",
    "run_style",
    "save_stylenet",
    "ssim",
    "ssim_content_loss",
    "stylize",
    "tv_loss",
]
