"""Training checkpoints: a folder per step, written atomically, resumable exactly.

Layout of ``<run>/checkpoints/step_000500/``: ``model.safetensors`` (self-describing, loadable by
``load_clip``) and ``state.pt`` (optimizer, scheduler, step, RNG state: tensors and plain Python only, so it
is read back with ``torch.load(weights_only=True)``). ``<run>/checkpoints/latest`` names the newest folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from clip_t2i.errors import UserError
from clip_t2i.utils.io import atomic_write_text


def save_checkpoint(run_dir: str | Path, step: int, write_model, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``step_{step}`` atomically; ``write_model(path)`` writes the model file; prune to ``keep`` newest."""
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp_step_", dir=ckpt_root))
    try:
        write_model(tmp / "model.safetensors")
        torch.save(state, tmp / "state.pt")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(ckpt_root / "latest", final.name + "\n")
    steps = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint_on_main(
    accelerator: Any, run_dir: str | Path, step: int, write_model, make_state: Callable[[], dict[str, Any]]
) -> None:
    """Data-parallel :func:`save_checkpoint`: all processes meet, the main one builds the state and writes, all meet
    again (so nobody reads or prunes a half-written step)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_checkpoint(run_dir, step, write_model, make_state())
    accelerator.wait_for_everyone()


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    ckpt_root = Path(run_dir) / "checkpoints"
    pointer = ckpt_root / "latest"
    if pointer.is_file():
        cand = ckpt_root / pointer.read_text().strip()
        if (cand / "state.pt").is_file():
            return cand
    steps = sorted(p for p in ckpt_root.glob("step_*") if (p / "state.pt").is_file())
    return steps[-1] if steps else None


def resume_checkpoint(run_dir: str | Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from: None without ``resume``; with it, the newest complete checkpoint, or a
    one-line :class:`UserError` when there is none."""
    if not resume:
        return None
    found = latest_checkpoint(run_dir)
    if found is None:
        raise UserError(f"--resume: no checkpoint found in {run_dir}/checkpoints")
    return found


def load_state(ckpt: Path) -> dict[str, Any]:
    """Read ``state.pt`` without unpickling arbitrary objects.

    A file that holds anything but tensors and plain Python (a foreign or tampered pickle) is refused; the
    message deliberately does not pass on torch's advice to retry with ``weights_only=False``, which would run
    whatever code the pickle carries.
    """
    import warnings

    path = ckpt / "state.pt"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols before refusing them
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - corrupt, truncated or foreign: all refused the same way
        raise UserError(
            f"cannot resume from {ckpt}: state.pt is not a clip-t2i training state (truncated, corrupt, or holding "
            "objects other than tensors and plain Python) and was refused unread, since loading it otherwise could "
            "run code; start a new run or restore the file"
        ) from None
