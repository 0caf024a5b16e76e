"""Run the ``clip-t2i`` entry point in-process (the same ``main`` the console script calls).

A subprocess per call pays the torch + open_clip import (3-8 s on a shared 2-core machine); in-process calls
share it, so CLI tests stay fast. The result mimics :class:`subprocess.CompletedProcess`.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None) -> Result:
    """``clip-t2i ARGS`` in this process; exit code, stdout and stderr captured."""
    from clip_t2i import cli

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())
