"""The ``clip-t2i`` command line: a thin layer that parses, validates and calls the public API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from clip_t2i.cli_options import (
    ImageTower,
    Pretrained,
    Threads,
    config_from_params,
    path_or_none,
    resume_config,
    set_threads,
)
from clip_t2i.errors import UserError
from clip_t2i.renderers.presets import DEFAULT_PRESET
from clip_t2i.training.config import ClipTrainConfig as _CLIP

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Text-to-image with CLIP alone (robust CLIP) or a small CLIP-aided GAN.",
)


def _print_json(obj) -> None:
    from clip_t2i.utils.jsonout import print_json

    print_json(obj)


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
    ctx: typer.Context,
    data: Annotated[
        str, typer.Option(help="shapes | shapes2 | digits | image-text folder | shard pattern")
    ] = _CLIP.data,
    model: Annotated[
        str, typer.Option(help="Architecture config, zoo name or .safetensors to start from")
    ] = _CLIP.model,
    pretrained: Pretrained = _CLIP.pretrained,
    image_tower: ImageTower = None,
    out: Annotated[Path, typer.Option(help="Run folder")] = Path(_CLIP.out),
    steps: Annotated[int, typer.Option(help="Optimizer steps")] = _CLIP.steps,
    batch_size: Annotated[int, typer.Option(help="Batch per process and micro-batch")] = _CLIP.batch_size,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per step")] = _CLIP.grad_accum,
    lr: Annotated[float, typer.Option(help="Peak learning rate")] = _CLIP.lr,
    weight_decay: Annotated[float, typer.Option()] = _CLIP.weight_decay,
    warmup_steps: Annotated[int, typer.Option()] = _CLIP.warmup_steps,
    mixed_precision: Annotated[str, typer.Option(help="no | bf16 | fp16")] = _CLIP.mixed_precision,
    positives: Annotated[
        str, typer.Option(help="label | caption: what makes two items a positive pair")
    ] = _CLIP.positives,
    seed: Annotated[int, typer.Option()] = _CLIP.seed,
    num_workers: Annotated[int, typer.Option()] = _CLIP.num_workers,
    ckpt_every: Annotated[int, typer.Option()] = _CLIP.ckpt_every,
    eval_every: Annotated[int, typer.Option()] = _CLIP.eval_every,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = _CLIP.resume,
    record_samples: Annotated[bool, typer.Option(hidden=True)] = _CLIP.record_samples,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = _CLIP.progress,
    threads: Threads = _CLIP.threads,
    max_nonfinite_steps: Annotated[
        int, typer.Option(help="Stop after this many consecutive non-finite steps (0: never)")
    ] = _CLIP.max_nonfinite_steps,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved config and exit")] = False,
) -> None:
    """Train a CLIP contrastively (use ``accelerate launch`` for several processes)."""
    from dataclasses import asdict

    from clip_t2i.training.clip_train import train_clip
    from clip_t2i.training.config import ClipTrainConfig, validate

    cfg = config_from_params(ctx, ClipTrainConfig)
    cfg = resume_config(ctx, cfg)
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
    pretrained: Pretrained = None,
    image_tower: ImageTower = None,
    data: Annotated[str, typer.Option(help="Comma list of shapes, shapes2, digits, or auto")] = "auto",
    n: Annotated[int, typer.Option(help="Images per shapes split")] = 1000,
    seed: Annotated[int, typer.Option()] = 1234,
    threads: Threads = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Zero-shot accuracy (per attribute, exact caption; seen/held-out) and retrieval R@1/R@5."""
    from clip_t2i.backbones import load_clip
    from clip_t2i.metrics.zeroshot import evaluate_clip

    if n < 1:
        raise UserError("--n must be ≥ 1")
    set_threads(threads)
    clip = load_clip(model, pretrained, image_tower=path_or_none(image_tower))
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
    world: Annotated[str, typer.Option(help="digits (default: the gradients draw digits) | shapes")] = "digits",
    model: Annotated[
        str | None,
        typer.Option(help="CLIP that guides the drawing (zoo name or file; default: the world's robust one)"),
    ] = None,
    pretrained: Pretrained = None,
    image_tower: ImageTower = None,
    threads: Threads = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace the demo's own files if --out already holds them")] = False,
    compare: Annotated[
        str | None,
        typer.Option(help="CLIP drawn side by side ('none': only --model; default: the world's vanilla one)"),
    ] = None,
    preset: Annotated[
        str, typer.Option(help="draw: dark-grey start, shapes from the gradients; retrieval: a CLIP-picked start")
    ] = DEFAULT_PRESET,
) -> None:
    """Draw prompts with the bundled robust CLIP and, side by side, the vanilla one (no generator network), from the
    same neutral grey start; say where the labelled grid is."""
    import time

    from clip_t2i.pipeline import DEMO_WORLDS, demo_grid, load_guide
    from clip_t2i.utils.checks import check_choice

    check_choice(world, tuple(DEMO_WORLDS), "--world")
    robust, vanilla, prompts = DEMO_WORLDS[world]
    model = model or robust
    compare = compare or vanilla
    set_threads(threads)
    t0 = time.time()
    guide = model if pretrained is None and image_tower is None else load_guide(model, "cpu", pretrained, image_tower)
    grid = demo_grid(
        guide,
        out=out,
        progress=True,
        overwrite=overwrite,
        prompts=prompts,
        preset=preset,
        compare=None if compare == "none" else compare,
    )
    with_ = f"{model} and {compare}" if compare != "none" else model
    typer.echo(f"{len(prompts)} prompts drawn with {with_} (preset {preset}) in {time.time() - t0:.0f} s")
    typer.echo(f"grid: {grid}\nimages (prompt, seed, settings in PNG text chunks + JSON sidecars): {out}/")


