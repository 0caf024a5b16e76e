"""The guidance loop: optimise any renderer's parameters so its images match their prompts under CLIP.

One function, :func:`run_guidance`, over a frozen :class:`GuidanceConfig`. A batch holds every
(prompt, seed) pair at once: one CLIP forward pass covers all views of all images. Images stay independent
(per-image generators for views, per-image gradient clipping and projection, per-element optimiser state,
losses summed over the batch), so a batched run equals separate runs with the same seeds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.guidance.augment import ViewMaker
from clip_t2i.guidance.config import OPTIMIZERS, PROJECTIONS, SCHEDULES, GuidanceConfig  # noqa: F401 - re-exported
from clip_t2i.guidance.losses import GuidanceLoss, total_variation
from clip_t2i.guidance.prompts import PromptTargets


# ----------------------------------------------------------------------------------------------- projection
def clamp_unit(x: Tensor) -> Tensor:
    """Projection onto the box: ``clamp(x, 0, 1)``."""
    return x.clamp(0.0, 1.0)


def dynamic_threshold(x: Tensor, quantile: float = 0.95) -> Tensor:
    """Dynamic thresholding per image: ``y = 2x - 1``; ``s = max(1, Q_quantile(|y|))`` over the image's pixels;
    ``y <- clamp(y, -s, s) / s``; return ``(y + 1) / 2``. With ``s = 1`` this is a plain clamp to [0, 1];
    otherwise the whole image is rescaled so the ``quantile``-th largest magnitude lands on the border."""
    y = x * 2 - 1
    s = torch.quantile(y.detach().abs().flatten(1), quantile, dim=1).clamp_min(1.0).view(-1, *[1] * (x.ndim - 1))
    y = torch.maximum(torch.minimum(y, s), -s) / s
    return (y + 1) / 2


def make_projection(cfg: GuidanceConfig) -> Callable[[Tensor], Tensor]:
    if cfg.projection == "clamp":
        return clamp_unit
    q = cfg.threshold_quantile
    return lambda x: dynamic_threshold(x, q)


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class StepInfo:
    """What a progress callback sees after each step (per-image tensors on the CPU)."""

    step: int
    steps: int
    loss: Tensor
    similarity: Tensor
    lr: float
    images: Tensor | None = None  # the images this step scored ``[B, 3, H, W]`` (detached, on the device)


@dataclass
class GuidanceResult:
    """Output of :func:`run_guidance`.

    ``images`` the returned images ``[B, 3, H, W]`` (best by global loss if ``keep_best``, else final);
    ``final`` the image after the last step; ``best_loss`` / ``best_step`` / ``best_similarity`` per image;
    ``snapshots`` ``[(step, images)]`` every ``snapshot_every`` steps plus the final image;
    ``history`` per step ``{"loss", "similarity"}`` means over the batch.
    """

    images: Tensor
    final: Tensor
    best_loss: Tensor
    best_step: Tensor
    best_similarity: Tensor
    snapshots: list[tuple[int, Tensor]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` on a module's parameters (no weight gradients) and eval mode, then restore."""
    saved = [(p, p.requires_grad) for p in module.parameters()]
    was_training = module.training
    for p, _ in saved:
        p.requires_grad_(False)
    module.eval()
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
        module.train(was_training)


