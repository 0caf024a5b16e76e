"""Options of VQGAN training (:class:`VQGANTrainConfig`) and their validation — torch-free (the CLI reads its
defaults from here at start-up)."""

from __future__ import annotations

from dataclasses import dataclass

from clip_t2i.errors import UserError
from clip_t2i.utils.checks import check_choice, check_float, check_int
from clip_t2i.utils.config import check_finite_fields

PERCEPTUAL = ("gradient", "ssim", "none")


@dataclass(frozen=True)
class VQGANTrainConfig:
    """Every option of ``train-vqgan``; saved verbatim as ``config.json`` in the run folder."""

    data: str = "shapes"  # shapes | shapes2 | digits | image-text folder | webdataset shards
    out: str = "runs/vqgan"
    steps: int = 2000
    batch_size: int = 32  # per process
    lr: float = 3e-4  # Adam
    betas: tuple[float, float] = (0.9, 0.99)  # taming uses (0.5, 0.9) for its GAN; without one these learn faster
    resolution: int = 64  # training image side
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 2)  # 3 levels: factor 4
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = ()
    z_channels: int = 64
    embed_dim: int = 32
    n_embed: int = 256
    beta: float = 0.25  # commitment weight
    perceptual: str = "gradient"  # gradient (multi-scale image-gradient L1) | ssim (1 - SSIM) | none
    perceptual_weight: float = 1.0
    disc_weight: float = 0.0  # weight of the hinge patch-discriminator term (0 = no discriminator)
    disc_start: int = 500  # step from which the discriminator trains and its term is on
    restart_every: int = 100  # steps between dead-code restarts (0 = off)
    hflip: bool = False  # augment: mirror each training image left-right with probability 1/2
    vflip: bool = False  # augment: mirror each training image top-bottom with probability 1/2
    shift: int = 0  # augment: translate each training image by up to ±shift px (edge pixels repeated)
    seed: int = 0
    mixed_precision: str = "no"
    threads: int = 0
    num_workers: int = 0
    log_every: int = 25
    sample_every: int = 250  # steps between reconstruction grids (0 = never)
    ckpt_every: int = 500  # steps between checkpoints (0 = only at the end)
    eval_n: int = 240  # held-out renders for PSNR / codebook usage at the end
    max_minutes: float | None = None
    resume: bool = False
    progress: bool = True
    max_nonfinite_steps: int = 20

    def vqgan_config(self) -> dict:
        """The architecture as a flat :class:`~clip_t2i.renderers.vqgan.config.VQGANConfig` dict."""
        return {
            "ch": self.ch,
            "ch_mult": list(self.ch_mult),
            "num_res_blocks": self.num_res_blocks,
            "attn_resolutions": list(self.attn_resolutions),
            "z_channels": self.z_channels,
            "embed_dim": self.embed_dim,
            "n_embed": self.n_embed,
            "resolution": self.resolution,
        }


def validate(cfg: VQGANTrainConfig) -> None:
    """Reject impossible settings before any work (one-line :class:`UserError`, nothing written)."""
    from clip_t2i.renderers.vqgan.config import config_from_dict

    check_finite_fields(cfg)
    check_int(cfg.steps, "--steps", cap="steps")
    check_int(cfg.batch_size, "--batch-size", minimum=2, cap="batch")
    check_float(cfg.lr, "--lr", positive=True)
    if not all(0 <= b < 1 for b in cfg.betas):
        raise UserError(f"betas must lie in [0, 1), got {list(cfg.betas)}")
    check_int(cfg.resolution, "--resolution", minimum=8, cap="image_size")
    if cfg.n_embed < 1:
        raise UserError(f"--n-embed (codebook size) must be >= 1, got {cfg.n_embed}")
    check_float(cfg.beta, "--beta", nonnegative=True)
    check_choice(cfg.perceptual, PERCEPTUAL, "--perceptual")
    check_float(cfg.perceptual_weight, "--perceptual-weight", nonnegative=True)
    check_float(cfg.disc_weight, "--disc-weight", nonnegative=True)
    check_int(cfg.disc_start, "--disc-start", minimum=0)
    check_int(cfg.restart_every, "--restart-every", minimum=0)
    check_int(cfg.shift, "--shift", minimum=0)
    if cfg.shift >= cfg.resolution // 2:
        raise UserError(f"--shift must be below half the resolution ({cfg.resolution // 2} px), got {cfg.shift}")
    check_int(cfg.log_every, "--log-every")
    check_int(cfg.sample_every, "--sample-every", minimum=0)
    check_int(cfg.ckpt_every, "--ckpt-every", minimum=0)
    check_int(cfg.eval_n, "--eval-n")
    check_int(cfg.num_workers, "--num-workers", minimum=0)
    check_int(cfg.threads, "--threads", minimum=0)
    check_int(cfg.max_nonfinite_steps, "--max-nonfinite-steps", minimum=0)
    check_choice(cfg.mixed_precision, ("no", "bf16", "fp16"), "--mixed-precision")
    if cfg.max_minutes is not None:
        check_float(cfg.max_minutes, "--max-minutes", nonnegative=True)
    config_from_dict(cfg.vqgan_config(), "--ch/--ch-mult/... (VQGAN architecture)")