# Commands of other packages live beside their code; each module exposes ``register(app)``.
_COMMAND_MODULES = (
    "clip_t2i.robust.commands",
    "clip_t2i.renderers.commands",
    "clip_t2i.gan.commands",
    "clip_t2i.metrics.commands",
    "clip_t2i.renderers.style_commands",
    "clip_t2i.renderers.vqgan.commands",
    "clip_t2i.web.commands",
)


def _register_command_modules() -> None:
    import importlib
    import importlib.util

    for name in _COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(app)


_register_command_modules()


def _usage_line(err) -> str:
    """A click usage error as one line: the message plus where to look for help."""
    from clip_t2i.errors import one_line

    ctx = getattr(err, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return one_line(err.format_message()) + where


def _one_line_warnings() -> None:
    """Show every Python warning as ``warning: message`` on one line (no file name or source line)."""
    import warnings

    from clip_t2i.errors import one_line

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings API
        (file or sys.stderr).write(f"warning: {one_line(str(message))}\n")

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> None:
    """Entry point. Every bad input ends as one line on stderr and exit code 2; Ctrl-C exits 130.

    Click runs with ``standalone_mode=False`` so that its usage errors come back here and are printed as one
    line instead of typer's boxed panel.
    """
    import typer.exceptions
    from typer import _click as click  # typer vendors its own click: its exceptions are these

    from clip_t2i.errors import one_line

    _one_line_warnings()
    try:
        rv = app(args=argv, prog_name="clip-t2i", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        sys.stdout.write(e.ctx.get_help() + "\n")
        raise SystemExit(0) from None
    except click.exceptions.UsageError as e:
        sys.stderr.write(f"error: {_usage_line(e)}\n")
        raise SystemExit(2) from None
    except UserError as e:
        sys.stderr.write(f"error: {one_line(str(e))}\n")
        raise SystemExit(e.exit_code) from None
    except (KeyboardInterrupt, typer.exceptions.Abort):
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except typer.exceptions.Exit as e:
        raise SystemExit(getattr(e, "exit_code", 0)) from None
    except click.exceptions.ClickException as e:  # e.g. FileError from click's own parameter types
        sys.stderr.write(f"error: {one_line(e.format_message())}\n")
        raise SystemExit(e.exit_code) from None
    raise SystemExit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
