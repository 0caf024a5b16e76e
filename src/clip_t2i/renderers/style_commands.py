"""CLI command ``stylize``: text-driven style transfer (CLIPStyler) with a guiding CLIP."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from clip_t2i.cli_options import Threads


def stylize_cmd(
    image: Annotated[str, typer.Argument(help="Content image: a file, skimage:NAME, shapes:SEED or digits:N")],
    text: Annotated[str, typer.Argument(help="Style text; weights pixray-style: 'red:1 | blue:-0.5'")],
    model: Annotated[str, typer.Option("--model", "-m", help="Zoo name, .safetensors or CLIP name")] = "shapes-clipag",
    seed: Annotated[int, typer.Option(help="Seed (StyleNet init and every patch view)")] = 0,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (default 100)")] = None,
    size: Annotated[int | None, typer.Option(help="Content side, a multiple of 8 (default 128)")] = None,
    content_loss: Annotated[str | None, typer.Option(help="ssim (default) | edges | vgg | none")] = None,
    vgg_weights: Annotated[Path | None, typer.Option(help="VGG19 state dict for --content-loss vgg")] = None,
    source: Annotated[str | None, typer.Option(help="Source text of the direction (default 'a photo')")] = None,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("outputs/stylize"),
    gif: Annotated[bool, typer.Option("--gif", help="Also write the optimisation as a GIF")] = False,
    save_net: Annotated[bool, typer.Option("--save-net", help="Also write the StyleNet (.safetensors)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace files of the same names in --out (else: an error)")] = False,
    threads: Threads = 0,
) -> None:
    """Stylise IMAGE with TEXT: a per-(image, text) StyleNet optimised with directional + patch CLIP losses."""
    from clip_t2i.cli_options import set_threads
    from clip_t2i.renderers.style import stylize

    set_threads(threads)

    res = stylize(
        image,
        text,
        model=model,
        seed=seed,
        steps=steps,
        size=size,
        content_loss=content_loss,
        vgg_weights=vgg_weights,
        config={"source": source} if source is not None else None,
        out=out,
        gif=gif,
        save_net=save_net,
        overwrite=overwrite,
    )
    summary = {
        k: res.record[k]
        for k in ("file", "prompt", "seed", "model", "similarity_dir", "gif", "stylenet")
        if k in res.record
    }
    summary["out"] = str(out)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    typer.echo(f"{out / summary['file']}  direction sim {summary['similarity_dir']:.3f}  {text!r} seed {seed}")


def register(app: typer.Typer) -> None:
    """Add ``stylize`` to the ``clip-t2i`` app."""
    app.command("stylize")(stylize_cmd)
