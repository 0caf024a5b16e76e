"""Options of robust fine-tuning (:class:`RobustTrainConfig`) and their validation — torch-free, so the CLI
takes its defaults from here without importing the training code."""

from __future__ import annotations

import math
from dataclasses import dataclass

from clip_t2i.errors import UserError
from clip_t2i.utils.checks import check_choice, check_float, check_int
from clip_t2i.utils.config import check_finite_fields

OBJECTIVE_NAMES: tuple[str, ...] = ("clipag", "tecoa", "fare")
EPS_REFERENCE_SIZE = 224
ATTACK_MODES: tuple[str, ...] = ("pgd", "fast", "free", "none")
NORMS: tuple[str, ...] = ("l2", "linf")
LABELLED_DATA: tuple[str, ...] = ("shapes", "shapes2", "digits")


def effective_eps(eps: float, size: int | tuple[int, int], norm: str = "l2") -> float:
    """The radius used at resolution ``size``: ``ε · √(H·W / 224²)`` for L2, ``ε`` for Linf."""
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    if norm == "linf":
        return float(eps)
    h, w = (size, size) if isinstance(size, int) else size
    return float(eps) * math.sqrt(h * w / EPS_REFERENCE_SIZE**2)


@dataclass(frozen=True)
class RobustTrainConfig:
    """Every option of robust fine-tuning; saved verbatim as ``config.json`` in the run folder."""

    data: str = "shapes"  # shapes | shapes2 | digits | image-text folder | webdataset shards
    model: str = "shapes-clip"  # zoo name, clip-t2i .safetensors or project config to start from
    pretrained: str | None = None  # load_clip(model, pretrained=): an open_clip tag or a weights file
    image_tower: str | None = None  # load_clip(..., image_tower=): a file replacing the image tower only
    out: str = "runs/robust"  # run folder (checkpoints/, logs/, config.json, final.safetensors)
    objective: str = "clipag"  # clipag | tecoa | fare
    attack: str = "pgd"  # pgd | fast | free | none
    norm: str = "l2"  # l2 | linf
    eps: float = 1.5  # L2: radius at 224x224 (rescaled, see effective_eps); Linf: per pixel in [0, 1]
    attack_steps: int = 3  # PGD-k iterations (attack=pgd)
    step_size: float | None = None  # attack step in units of ε (default: pgd 2.5/k, fast 1.25, free 1.0)
    free_replays: int = 4  # m: optimizer steps per minibatch (attack=free)
    clean_weight: float = 0.0  # w_clean: weight of the same objective on the clean images (0: adversarial only)
    align_weight: float = 0.0  # λ_align: gradient-alignment term (robust/alignment.py; 0: off)
    align_edit_prob: float = 0.3  # share of alignment sources that are another batch image (else a neutral start)
    align_t_power: float = 1.0  # t = U(0, 1)^p on the line from the source to the image (p > 1: nearer the source)
    eps_warmup_steps: int = 0  # ε grows linearly from 0 to ε over these steps
    steps: int = 500  # optimizer steps
    batch_size: int = 128  # per process and per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 2e-5  # peak AdamW learning rate (paper default; tiny models want more, see README)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay (not on gains, biases, embeddings)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 50  # linear lr warm-up, then cosine to 0
    grad_clip: float = 1.0  # max global gradient norm (0: off)
    mixed_precision: str = "no"  # no | bf16 | fp16 (GPU)
    positives: str = "label"  # clipag: label = same ground-truth label is a positive; caption = same text
    seed: int = 0
    num_workers: int = 0
    log_every: int = 25
    ckpt_every: int = 250  # steps between checkpoints (0: only at the end)
    eval_every: int = 0  # steps between quick clean/robust zero-shot evaluations (0: never)
    max_minutes: float | None = None  # wall-clock budget; stops (and checkpoints) when exceeded
    resume: bool = False
    export_clipag: str | None = None  # also write the official CLIPAG layout ({'state_dict': module.*}) here
    progress: bool = True
    threads: int = 0  # torch CPU threads; 0 = auto (1 on a busy machine, else all cores)
    max_nonfinite_steps: int = 20  # consecutive non-finite steps after which the run stops (0: never)


