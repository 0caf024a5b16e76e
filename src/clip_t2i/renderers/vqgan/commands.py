"""CLI command ``train-vqgan`` (registered by ``clip_t2i.cli``); heavy imports happen inside the command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from clip_t2i.cli_options import Threads, config_from_params, resume_config
from clip_t2i.renderers.vqgan.train_config import VQGANTrainConfig as _V


def train_vqgan_cmd(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(help="shapes | shapes2 | digits | image-text folder | shards")] = _V.data,
    out: Annotated[Path, typer.Option(help="Run folder")] = Path(_V.out),
    steps: Annotated[int, typer.Option(help="Optimizer steps")] = _V.steps,
    batch_size: Annotated[int, typer.Option(help="Batch per process")] = _V.batch_size,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = _V.lr,
    resolution: Annotated[int, typer.Option(help="Training image side")] = _V.resolution,
    ch: Annotated[int, typer.Option(help="Base channels (multiple of 32)")] = _V.ch,
    ch_mult: Annotated[
        str, typer.Option(help="Channel multipliers per level, comma list (factor 2^(levels-1))")
    ] = ",".join(map(str, _V.ch_mult)),
    num_res_blocks: Annotated[int, typer.Option(help="Residual blocks per level")] = _V.num_res_blocks,
    attn_resolutions: Annotated[str, typer.Option(help="Feature sides with self-attention, comma list")] = "",
    z_channels: Annotated[int, typer.Option(help="Encoder output channels")] = _V.z_channels,
    embed_dim: Annotated[int, typer.Option(help="Codebook vector size")] = _V.embed_dim,
    n_embed: Annotated[int, typer.Option(help="Codebook size")] = _V.n_embed,
    beta: Annotated[float, typer.Option(help="Commitment weight β")] = _V.beta,
    perceptual: Annotated[
        str, typer.Option(help="gradient (multi-scale image-gradient L1) | ssim | none")
    ] = _V.perceptual,
    perceptual_weight: Annotated[float, typer.Option(help="Weight of the perceptual term")] = _V.perceptual_weight,
    disc_weight: Annotated[float, typer.Option(help="Patch-discriminator weight (0 = none)")] = _V.disc_weight,
    disc_start: Annotated[int, typer.Option(help="Step the discriminator starts at")] = _V.disc_start,
    restart_every: Annotated[int, typer.Option(help="Steps between dead-code restarts (0 = off)")] = _V.restart_every,
    hflip: Annotated[bool, typer.Option(help="Augment: random left-right mirror")] = _V.hflip,
    vflip: Annotated[bool, typer.Option(help="Augment: random top-bottom mirror")] = _V.vflip,
    shift: Annotated[int, typer.Option(help="Augment: random translation by up to ±SHIFT px")] = _V.shift,
    seed: Annotated[int, typer.Option()] = _V.seed,
    mixed_precision: Annotated[str, typer.Option(help="no | bf16 | fp16 (GPU)")] = _V.mixed_precision,
    threads: Threads = _V.threads,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers")] = _V.num_workers,
    log_every: Annotated[int, typer.Option()] = _V.log_every,
    sample_every: Annotated[int, typer.Option(help="Steps between sample grids (0 = never)")] = _V.sample_every,
    ckpt_every: Annotated[int, typer.Option(help="Steps between checkpoints (0 = at the end)")] = _V.ckpt_every,
    eval_n: Annotated[int, typer.Option(help="Held-out images for PSNR / codebook usage")] = _V.eval_n,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = _V.resume,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = _V.progress,
    max_nonfinite_steps: Annotated[
        int, typer.Option(help="Stop after this many consecutive non-finite steps (0: never)")
    ] = _V.max_nonfinite_steps,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved config and exit")] = False,
) -> None:
    """Train a taming-compatible VQGAN (L1 + weight-free perceptual + codebook/commitment, optional patch
    discriminator) and write ``final.safetensors`` with held-out PSNR and codebook usage."""
    from dataclasses import asdict

    from clip_t2i.renderers.vqgan.train import train_vqgan
    from clip_t2i.renderers.vqgan.train_config import VQGANTrainConfig, validate
    from clip_t2i.utils.jsonout import print_json

    cfg = config_from_params(
        ctx,
        VQGANTrainConfig,
        ch_mult=_int_list(ch_mult, "--ch-mult"),
        attn_resolutions=_int_list(attn_resolutions, "--attn-resolutions"),
    )
    cfg = resume_config(ctx, cfg)
    validate(cfg)
    if dry_run:
        print_json(asdict(cfg))
        return
    final = train_vqgan(cfg)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"saved {final}")


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    from clip_t2i.errors import UserError

    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{flag} must be a comma list of integers, got {text!r}") from None


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``clip-t2i`` app."""
    app.command("train-vqgan")(train_vqgan_cmd)
