"""The ``clip-t2i`` command line: a thin layer that parses, validates and calls the public API."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from clip_t2i.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Text-to-image with CLIP alone (robust CLIP) or a small CLIP-aided GAN.",
)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=None, default=float) + "\n")


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """List zoo models, project architectures and open_clip architectures."""
    import open_clip

    from clip_t2i import zoo
    from clip_t2i.backbones import list_models

    out = {"zoo": zoo.list_zoo(), "configs": list_models(), "open_clip": open_clip.list_models()}
    if as_json:
        _print_json(out)
        return
    for key, names in out.items():
        typer.echo(f"{key}: {', '.join(names) if key != 'open_clip' else f'{len(names)} architectures'}")


@app.command("train-clip")
def train_clip_cmd(
    data: Annotated[str, typer.Option(help="shapes | shapes2 | digits | image-text folder | shard pattern")] = "shapes",
    model: Annotated[str, typer.Option(help="Architecture config, zoo name or .safetensors to start from")] = "vit-t64",
    out: Annotated[Path, typer.Option(help="Run folder")] = Path("runs/clip"),
    steps: Annotated[int, typer.Option(help="Optimizer steps")] = 800,
    batch_size: Annotated[int, typer.Option(help="Batch per process and micro-batch")] = 256,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per step")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate")] = 2e-3,
    weight_decay: Annotated[float, typer.Option()] = 0.1,
    warmup_steps: Annotated[int, typer.Option()] = 80,
    mixed_precision: Annotated[str, typer.Option(help="no | bf16 | fp16")] = "no",
    positives: Annotated[str, typer.Option(help="label | caption: what makes two items a positive pair")] = "label",
    seed: Annotated[int, typer.Option()] = 0,
    num_workers: Annotated[int, typer.Option()] = 0,
    ckpt_every: Annotated[int, typer.Option()] = 500,
    eval_every: Annotated[int, typer.Option()] = 0,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = False,
    record_samples: Annotated[bool, typer.Option(hidden=True)] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
    threads: Annotated[int, typer.Option(help="CPU threads (0: auto, 1 when the machine is busy)")] = 0,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved config and exit")] = False,
) -> None:
    """Train a CLIP contrastively (use ``accelerate launch`` for several processes)."""
    from dataclasses import asdict

    from clip_t2i.training.clip_train import ClipTrainConfig, train_clip, validate

    cfg = ClipTrainConfig(
        data=data, model=model, out=str(out), steps=steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        weight_decay=weight_decay, warmup_steps=warmup_steps, mixed_precision=mixed_precision, positives=positives,
        seed=seed, num_workers=num_workers, ckpt_every=ckpt_every, eval_every=eval_every, max_minutes=max_minutes,
        resume=resume, record_samples=record_samples, progress=progress, threads=threads,
    )
    validate(cfg)
    if dry_run:
        _print_json(asdict(cfg))
        return
    final = train_clip(cfg)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"saved {final}")


@app.command("eval-clip")
def eval_clip_cmd(
    model: Annotated[str, typer.Option(help="Zoo name, .safetensors, config or open_clip name")] = "shapes-clip",
    pretrained: Annotated[str | None, typer.Option(help="open_clip tag or weights file")] = None,
    data: Annotated[str, typer.Option(help="Comma list of shapes, shapes2, digits, or auto")] = "auto",
    n: Annotated[int, typer.Option(help="Images per shapes split")] = 1000,
    seed: Annotated[int, typer.Option()] = 1234,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Zero-shot accuracy (per attribute, exact caption; seen/held-out) and retrieval R@1/R@5."""
    from clip_t2i.backbones import load_clip
    from clip_t2i.metrics.zeroshot import evaluate_clip

    if n < 1:
        raise UserError("--n must be ≥ 1")
    clip = load_clip(model, pretrained)
    if data == "auto":
        trained_on = clip.config.get("train_data", "shapes")
        names = ["digits"] if trained_on == "digits" else ["shapes2"] if trained_on == "shapes2" else ["shapes"]
    else:
        names = [d.strip() for d in data.split(",") if d.strip()]
    result = {"model": model, **evaluate_clip(clip, names, n=n, seed=seed)}
    if as_json:
        _print_json(result)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"zero-shot: {model}")
    table.add_column("data")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for dname, res in result.items():
        if dname == "model":
            continue
        for k, v in res.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    table.add_row(dname, f"{k}.{k2}", f"{v2:.4f}" if k2 != "n" else f"{int(v2)}")
            else:
                table.add_row(dname, k, f"{v:.4f}" if k != "n" else f"{int(v)}")
    Console().print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("outputs/demo"),
    model: Annotated[str, typer.Option(help="CLIP that guides the drawing (zoo name or file)")] = "shapes-clipag",
    threads: Annotated[int, typer.Option(help="torch threads (0 = default)")] = 0,
) -> None:
    """Draw a grid of shapes prompts with the bundled robust CLIP (no generator network) and say where it is."""
    import shutil
    import time

    import torch

    from clip_t2i.pipeline import DEMO_PROMPTS, demo_grid

    if threads > 0:
        torch.set_num_threads(threads)
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out} exists and is not a folder")
        shutil.rmtree(out)
    t0 = time.time()
    grid = demo_grid(model, out=out, progress=True)
    typer.echo(f"{len(DEMO_PROMPTS)} prompts drawn with {model} in {time.time() - t0:.0f} s")
    typer.echo(f"grid: {grid}\nimages (prompt, seed, settings in PNG text chunks + JSON sidecars): {out}/")


# Commands of other packages live beside their code; each module exposes ``register(app)``.
_COMMAND_MODULES = ("clip_t2i.robust.commands", "clip_t2i.renderers.commands", "clip_t2i.gan.commands",
                    "clip_t2i.metrics.commands")


def _register_command_modules() -> None:
    import importlib
    import importlib.util

    for name in _COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(app)


_register_command_modules()


def main() -> None:
    """Entry point: run the app; a ``UserError`` becomes one line on stderr and exit code 2."""
    try:
        app()
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
