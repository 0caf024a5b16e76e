"""Machinery shared by every training loop: accelerate set-up, schedules, run folders, NaN guard."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from clip_t2i.errors import UserError
from clip_t2i.utils.io import atomic_write_text


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """LR multiplier: linear warm-up to 1 over ``warmup_steps``, then cosine decay to ``min_ratio``."""

    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return fn


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups over trainable parameters: decay on matrices, none on gains, biases, embeddings, scales."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "embedding" in name or "logit_scale" in name or "ln" in name or "bn" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def auto_threads(threads: int | None = None) -> int:
    """Set and return torch's intra-op threads: ``threads`` if given, else 1 on a busy machine, else all cores.

    On a shared CPU, OpenMP barriers across cores stall whenever another process holds one of them (seen
    here: a 2-thread training step 10× slower than a 1-thread one under load), so a machine whose 1-minute
    load average exceeds half its cores gets one thread.
    """
    import os

    if threads is None or threads < 1:
        cores = os.cpu_count() or 1
        busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * cores
        threads = 1 if busy or "OMP_NUM_THREADS" in os.environ and os.environ["OMP_NUM_THREADS"] == "1" else cores
    torch.set_num_threads(threads)
    return threads


def make_accelerator(run_dir: Path, grad_accum: int, mixed_precision: str, tensorboard: bool = True):
    """An ``accelerate.Accelerator`` logging to TensorBoard under ``run_dir``."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    if mixed_precision not in ("no", "fp16", "bf16"):
        raise UserError(f"--mixed-precision must be no, fp16 or bf16, not {mixed_precision!r}")
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise UserError("--mixed-precision fp16 needs a GPU; use bf16 on CPU")
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # several CPU processes then use gloo (e.g. accelerate launch --multi_gpu)
        gradient_accumulation_steps=grad_accum,
        mixed_precision=mixed_precision,
        log_with="tensorboard" if tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )


def save_run_config(run_dir: Path, cfg: Any) -> None:
    """Write the resolved config as ``config.json`` before training starts."""
    data = asdict(cfg) if is_dataclass(cfg) else dict(cfg)
    atomic_write_text(run_dir / "config.json", json.dumps(data, indent=2, default=str) + "\n")


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse a run folder that is a file or not writable, and refuse to silently mix a new run into an old one."""
    from clip_t2i.utils.paths import check_writable_dir

    check_writable_dir(Path(run_dir), "--out")
    if not resume and (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").glob("step_*")):
        raise UserError(f"{run_dir} already holds checkpoints; pass --resume to continue or choose another --out")


def run_logger(path: Path, enabled: bool = True) -> Callable[[str], None]:
    """``log(line)`` appending one line to the run log ``path``; a no-op where not ``enabled`` (non-main ranks)."""

    def log(msg: str) -> None:
        if enabled:
            with open(path, "a") as f:
                f.write(msg + "\n")

    return log


def finite_or_skip(loss: torch.Tensor, step: int, log) -> bool:
    """True if the loss is finite; otherwise log the skipped step and return False."""
    if torch.isfinite(loss).all():
        return True
    log(f"step {step}: non-finite loss ({loss.item()}), step skipped")
    return False


DEFAULT_MAX_NONFINITE_STEPS = 20  # consecutive skipped steps after which a run is declared diverged


class TrainingDiverged(UserError):
    """Raised when too many consecutive steps had a non-finite loss; nothing final is written."""


class NonFiniteGuard:
    """Counts skipped (non-finite) steps; after ``limit`` in a row the run stops with :class:`TrainingDiverged`.

    A lone NaN step (a bad batch, an fp16 overflow) is skipped and logged; a run whose every step is
    non-finite (``--lr inf``, weights already NaN) is stopped after ``limit`` steps instead of "finishing" and
    saving NaN weights. ``limit = 0`` disables the stop (skips are still counted).
    """

    def __init__(self, limit: int = DEFAULT_MAX_NONFINITE_STEPS, flag: str = "--max-nonfinite-steps") -> None:
        self.limit = limit
        self.flag = flag
        self.consecutive = 0
        self.total = 0

    def update(self, finite: bool, step: int) -> bool:
        """Record one step (``finite`` or skipped); returns ``finite``; raises once the limit is reached."""
        if finite:
            self.consecutive = 0
            return True
        self.consecutive += 1
        self.total += 1
        if self.limit and self.consecutive >= self.limit:
            raise TrainingDiverged(
                f"training diverged: {self.consecutive} consecutive steps had a non-finite loss (up to step {step}); "
                f"no final model was written (earlier checkpoints, if any, are kept); lower the learning rate "
                f"(or raise {self.flag})"
            )
        return False

    def record(self, finite: bool, step: int, log: Callable[[str], None], bar: Any = None, skipped: Any = None) -> bool:
        """:meth:`update` for a training loop: on divergence close the progress ``bar`` and log one
        ``{"diverged": true, "step", "skipped"}`` line (``skipped`` defaults to :attr:`total`) before raising."""
        try:
            return self.update(finite, step)
        except TrainingDiverged:
            if bar is not None:
                bar.close()
            log(json.dumps({"diverged": True, "step": step, "skipped": self.total if skipped is None else skipped}))
            raise


class Interrupted(UserError):
    """Ctrl-C during training: the step in progress finished, a checkpoint was written; exit code 130."""

    exit_code = 130


class StopOnInterrupt:
    """Context manager: the first Ctrl-C only sets :attr:`requested` (the loop finishes its step, checkpoints and
    stops); a second one interrupts at once. Outside the main thread (or outside the block) Ctrl-C is unchanged."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        import sys

        sys.stderr.write("\nCtrl-C: stopping after this step and writing a checkpoint (Ctrl-C again to abort)\n")

    def __enter__(self) -> StopOnInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


def interrupted_message(step: int, total: int, run_dir: Path, command: str) -> str:
    """The one line printed when a run stops on Ctrl-C: where it stopped and how to continue."""
    return (
        f"interrupted at step {step} of {total}; checkpoint written to {run_dir}/checkpoints; "
        f"continue with: clip-t2i {command} --out {run_dir} --resume"
    )


def loop_should_end(stop: StopOnInterrupt, timer: Timer, step: int, log: Callable[[str], None]) -> bool:
    """True when a training loop must end after this step: Ctrl-C was pressed, or the time budget is spent."""
    if stop.requested:
        return True
    if timer.expired:
        log(f"time budget of {timer.minutes} min reached at step {step}")
        return True
    return False


def raise_if_interrupted(
    stop: StopOnInterrupt, step: int, total: int, run_dir: Path, command: str, log: Callable[[str], None]
) -> None:
    """After the final checkpoint of a loop that Ctrl-C ended: log it and raise :class:`Interrupted`."""
    if stop.requested:
        log(json.dumps({"interrupted": True, "step": step}))
        raise Interrupted(interrupted_message(step, total, run_dir, command))


class Timer:
    """Wall-clock budget: ``expired`` once ``minutes`` have passed (None = never)."""

    def __init__(self, minutes: float | None) -> None:
        self.start = time.time()
        self.minutes = minutes

    @property
    def elapsed_s(self) -> float:
        return time.time() - self.start

    @property
    def expired(self) -> bool:
        return self.minutes is not None and self.elapsed_s > self.minutes * 60
