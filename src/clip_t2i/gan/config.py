"""Options of GAN training (:class:`GanTrainConfig`) and their validation — torch-free, so the CLI takes its
defaults from here without importing the training code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clip_t2i.errors import UserError
from clip_t2i.utils.checks import check_choice, check_float, check_int
from clip_t2i.utils.config import check_finite_fields

EMBED_CHOICES = ("auto", "always", "never")


@dataclass(frozen=True)
class GanTrainConfig:
    """Every option of GAN training; saved verbatim (with the resolved variant) as ``config.json``."""

    variant: str = "scad"  # preset name (galip, scad, scad-mi, scad-dd, ablations) or a .json file
    overrides: tuple[str, ...] = ()  # SECTION.KEY=VALUE applied to the variant (e.g. loss.mi_weight=0.05)
    clip: str = "vit-t64"  # CLIP to wrap (zoo name, clip-t2i .safetensors, project config); frozen
    clip_pretrained: str | None = None  # load_clip(clip, pretrained=): an open_clip tag or a weights file
    clip_image_tower: str | None = None  # load_clip(..., image_tower=): a file replacing the image tower only
    data: str = "shapes"  # make_stream source
    out: str = "runs/gan"  # run folder
    steps: int = 2000  # optimizer steps (each = one D step + one G step)
    batch_size: int = 32  # per process
    lr_g: float = 1e-4  # Adam learning rate of G (GALIP 1e-4)
    lr_d: float = 4e-4  # Adam learning rate of D and Q (GALIP 4e-4)
    betas: tuple[float, float] = (0.0, 0.9)  # Adam betas (GALIP)
    ema_beta: float = 0.999  # EMA decay of G per step; effective decay min(beta, (1+t)/(10+t))
    resolution: int | None = None  # output side; None = the CLIP's input size
    mixed_precision: str = "no"  # no | bf16 | fp16 (GPU)
    channels_last: bool = True  # NHWC memory format for G, D and G_ema: the same maths, faster convolutions on CPU
    seed: int = 0
    threads: int = 0  # torch intra-op threads (0 = leave as is)
    num_workers: int = 0  # DataLoader workers
    log_every: int = 25  # steps between scalars
    sample_every: int = 250  # steps between sample grids (0 = never)
    eval_every: int = 500  # steps between FID / mPPD / judge evaluations (0 = only at the end, -1 = never)
    eval_n_fid: int = 480  # fakes per FID evaluation
    eval_judge: str = "auto"  # judge for eval: auto (zoo shapes-judge if present), none, or a judge file
    ckpt_every: int = 500  # steps between checkpoints (0 = only at the end)
    max_minutes: float | None = None  # wall-clock budget; stops (and checkpoints) when exceeded
    resume: bool = False  # continue from the run folder's latest checkpoint
    embed_clip: str = "auto"  # put the CLIP weights into model files: auto (unless a zoo model), always, never
    progress: bool = True
    max_nonfinite_steps: int = 20  # consecutive skipped (non-finite) steps after which the run stops (0: never)
    extra: dict = field(default_factory=dict)


def validate(cfg: GanTrainConfig) -> Any:
    """Reject impossible settings before any work; returns the resolved :class:`GanConfig`."""
    from clip_t2i.gan.variants import get_variant, replace_generator

    check_finite_fields(cfg)
    check_int(cfg.steps, "--steps", cap="steps")
    check_int(cfg.batch_size, "--batch-size", minimum=2, cap="batch")
    check_float(cfg.lr_g, "--lr-g", positive=True)
    check_float(cfg.lr_d, "--lr-d", positive=True)
    check_int(cfg.eval_n_fid, "--eval-n-fid", minimum=2)
    check_int(cfg.max_nonfinite_steps, "--max-nonfinite-steps", minimum=0)
    for name in ("log_every",):
        check_int(getattr(cfg, name), "--" + name.replace("_", "-"))
    for name in ("sample_every", "ckpt_every", "num_workers"):
        check_int(getattr(cfg, name), "--" + name.replace("_", "-"), minimum=0)
    check_int(cfg.eval_every, "--eval-every", minimum=-1)
    check_choice(cfg.mixed_precision, ("no", "bf16", "fp16"), "--mixed-precision")
    if cfg.resolution is not None:
        check_int(cfg.resolution, "--resolution", minimum=8, cap="image_size")
    if (cfg.clip_pretrained or cfg.clip_image_tower) and cfg.embed_clip == "never":
        raise UserError(
            "--embed-clip never cannot be used with --pretrained / --image-tower: the CLIP must be embedded"
        )
    if not 0 <= cfg.ema_beta < 1:
        raise UserError(f"--ema-beta must be in [0, 1), got {cfg.ema_beta}")
    if cfg.embed_clip not in EMBED_CHOICES:
        raise UserError(f"--embed-clip must be one of {list(EMBED_CHOICES)}")
    if cfg.threads < 0:
        raise UserError("--threads must be ≥ 0")
    if cfg.max_minutes is not None:  # 0: stop (and checkpoint) after the first step
        check_float(cfg.max_minutes, "--max-minutes", nonnegative=True)
    if cfg.eval_judge not in ("auto", "none"):
        from clip_t2i import zoo

        if cfg.eval_judge not in zoo.list_zoo() and not Path(cfg.eval_judge).is_file():
            raise UserError(f"--eval-judge {cfg.eval_judge!r} is neither auto, none, a zoo judge nor a file")
    gan_cfg = get_variant(cfg.variant).with_overrides(list(cfg.overrides))
    if cfg.resolution is not None:
        gan_cfg = replace_generator(gan_cfg, resolution=cfg.resolution)
    k = gan_cfg.discriminator.group_std
    if k:
        if cfg.data not in ("shapes", "shapes2"):
            raise UserError(
                f"discriminator.group_std needs batches of same-caption groups, which only the shapes worlds make; "
                f"got --data {cfg.data!r} (set discriminator.group_std=0)"
            )
        if cfg.batch_size % k:
            raise UserError(f"--batch-size {cfg.batch_size} must be a multiple of discriminator.group_std {k}")
    return gan_cfg