def _lr_factor(cfg: GuidanceConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.schedule == "cosine":
        return cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "linear":
        return 1 - (1 - cfg.lr_final) * t
    return 1.0


def milestone_factor(group: dict[str, Any], progress: float) -> float:
    """A parameter group's own step schedule: ``lr_milestones = [[fraction, multiplier], ...]`` (sorted by
    fraction) multiplies the group's lr by the last ``multiplier`` whose ``fraction <= progress`` (1 before the
    first); groups without the key are unaffected (CLIPDraw's points: ``[[0.5, 0.4], [0.75, 0.1]]``)."""
    factor = 1.0
    for fraction, multiplier in group.get("lr_milestones") or ():
        if progress >= fraction:
            factor = float(multiplier)
    return factor


def make_optimizer(groups: list[dict[str, Any]], cfg: GuidanceConfig) -> torch.optim.Optimizer:
    """The optimiser over a renderer's parameter groups (each group may carry an ``lr_scale``)."""
    groups = [{**g, "lr": cfg.lr * g.pop("lr_scale", 1.0)} for g in (dict(g) for g in groups)]
    for g in groups:
        g["initial_lr"] = g["lr"]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


NORMALIZED_STEP_SIDE = 64  # grad_normalize: reference side when the guide does not say its input size


def normalized_step_scale(height: int, width: int, reference: int = NORMALIZED_STEP_SIDE) -> float:
    """``√(H·W) / S`` with ``S`` the guiding CLIP's input side: with ``grad_normalize`` an image of H×W takes L2 steps
    of ``lr · √(H·W) / S``. The CLIP sees the image resized to S×S, so ``lr`` is the step length in the CLIP's own
    input space and the RMS change per pixel, ``lr / (S √3)``, does not depend on the render size (exactly 1.0 when
    the image is rendered at the CLIP's size)."""
    return math.sqrt(height * width) / reference


def per_image_grad_norm(params: Sequence[Tensor]) -> Tensor:
    """L2 norm of each image's gradient over all parameter tensors (leading dim = image), ``[B]``."""
    sq = None
    for p in params:
        if p.grad is None:
            continue
        s = p.grad.detach().pow(2).flatten(1).sum(1)
        sq = s if sq is None else sq + s
    if sq is None:
        raise RuntimeError("no gradient reached the renderer parameters")
    return sq.sqrt()


def _scale_grads(params: Sequence[Tensor], scale: Tensor) -> None:
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale.view(-1, *[1] * (p.grad.ndim - 1)).to(p.grad.dtype))


def step_noise_like(param: Tensor, generators: Sequence[torch.Generator], side: int = 0) -> Tensor:
    """Unit Gaussian noise shaped like ``param`` (leading dim = image), image b's from ``generators[b]``; with
    ``side > 0`` and an image-shaped ``[B, C, H, W]`` parameter it is drawn at ``side × side`` and upsampled
    bilinearly (a perturbation at the scale of objects, not of pixels)."""
    coarse = side > 0 and param.ndim == 4
    shape = (*param.shape[1:2], side, side) if coarse else tuple(param.shape[1:])
    noise = torch.stack([torch.randn(shape, generator=g, device=g.device) for g in generators]).to(param)
    if coarse:
        noise = torch.nn.functional.interpolate(noise, size=param.shape[-2:], mode="bilinear", align_corners=False)
    return noise


def resolve_translation(cfg: GuidanceConfig, clip: Any) -> GuidanceConfig:
    """With ``translation_tokens = k > 0`` and a patch CLIP, views shift by up to ``k · patch / image_size`` of the
    side (k = 0.5: half a token, 8 px at 64² for patch 16, 4 px for patch 8); CLIPs without a ``token_fraction``
    (ResNets, stand-ins) keep ``translation``. Raises :class:`UserError` if the shift would reach the whole side."""
    fraction = getattr(clip, "token_fraction", None)
    if cfg.translation_tokens <= 0 or fraction is None:
        return cfg
    shift = cfg.translation_tokens * float(fraction)
    if not shift < 1:
        raise UserError(
            f"translation_tokens must be below {1 / float(fraction):g} for this CLIP (its token is {fraction:.3f} "
            f"of the side), got {cfg.translation_tokens}"
        )
    return replace(cfg, translation=shift)


