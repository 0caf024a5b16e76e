"""CLI commands of the GAN package: ``train-gan``, ``sample``, ``eval-gan`` (registered by ``clip_t2i.cli``)."""

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
from clip_t2i.gan.config import GanTrainConfig as _GAN
from clip_t2i.utils.jsonout import dumps, print_json

_GAN_PARAMS = {"clip_pretrained": "pretrained", "clip_image_tower": "image_tower", "overrides": "set_"}


def train_gan_cmd(
    ctx: typer.Context,
    variant: Annotated[
        str,
        typer.Option(
            help="galip | scad | scad-mi | scad-dd | scad-global | scad-nosn | scad-hinge, or a variant .json"
        ),
    ] = _GAN.variant,
    clip: Annotated[str, typer.Option(help="CLIP to wrap (zoo name, .safetensors, config); stays frozen")] = _GAN.clip,
    pretrained: Pretrained = _GAN.clip_pretrained,
    image_tower: ImageTower = None,
    data: Annotated[str, typer.Option(help="shapes | shapes2 | digits | image-text folder | shards")] = _GAN.data,
    out: Annotated[Path, typer.Option(help="Run folder")] = Path(_GAN.out),
    steps: Annotated[int, typer.Option(help="Iterations (one D step + one G step each)")] = _GAN.steps,
    batch_size: Annotated[int, typer.Option(help="Batch size")] = _GAN.batch_size,
    lr_g: Annotated[float, typer.Option(help="Adam lr of G")] = _GAN.lr_g,
    lr_d: Annotated[float, typer.Option(help="Adam lr of D (and Q)")] = _GAN.lr_d,
    ema_beta: Annotated[float, typer.Option(help="EMA decay of G per step")] = _GAN.ema_beta,
    mi_weight: Annotated[float | None, typer.Option(help="λ of the MI term (overrides the variant)")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="SECTION.KEY=VALUE override, repeatable (e.g. discriminator.spectral_norm=false)"),
    ] = None,
    resolution: Annotated[int | None, typer.Option(help="Output side (default: the CLIP's input size)")] = None,
    mixed_precision: Annotated[str, typer.Option(help="no | bf16 | fp16 (GPU)")] = _GAN.mixed_precision,
    channels_last: Annotated[
        bool, typer.Option(help="NHWC convolutions (same maths; faster on CPU)")
    ] = _GAN.channels_last,
    seed: Annotated[int, typer.Option()] = _GAN.seed,
    threads: Threads = _GAN.threads,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers")] = _GAN.num_workers,
    log_every: Annotated[int, typer.Option()] = _GAN.log_every,
    sample_every: Annotated[int, typer.Option(help="Steps between sample grids (0 = never)")] = _GAN.sample_every,
    eval_every: Annotated[
        int, typer.Option(help="Steps between FID/mPPD/judge evals (0 = at the end, -1 = never)")
    ] = _GAN.eval_every,
    eval_n_fid: Annotated[int, typer.Option(help="Fakes per FID evaluation")] = _GAN.eval_n_fid,
    eval_judge: Annotated[
        str, typer.Option(help="auto (zoo shapes-judge) | none | judge .safetensors")
    ] = _GAN.eval_judge,
    ckpt_every: Annotated[int, typer.Option(help="Steps between checkpoints (0 = at the end)")] = _GAN.ckpt_every,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = _GAN.resume,
    embed_clip: Annotated[str, typer.Option(help="auto (unless zoo CLIP) | always | never")] = _GAN.embed_clip,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = _GAN.progress,
    max_nonfinite_steps: Annotated[
        int, typer.Option(help="Stop after this many consecutive non-finite steps (0: never)")
    ] = _GAN.max_nonfinite_steps,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved config and exit")] = False,
) -> None:
    """Train the CLIP-aided GAN (GALIP baseline or a SCAD variant) and write a self-describing generator."""
    from dataclasses import asdict

    from clip_t2i.gan.config import GanTrainConfig, validate
    from clip_t2i.gan.train import train_gan

    overrides = list(set_ or [])
    if mi_weight is not None:
        overrides.append(f"loss.mi_weight={mi_weight}")
    cfg = config_from_params(ctx, GanTrainConfig, _GAN_PARAMS, overrides=tuple(overrides))
    cfg = resume_config(ctx, cfg, _GAN_PARAMS)
    gan_cfg = validate(cfg)
    if dry_run:
        print_json({**asdict(cfg), "gan": gan_cfg.to_dict()})
        return
    if cfg.resolution is not None:  # check resolution against the CLIP before creating anything on disk
        from clip_t2i.backbones import load_clip
        from clip_t2i.gan.networks import FrozenViT, stage_sizes

        vit = FrozenViT(load_clip(clip, pretrained, image_tower=path_or_none(image_tower)))
        stage_sizes(vit.grid, cfg.resolution, vit.image_size)
    final = train_gan(cfg)
    if os.environ.get("RANK", "0") == "0":  # under accelerate launch only the main process says it
        typer.echo(f"saved {final}")