def validate(cfg: RobustTrainConfig) -> None:
    """Reject impossible settings before any work (one-line :class:`UserError`)."""
    check_finite_fields(cfg)
    check_int(cfg.steps, "--steps", cap="steps")
    check_int(cfg.batch_size, "--batch-size", minimum=2, cap="batch")
    check_float(cfg.lr, "--lr", positive=True)
    check_float(cfg.weight_decay, "--weight-decay", nonnegative=True)
    check_float(cfg.grad_clip, "--grad-clip", nonnegative=True)
    check_int(cfg.warmup_steps, "--warmup-steps", minimum=0)
    check_int(cfg.ckpt_every, "--ckpt-every", minimum=0)
    check_int(cfg.eval_every, "--eval-every", minimum=0)
    check_int(cfg.log_every, "--log-every")
    check_int(cfg.max_nonfinite_steps, "--max-nonfinite-steps", minimum=0)
    check_int(cfg.threads, "--threads", minimum=0)
    check_choice(cfg.mixed_precision, ("no", "bf16", "fp16"), "--mixed-precision")
    if cfg.max_minutes is not None:
        check_float(cfg.max_minutes, "--max-minutes", nonnegative=True)  # 0: stop after the first step
    if cfg.export_clipag is not None:
        from pathlib import Path

        target = Path(cfg.export_clipag)
        if target.is_dir():
            raise UserError(f"--export-clipag {target} is a folder; give a file path such as {target / 'clipag.pt'}")
        if target.exists() and not cfg.resume:
            raise UserError(f"--export-clipag {target} already exists; choose another path (it is never overwritten)")
    _validate_attack(cfg)


def _validate_attack(cfg: RobustTrainConfig) -> None:
    """The objective / attack part of :func:`validate`."""
    if cfg.objective not in OBJECTIVE_NAMES:
        raise UserError(f"unknown objective {cfg.objective!r}; use one of {', '.join(OBJECTIVE_NAMES)}")
    if cfg.attack not in ATTACK_MODES:
        raise UserError(f"unknown attack {cfg.attack!r}; use one of {', '.join(ATTACK_MODES)}")
    if cfg.norm not in NORMS:
        raise UserError(f"unknown norm {cfg.norm!r}; use one of {', '.join(NORMS)}")
    if not math.isfinite(cfg.eps) or cfg.eps <= 0:
        raise UserError(f"--eps must be > 0, got {cfg.eps}")
    if cfg.attack_steps < 1:
        raise UserError(f"--attack-steps must be ≥ 1, got {cfg.attack_steps}")
    if cfg.step_size is not None and (not math.isfinite(cfg.step_size) or cfg.step_size <= 0):
        raise UserError(f"--step-size must be > 0 (in units of ε), got {cfg.step_size}")
    if cfg.free_replays < 1:
        raise UserError(f"--free-replays must be ≥ 1, got {cfg.free_replays}")
    if cfg.clean_weight < 0 or not math.isfinite(cfg.clean_weight):
        raise UserError(f"--clean-weight must be ≥ 0, got {cfg.clean_weight}")
    if cfg.align_weight < 0:
        raise UserError(f"--align-weight must be ≥ 0, got {cfg.align_weight}")
    if not 0 <= cfg.align_edit_prob <= 1:
        raise UserError(f"--align-edit-prob must lie in [0, 1], got {cfg.align_edit_prob}")
    if cfg.align_t_power <= 0:
        raise UserError(f"--align-t-power must be > 0, got {cfg.align_t_power}")
    if cfg.eps_warmup_steps < 0:
        raise UserError("--eps-warmup-steps must be ≥ 0")
    if cfg.steps < 1:
        raise UserError(f"--steps must be ≥ 1, got {cfg.steps}")
    if cfg.batch_size < 2:
        raise UserError("--batch-size must be ≥ 2")
    if cfg.grad_accum < 1:
        raise UserError("--grad-accum must be ≥ 1")
    if not cfg.lr > 0:
        raise UserError("--lr must be > 0")
    if cfg.positives not in ("label", "caption"):
        raise UserError("--positives must be 'label' or 'caption'")
    if cfg.objective == "tecoa" and cfg.data not in LABELLED_DATA:
        raise UserError(f"objective tecoa needs class prompts: use --data {', '.join(LABELLED_DATA)}")