def run_guidance(
    renderer: Any,
    params: list[Tensor],
    clip: Any,
    targets: PromptTargets,
    generators: Sequence[torch.Generator],
    cfg: GuidanceConfig,
    *,
    callback: Callable[[StepInfo], bool | None] | None = None,
) -> GuidanceResult:
    """Optimise ``params`` (leading dim = image) so ``renderer.render(params)`` matches ``targets`` under ``clip``.

    ``translation_tokens`` is turned into a shift for ``clip``'s token size first (:func:`resolve_translation`).
    Each step: render ``[B, 3, H, W]``; make ``global_views`` + ``patch_views`` views per image with that
    image's generator; one CLIP forward pass over all views; :class:`GuidanceLoss` per image (plus
    ``tv_weight · total_variation(image)`` and the renderer's ``regularizer(params)`` if it has one); backward of
    the sum over images; per-image gradient clipping (or normalisation); optimiser step with the scheduled lr;
    with ``step_noise > 0``, Gaussian noise of std ``step_noise · √(lr factor)`` on every parameter (each image's
    from its generator; drawn at ``step_noise_side``² and upsampled if set); ``renderer.project(params,
    projection)``; keep-the-best by global loss; a snapshot every ``snapshot_every``
    steps; ``callback(StepInfo)`` (returning ``False`` stops early).
    """
    cfg = resolve_translation(cfg.validate(), clip)
    reference = int(getattr(clip, "image_size", NORMALIZED_STEP_SIDE))
    b = len(targets)
    if len(generators) != b:
        raise ValueError(f"{b} targets but {len(generators)} generators")
    loss_fn = GuidanceLoss(cfg.loss, cfg.global_weight, cfg.patch_weight, cfg.patch_rejection, cfg.patch_rejection_mode)
    views = cfg.view_settings()
    global_maker = ViewMaker(views, "global")
    patch_maker = ViewMaker(views, "patch") if cfg.patch_views > 0 else None
    project = make_projection(cfg)
    leaves = [p for p in params if p.requires_grad]
    opt = make_optimizer(renderer.param_groups(params), cfg)
    best_loss = torch.full((b,), math.inf)
    best_step = torch.zeros(b, dtype=torch.long)
    best_sim = torch.zeros(b)
    best_images: Tensor | None = None
    snapshots: list[tuple[int, Tensor]] = []
    history: list[dict[str, float]] = []
    vg, vp = cfg.global_views, cfg.patch_views
    prior = getattr(renderer, "regularizer", None)  # a renderer's own prior on its parameters, [B] (optional)
    with frozen(clip):
        for step in range(cfg.steps):
            factor = _lr_factor(cfg, step)
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor * milestone_factor(group, step / cfg.steps)
            images = renderer.render(params)
            if cfg.snapshot_every and step % cfg.snapshot_every == 0:
                snapshots.append((step, images.detach().cpu().clone()))
            batch = [global_maker(images, generators, vg)]
            if patch_maker is not None:
                batch.append(patch_maker(images, generators, vp))
            emb = clip.encode_image(torch.cat(batch))
            emb_g = emb[: b * vg].view(b, vg, -1)
            emb_p = emb[b * vg :].view(b, vp, -1) if patch_maker is not None else None
            out = loss_fn(emb_g, emb_p, targets)
            with torch.no_grad():  # keep-best before the step: the pixels renderer's image *is* its parameter
                g_loss = out["global"].detach().cpu()
                better = g_loss < best_loss
                if best_images is None:
                    best_images = images.detach().clone()
                elif bool(better.any()):
                    best_images[better] = images.detach()[better.to(images.device)]
                best_loss = torch.where(better, g_loss, best_loss)
                best_step = torch.where(better, torch.full_like(best_step, step), best_step)
                best_sim = torch.where(better, out["similarity"].detach().cpu(), best_sim)
            opt.zero_grad(set_to_none=True)
            total = out["loss"].sum()
            if cfg.tv_weight > 0:  # L_b + λ_tv TV(x_b): a prior on the picture, not part of keep-best's score
                total = total + cfg.tv_weight * total_variation(images).sum()
            if prior is not None:
                reg = prior(params)
                if reg is not None:
                    total = total + reg.sum()
            total.backward()
            if cfg.grad_normalize or cfg.grad_clip > 0:
                norm = per_image_grad_norm(leaves)
                if cfg.grad_normalize:  # step length lr at the CLIP's input size, growing with the render side
                    scale = normalized_step_scale(images.shape[-2], images.shape[-1], reference) / (norm + 1e-12)
                else:
                    scale = (cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0)
                _scale_grads(leaves, scale)
            opt.step()
            with torch.no_grad():
                if cfg.step_noise > 0:  # annealed Langevin-style exploration: σ_k = step_noise · √(lr_k / lr)
                    sigma = cfg.step_noise * math.sqrt(factor)
                    for p in leaves:
                        p.add_(step_noise_like(p, generators, cfg.step_noise_side), alpha=sigma)
                renderer.project(params, project)
            info = StepInfo(
                step,
                cfg.steps,
                out["loss"].detach().cpu(),
                out["similarity"].detach().cpu(),
                opt.param_groups[0]["lr"],
                images.detach(),
            )
            history.append({"loss": float(info.loss.mean()), "similarity": float(info.similarity.mean())})
            if callback is not None and callback(info) is False:
                break
    with torch.no_grad():
        final = renderer.render(params).detach().clone()
    snapshots.append((cfg.steps, final.cpu().clone()))
    assert best_images is not None
    result_images = best_images if cfg.keep_best else final
    return GuidanceResult(result_images, final, best_loss, best_step, best_sim, snapshots, history)