def sample_cmd(
    prompt: Annotated[list[str] | None, typer.Argument(help="Prompt(s); or use --prompts FILE")] = None,
    gan: Annotated[str, typer.Option("--gan", help="GAN checkpoint: zoo name, .safetensors, run folder")] = "",
    n: Annotated[int, typer.Option(help="Images per prompt")] = 16,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("outputs/gan"),
    seed: Annotated[int, typer.Option(help="First seed; image i of a prompt uses seed + i")] = 0,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Text file, one prompt per line")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace files of the same names in --out (else: an error)")] = False,
    threads: Threads = 0,
) -> None:
    """Generate images with a trained GAN: PNGs (prompt, seed, model in text chunks) plus JSON sidecars."""
    from clip_t2i.gan.sample import check_prompts, read_prompt_file, sample

    if not gan:
        raise UserError("--gan is required (a zoo name, a .safetensors file or a run folder)")
    items = list(prompt or [])
    if prompts is not None:
        items += read_prompt_file(prompts)
    if not items:
        raise UserError("give a prompt or --prompts FILE")
    items = check_prompts(items)
    set_threads(threads)
    result = sample(gan, items, n=n, seed=seed, out=out, batch_size=batch_size, overwrite=overwrite)
    if as_json:
        sys.stdout.write(
            dumps({"out": str(out), "model": result.model, **result.info, "images": result.records()}) + "\n"
        )
        return
    typer.echo(f"wrote {len(result.paths)} images for {len(items)} prompt(s) to {out}")


def eval_gan_cmd(
    gans: Annotated[list[str], typer.Argument(help="GAN checkpoints: zoo names, .safetensors files, run folders")],
    eval_clip: Annotated[
        str, typer.Option(help="Independent CLIP for the CLIP score (not the one G was trained with); 'none' to skip")
    ] = "shapes-clip-rn",
    judge: Annotated[
        str, typer.Option(help="auto (analysis-by-synthesis judge) | legacy (the old CNN) | none | judge .safetensors")
    ] = "auto",
    n_fid: Annotated[int, typer.Option(help="Fakes for FID / CLIP score / judge accuracy")] = 480,
    pretrained: Pretrained = None,
    image_tower: ImageTower = None,
    threads: Threads = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Evaluate trained generators side by side: FID (judge / CLIP features), CLIP score with an independent
    CLIP, mPPD, judged accuracy (shapes world, fixed seeds). Generators trained with the same CLIP share the
    real statistics."""
    from clip_t2i.backbones import load_clip
    from clip_t2i.gan.evaluate import EvalSpec, GanEvaluator
    from clip_t2i.gan.model import load_gan

    set_threads(threads)
    if n_fid < 2:
        raise UserError(f"--n-fid must be ≥ 2, got {n_fid}")
    models = [load_gan(g) for g in gans]  # fail on any bad checkpoint before evaluating
    ev_clip = None if eval_clip == "none" else load_clip(eval_clip, pretrained, image_tower=path_or_none(image_tower))
    if ev_clip is not None:
        ev_clip.eval()
    evaluators: dict[str, GanEvaluator] = {}
    rows = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(gans), desc="eval-gan", unit="generator", dynamic_ncols=True)
    for name, m in zip(gans, models, strict=True):
        bar.set_description_str(f"eval-gan: {name}")
        fp = m.meta["clip"].get("fingerprint", "")
        if fp not in evaluators:
            evaluators[fp] = GanEvaluator(
                m.clip,
                "shapes",
                m.G.resolution,
                EvalSpec(n_fid=n_fid),
                judge,
                eval_clip=ev_clip,
                eval_clip_id=eval_clip,
                guide_clip_id=str(m.meta["clip"].get("ref")),
            )
        res = evaluators[fp](m.G)
        rows.append({"gan": name, "variant": m.config.name, "steps": m.steps, **res})
        bar.update(1)
    bar.close()
    if as_json:
        print_json({"eval_clip": eval_clip, "results": rows})
        return
    keys = ["fid_judge", "fid_clip", "clip_score_eval", "mppd_judge", "mppd_clip", "judge_all", "judge_heldout_all"]
    typer.echo("| gan | variant | steps | " + " | ".join(keys) + " |")
    typer.echo("|" + "---|" * (3 + len(keys)))
    for r in rows:
        cells = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k)) for k in keys]
        typer.echo(f"| {r['gan']} | {r['variant']} | {r['steps']} | " + " | ".join(cells) + " |")


def register(app: typer.Typer) -> None:
    """Add ``train-gan``, ``sample`` and ``eval-gan`` to the ``clip-t2i`` app."""
    app.command("train-gan")(train_gan_cmd)
    app.command("sample")(sample_cmd)
    app.command("eval-gan")(eval_gan_cmd)
