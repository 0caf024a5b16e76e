"""Options shared by many commands, defined once (one flag, one help text, one meaning)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PRETRAINED_HELP = (
    "Weights for the command's CLIP (--model, --clip or --eval-clip), as load_clip(pretrained=): an open_clip tag "
    "or a file (official CLIPAG .pt, open_clip checkpoint, state dict)"
)
IMAGE_TOWER_HELP = "A file replacing only the image tower (FARE / RobustVLM vision state dict, TeCoA checkpoint)"
THREADS_HELP = "CPU threads: 0 = auto (1 when the machine is busy, else all cores)"

Pretrained = Annotated[str | None, typer.Option("--pretrained", help=PRETRAINED_HELP)]
ImageTower = Annotated[Path | None, typer.Option("--image-tower", help=IMAGE_TOWER_HELP)]
Threads = Annotated[int, typer.Option("--threads", help=THREADS_HELP)]


def set_threads(threads: int) -> int:
    """Apply ``--threads`` (0 = auto) and return the thread count used."""
    from clip_t2i.training.common import auto_threads
    from clip_t2i.utils.checks import check_int

    check_int(threads, "--threads", minimum=0)
    return auto_threads(threads)


def path_or_none(p: Path | None) -> str | None:
    """``str(p)`` or None."""
    return None if p is None else str(p)
