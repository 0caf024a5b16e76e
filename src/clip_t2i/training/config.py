"""Options of CLIP training (:class:`ClipTrainConfig`) and their validation — torch-free, so the CLI takes its
defaults from here without importing the training code."""

from __future__ import annotations

from dataclasses import dataclass, field

from clip_t2i.errors import UserError
from clip_t2i.utils.checks import check_choice, check_float, check_int
from clip_t2i.utils.config import check_finite_fields


@dataclass(frozen=True)
class ClipTrainConfig:
    """Every option of CLIP training; saved verbatim as ``config.json`` in the run folder."""

    data: str = "shapes"  # shapes | shapes2 | digits | image-text folder | webdataset shards
    model: str = "vit-t64"  # project config, zoo name or clip-t2i .safetensors to start from
    pretrained: str | None = None  # load_clip(model, pretrained=): an open_clip tag or a weights file
    image_tower: str | None = None  # load_clip(..., image_tower=): a file replacing the image tower only
    out: str = "runs/clip"  # run folder (checkpoints/, logs/, config.json, final.safetensors)
    steps: int = 800  # optimizer steps
    batch_size: int = 256  # per process and per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 0.1  # AdamW decoupled weight decay (not on gains, biases, embeddings)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 80  # linear warm-up, then cosine to 0
    mixed_precision: str = "no"  # no | bf16 | fp16 (GPU)
    positives: str = "label"  # label: same ground-truth label = positive (if any); caption: same text
    seed: int = 0
    num_workers: int = 0  # dataloader workers per process
    log_every: int = 25  # steps between TensorBoard scalars / progress updates
    ckpt_every: int = 500  # steps between checkpoints (0: only at the end)
    eval_every: int = 0  # steps between quick zero-shot evaluations (0: never)
    max_minutes: float | None = None  # wall-clock budget; stops (and checkpoints) when exceeded
    resume: bool = False  # continue from the run folder's latest checkpoint
    record_samples: bool = False  # write per-rank sample hashes (tests of data splitting)
    progress: bool = True
    threads: int = 0  # torch CPU threads; 0 = auto (1 on a busy machine, else all cores)
    max_nonfinite_steps: int = 20  # consecutive non-finite steps after which the run stops (0: never)
    extra: dict = field(default_factory=dict)


def validate(cfg: ClipTrainConfig) -> None:
    """Reject impossible settings before any work (one-line :class:`UserError`, nothing written)."""
    check_finite_fields(cfg)
    check_int(cfg.steps, "--steps", cap="steps")
    check_int(cfg.batch_size, "--batch-size", minimum=2, cap="batch")
    check_int(cfg.grad_accum, "--grad-accum")
    check_float(cfg.lr, "--lr", positive=True)
    check_float(cfg.weight_decay, "--weight-decay", nonnegative=True)
    check_int(cfg.warmup_steps, "--warmup-steps", minimum=0)
    check_int(cfg.log_every, "--log-every")
    check_int(cfg.ckpt_every, "--ckpt-every", minimum=0)
    check_int(cfg.eval_every, "--eval-every", minimum=0)
    check_int(cfg.num_workers, "--num-workers", minimum=0)
    check_int(cfg.threads, "--threads", minimum=0)
    check_int(cfg.max_nonfinite_steps, "--max-nonfinite-steps", minimum=0)
    check_choice(cfg.mixed_precision, ("no", "bf16", "fp16"), "--mixed-precision")
    check_choice(cfg.positives, ("label", "caption"), "--positives")
    if cfg.max_minutes is not None:
        check_float(cfg.max_minutes, "--max-minutes", nonnegative=True)  # 0: stop after the first step
    if not all(0 <= b < 1 for b in cfg.betas):
        raise UserError(f"betas must lie in [0, 1), got {cfg.betas}")
