"""Output folders: checked before any work, and never a file overwritten that this run did not write.

Commands that write images or reports into a folder compute the names they will write first
(:func:`refuse_existing`); if any exists they stop with a one-line error naming ``--overwrite``. Nothing is
ever deleted.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from clip_t2i.errors import UserError


def check_writable_dir(out: Path, flag: str = "--out") -> None:
    """``out`` is a folder (or can be created) that this process can write into."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} exists and is not a folder; choose a folder path")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out} is not writable; choose another folder")
    try:  # permissions alone do not tell (root, read-only mounts, /proc): try a temporary file
        fd, tmp = tempfile.mkstemp(prefix=".clip-t2i-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UserError(f"{flag} {out} is not writable ({e.strerror}); choose another folder") from None


def refuse_existing(out: Path, names: Iterable[str], overwrite: bool = False, flag: str = "--out") -> None:
    """Stop before any work if a file this run would write already exists in ``out`` (unless ``overwrite``)."""
    if overwrite:
        return
    out = Path(out)
    clash = sorted(n for n in dict.fromkeys(names) if (out / n).exists())
    if clash:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        raise UserError(
            f"{flag} {out} already holds {clash[0]}{more}; choose another folder or pass --overwrite to replace them"
        )
