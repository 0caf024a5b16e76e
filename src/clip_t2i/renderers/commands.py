"""CLI commands of the generation side: ``generate``, ``presets``, ``judge``, ``train-judge``.

A thin layer: parse, validate, call the public API. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from clip_t2i.cli_options import ImageTower, Pretrained, Threads, path_or_none, set_threads
from clip_t2i.errors import UserError
from clip_t2i.renderers.presets import DEFAULT_PRESET


def _print_json(obj: Any) -> None:
    from clip_t2i.utils.jsonout import print_json

    print_json(obj)


def _split_overrides(pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``KEY=VALUE`` pairs (VALUE read as JSON when it parses, else as a string) -> (guidance, renderer)."""
    from clip_t2i.guidance.loop import GuidanceConfig

    guidance, renderer = {}, {}
    names = set(GuidanceConfig.field_names())
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--set needs KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        (guidance if key in names else renderer)[key] = value
    return guidance, renderer


def generate_cmd(
    prompts: Annotated[list[str], typer.Argument(help="Prompts; weights pixray-style: 'a red circle:1 | blurry:-0.5'")],
    model: Annotated[str, typer.Option("--model", "-m", help="Zoo name, .safetensors or CLIP name")] = "shapes-clipag",
    seeds: Annotated[str, typer.Option(help="Seeds: 0-7, 1,5,9 or 3")] = "0",
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (default: the preset's)")] = None,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("outputs/generate"),
    preset: Annotated[str, typer.Option(help="Preset name (see `clip-t2i presets`) or a .json file")] = DEFAULT_PRESET,
    renderer: Annotated[str | None, typer.Option(help="Renderer (pixels, pyramid); default: the preset's")] = None,
    size: Annotated[int | None, typer.Option(help="Image side in pixels (default: the model's input size)")] = None,
    init_image: Annotated[Path | None, typer.Option(help="Start from this image")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a preset field: KEY=VALUE")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images optimised together")] = None,
    gif: Annotated[bool, typer.Option("--gif", help="Also write each optimisation as a GIF")] = False,
    mp4: Annotated[bool, typer.Option("--mp4", help="Also write each optimisation as an MP4 (needs ffmpeg)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace files of the same names in --out (else: an error)")] = False,
    strict: Annotated[bool, typer.Option(help="Refuse words the model never saw in training (else: warn)")] = False,
    pretrained: Pretrained = None,
    image_tower: ImageTower = None,
    threads: Threads = 0,
) -> None:
    """Generate images from text with CLIP guidance: one PNG (with metadata + JSON sidecar) per prompt x seed."""
    from clip_t2i.pipeline import generate

    g_over, r_over = _split_overrides(set_ or [])
    set_threads(threads)
    result = generate(
        prompts,
        model=model,
        seeds=seeds,
        steps=steps,
        preset=preset,
        renderer=renderer,
        size=size,
        init_image=str(init_image) if init_image is not None else None,
        guidance=g_over,
        renderer_options=r_over,
        out=out,
        gif=gif,
        mp4=mp4,
        progress=progress,
        batch_size=batch_size,
        overwrite=overwrite,
        strict=strict,
        pretrained=pretrained,
        image_tower=path_or_none(image_tower),
    )
    summary = {
        "out": str(out),
        "model": model,
        "preset": preset,
        "images": len(result.records),
        "seconds": round(result.seconds, 2),
        "seconds_per_image": round(result.seconds_per_image, 3),
        "files": [
            {k: r[k] for k in ("file", "prompt", "seed", "similarity", "gif", "mp4") if k in r} for r in result.records
        ],
    }
    if as_json:
        _print_json(summary)
        return
    for f in summary["files"]:
        typer.echo(f"{out / f['file']}  sim {f['similarity']:.3f}  {f['prompt']!r} seed {f['seed']}")
    n = summary["images"]
    typer.echo(f"{n} image{'s' * (n != 1)} in {summary['seconds']:.1f} s ({summary['seconds_per_image']:.2f} s/image)")


def presets_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False) -> None:
    """List generation presets and renderers."""
    from clip_t2i.renderers.base import list_renderers
    from clip_t2i.renderers.presets import get_preset, list_presets

    data = {name: get_preset(name).to_dict() for name in list_presets()}
    if as_json:
        _print_json({"presets": data, "renderers": list_renderers()})
        return
    import shutil
    import textwrap

    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 120))
    for name, p in data.items():
        g = p["guidance"]
        typer.echo(f"{name}: {p['renderer']}, {g['steps']} steps, {g['global_views']}+{g['patch_views']} views")
        typer.echo(textwrap.fill(p["description"], width=width, initial_indent="    ", subsequent_indent="    "))
    typer.echo(f"renderers: {', '.join(list_renderers())}")


