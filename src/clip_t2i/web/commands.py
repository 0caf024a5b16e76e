"""CLI command ``serve``: the web UI. Gradio is imported inside the command, after the flags are checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from clip_t2i.cli_options import Threads
from clip_t2i.errors import UserError

WEB_EXTRA = "pip install 'clip-t2i[web]'"


def check_port(host: str, port: int) -> None:
    """``port`` is a TCP port number that ``host`` can bind now (one-line errors otherwise)."""
    import socket

    from clip_t2i.utils.checks import check_int

    check_int(port, "--port", minimum=1)
    if port > 65535:
        raise UserError(f"--port must be <= 65535, got {port}")
    if not host.strip():
        raise UserError("--host must be an address, e.g. 127.0.0.1")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UserError(f"--host {host!r} is not an address this machine knows") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None


def require_gradio() -> None:
    """Gradio is installed, else a one-line error naming the extra."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise UserError(f"the web UI needs Gradio: {WEB_EXTRA}")


def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 7860,
    out: Annotated[Path, typer.Option(help="Output folder: every request writes a new sub-folder here")] = Path(
        "outputs/web"
    ),
    max_steps: Annotated[int, typer.Option(help="Per-request cap on optimiser steps")] = 200,
    max_size: Annotated[int, typer.Option(help="Per-request cap on the image side (px)")] = 256,
    max_images: Annotated[int, typer.Option(help="Per-request cap on images (seeds)")] = 4,
    max_upload_mb: Annotated[float, typer.Option(help="Cap on an uploaded content image (MB)")] = 5.0,
    concurrency: Annotated[int, typer.Option(help="Requests generating at the same time")] = 1,
    max_queue: Annotated[int, typer.Option(help="Requests waiting at most; more are refused with a message")] = 16,
    threads: Threads = 0,
) -> None:
    """Start the web UI: every renderer and the GAN, live progress, a gallery with metadata and downloads, and a
    vanilla-vs-robust compare view."""
    from clip_t2i.cli_options import set_threads
    from clip_t2i.utils.paths import check_writable_dir
    from clip_t2i.web.jobs import ServeLimits

    limits = ServeLimits(max_steps, max_size, max_images, max_upload_mb, concurrency, max_queue).validate()
    check_writable_dir(out)
    check_port(host, port)
    require_gradio()
    set_threads(threads)
    import uvicorn

    from clip_t2i.web.app import build_server

    app, state = build_server(out, limits, cache_dir=os.environ.get("GRADIO_TEMP_DIR"))
    typer.echo(f"clip-t2i web UI on http://{host}:{port}/  (outputs in {state.folders.root}/; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``clip-t2i`` app."""
    app.command("serve")(serve_cmd)