def judge_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of generated PNGs (prompt in metadata or sidecar)")],
    with_size: Annotated[bool, typer.Option("--with-size", help="Count size in the all-attributes accuracy")] = False,
    judge: Annotated[
        str, typer.Option(help="auto (analysis by synthesis / robust digits) | legacy (the old CNN judges)")
    ] = "auto",
    threads: Threads = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Judge generated images against their prompts: recognised, per-attribute and all-attributes accuracy."""
    from clip_t2i.metrics.judges.cnn import SHAPES_ATTRIBUTES
    from clip_t2i.metrics.judges.scoring import judge_directory

    set_threads(threads)

    attrs = SHAPES_ATTRIBUTES if with_size else ("colour", "shape", "position")
    report = judge_directory(folder, all_attributes=attrs, judge=judge)
    if as_json:
        _print_json(report)
        return
    skipped = report.pop("skipped", None)
    for domain, r in report.items():
        accs = ", ".join(f"{k} {v:.1%}" for k, v in r["accuracy"].items() if k not in ("all", "recognised"))
        rec = f"recognised {r['recognised']:.1%}; " if r.get("recognised") is not None else ""
        typer.echo(
            f"{domain} ({r['judge']}): {r['n']} images; {rec}{accs}; "
            f"all ({'+'.join(r['all_attributes'])}) {r['accuracy']['all']:.1%}"
        )
        for note in r.get("notes", []):
            typer.echo(f"  note: {note}")
    if skipped:
        typer.echo(
            f"skipped {skipped['n']} image(s) whose prompt cannot be judged ({'; '.join(skipped['reasons'])}): "
            f"words {', '.join(skipped['words']) or 'none'}"
        )


def train_judge_cmd(
    kind: Annotated[str, typer.Option(help="shapes | digits")] = "shapes",
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (default 1000 shapes, 1500 digits)")] = None,
    batch_size: Annotated[int, typer.Option()] = 128,
    seed: Annotated[int, typer.Option()] = 0,
    adv_eps: Annotated[
        float, typer.Option(help="Digits: adversarial training, L2 radius on the 32x32 luminance (0 = clean)")
    ] = 0.0,
    adv_steps: Annotated[int, typer.Option(help="Digits: PGD steps of the training attack")] = 5,
    name: Annotated[
        str | None, typer.Option(help="Zoo name (default shapes-judge, digits-judge, digits-judge-robust)")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch threads (0 = default)")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for <name>.safetensors/.json/.md")] = Path("src/clip_t2i/zoo"),
) -> None:
    """Train a CNN judge (shapes attribute or digit classifier; digits optionally adversarially) and write its
    zoo files."""
    import torch

    from clip_t2i.metrics.judges.cards import write_zoo_entry
    from clip_t2i.metrics.judges.training import JudgeTrainConfig, train_judge
    from clip_t2i.utils.paths import check_writable_dir

    if kind not in ("shapes", "digits"):
        raise UserError(f"--kind must be shapes or digits, not {kind!r}")
    if adv_eps < 0 or (adv_eps > 0 and kind != "digits"):
        raise UserError("--adv-eps > 0 (adversarial training) is for --kind digits only")
    if threads > 0:
        torch.set_num_threads(threads)
    check_writable_dir(out)
    steps = steps or (1000 if kind == "shapes" else 1500)
    cfg = JudgeTrainConfig(
        kind=kind, steps=steps, batch_size=batch_size, seed=seed, adv_eps=adv_eps, adv_steps=adv_steps
    )
    model, metrics = train_judge(cfg, log=lambda m: typer.echo(m, err=True))
    command = f"clip-t2i train-judge --kind {kind} --steps {steps} --batch-size {batch_size} --seed {seed}"
    if adv_eps > 0:
        command += f" --adv-eps {adv_eps:g} --adv-steps {adv_steps}"
    if name:
        command += f" --name {name}"
    path = write_zoo_entry(model, metrics, out, command + (f" --threads {threads}" if threads else ""), name=name)
    typer.echo(f"saved {path}: {json.dumps(metrics)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``clip-t2i`` app."""
    app.command("generate")(generate_cmd)
    app.command("presets")(presets_cmd)
    app.command("judge")(judge_cmd)
    app.command("train-judge")(train_judge_cmd)
