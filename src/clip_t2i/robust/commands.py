"""CLI commands of the robust package: ``robustify``, ``eval-robust``, ``pag`` (registered by ``clip_t2i.cli``)."""

from __future__ import annotations

import os
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
from clip_t2i.robust.config import RobustTrainConfig as _ROBUST


def _print_json(obj) -> None:
    from clip_t2i.utils.jsonout import print_json

    print_json(obj)


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise UserError(f"{what} is empty")
    return values


def robustify_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Zoo name, .safetensors or config to start from")] = _ROBUST.model,
    pretrained: Pretrained = _ROBUST.pretrained,
    image_tower: ImageTower = None,
    threads: Threads = _ROBUST.threads,
    data: Annotated[str, typer.Option(help="shapes | shapes2 | digits | image-text folder | shards")] = _ROBUST.data,
    out: Annotated[Path, typer.Option(help="Run folder")] = Path(_ROBUST.out),
    objective: Annotated[str, typer.Option(help="clipag | tecoa | fare")] = _ROBUST.objective,
    attack: Annotated[str, typer.Option(help="pgd | fast | free | none (clean fine-tuning)")] = _ROBUST.attack,
    norm: Annotated[str, typer.Option(help="l2 | linf")] = _ROBUST.norm,
    eps: Annotated[float, typer.Option(help="L2 radius at 224x224 (rescaled); Linf per pixel")] = _ROBUST.eps,
    attack_steps: Annotated[int, typer.Option(help="PGD-k iterations")] = _ROBUST.attack_steps,
    step_size: Annotated[float | None, typer.Option(help="Attack step in units of ε")] = None,
    free_replays: Annotated[int, typer.Option(help="Replays per minibatch (free)")] = _ROBUST.free_replays,
    clean_weight: Annotated[float, typer.Option(help="Weight of the clean-image loss")] = _ROBUST.clean_weight,
    align_weight: Annotated[
        float, typer.Option(help="Gradient-alignment weight: ∇ₓ sim toward the training image (0: off)")
    ] = _ROBUST.align_weight,
    align_edit_prob: Annotated[
        float, typer.Option(help="Share of alignment sources that are other images")
    ] = _ROBUST.align_edit_prob,
    align_t_power: Annotated[float, typer.Option(help="t = U^p on the source→image line")] = _ROBUST.align_t_power,
    eps_warmup_steps: Annotated[int, typer.Option(help="Linear ε ramp")] = _ROBUST.eps_warmup_steps,
    steps: Annotated[int, typer.Option(help="Optimizer steps")] = _ROBUST.steps,
    batch_size: Annotated[int, typer.Option(help="Batch per process and micro-batch")] = _ROBUST.batch_size,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per step")] = _ROBUST.grad_accum,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate")] = _ROBUST.lr,
    weight_decay: Annotated[float, typer.Option()] = _ROBUST.weight_decay,
    warmup_steps: Annotated[int, typer.Option()] = _ROBUST.warmup_steps,
    grad_clip: Annotated[float, typer.Option()] = _ROBUST.grad_clip,
    mixed_precision: Annotated[str, typer.Option(help="no | bf16 | fp16")] = _ROBUST.mixed_precision,
    positives: Annotated[str, typer.Option(help="label | caption")] = _ROBUST.positives,
    seed: Annotated[int, typer.Option()] = _ROBUST.seed,
    num_workers: Annotated[int, typer.Option()] = _ROBUST.num_workers,
    log_every: Annotated[int, typer.Option()] = _ROBUST.log_every,
    ckpt_every: Annotated[int, typer.Option()] = _ROBUST.ckpt_every,
    eval_every: Annotated[int, typer.Option(help="Quick clean/PGD eval every N steps (0: never)")] = _ROBUST.eval_every,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = _ROBUST.resume,
    export_clipag: Annotated[Path | None, typer.Option(help="Also write the official CLIPAG .pt layout")] = None,
    progress: Annotated[bool, typer.Option()] = _ROBUST.progress,
    max_nonfinite_steps: Annotated[
        int, typer.Option(help="Stop after this many consecutive non-finite steps (0: never)")
    ] = _ROBUST.max_nonfinite_steps,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved config and exit")] = False,
) -> None:
    """Adversarially fine-tune a CLIP's image tower (text tower frozen): CLIPAG, TeCoA or FARE objective."""
    from dataclasses import asdict

    from clip_t2i.robust.config import RobustTrainConfig, validate
    from clip_t2i.robust.finetune import robustify

    cfg = config_from_params(ctx, RobustTrainConfig)
    cfg = resume_config(ctx, cfg)
    validate(cfg)
    if dry_run:
        _print_json(asdict(cfg))
        return
    final = robustify(cfg, echo=typer.echo)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"saved {final}" + (f" and {export_clipag} (CLIPAG layout, verified)" if export_clipag else ""))


def eval_robust_cmd(
    model: Annotated[str, typer.Option(help="Zoo name, .safetensors, config or open_clip name")] = "shapes-clipag",
    pretrained: Pretrained = None,
    image_tower: ImageTower = None,
    threads: Threads = 0,
    data: Annotated[str, typer.Option(help="Comma list of shapes, digits, or auto")] = "auto",
    eps: Annotated[str, typer.Option(help="Comma list of ε (224-convention for L2)")] = "1.5,4,6,8",
    norm: Annotated[str, typer.Option(help="l2 | linf")] = "l2",
    attacks: Annotated[str, typer.Option(help="Comma list of pgd, apgd")] = "pgd,apgd",
    n: Annotated[int, typer.Option(help="Images per split")] = 500,
    pgd_steps: Annotated[int, typer.Option()] = 10,
    apgd_steps: Annotated[int, typer.Option()] = 50,
    apgd_compat: Annotated[
        str,
        typer.Option(
            help="autoattack: APGD exactly as AutoAttack's APGDAttack (RobustBench numbers); "
            "paper: the project's earlier variant"
        ),
    ] = "autoattack",
    seed: Annotated[int, typer.Option()] = 1234,
    native_eps: Annotated[bool, typer.Option(help="Use ε as given (no 224 rescaling)")] = False,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N (model, images and random starts)")] = "cpu",
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr)")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Zero-shot clean and robust accuracy (PGD, APGD-CE) at several ε on shapes (seen/held-out) and digits.

    APGD is AutoAttack-compatible by default (same checkpoints, start, step-size rule and returned points as
    fra31/auto-attack's APGDAttack; JSON key "apgd": "autoattack-compatible"); --apgd-compat paper selects
    the project's earlier variant.
    """
    import torch

    from clip_t2i.backbones import load_clip
    from clip_t2i.robust.attacks import COMPAT_MODES
    from clip_t2i.robust.evaluate import APGD_LABELS, EVAL_DATA, robust_zero_shot

    if norm not in ("l2", "linf"):
        raise UserError(f"unknown norm {norm!r}; use l2 or linf")
    if apgd_compat not in COMPAT_MODES:
        raise UserError(f"unknown --apgd-compat {apgd_compat!r}; use one of {', '.join(COMPAT_MODES)}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown --device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available")
    eps_list = _floats(eps, "--eps")
    if any(not e > 0 for e in eps_list):
        raise UserError("every --eps must be > 0")
    attack_list = [a.strip() for a in attacks.split(",") if a.strip()]
    if pgd_steps < 1 or apgd_steps < 1:
        raise UserError("--pgd-steps and --apgd-steps must be ≥ 1")
    set_threads(threads)
    clip = load_clip(model, pretrained, image_tower=path_or_none(image_tower), device=dev)
    if data == "auto":
        names = ["digits"] if clip.config.get("train_data") == "digits" else ["shapes"]
    else:
        names = [d.strip() for d in data.split(",") if d.strip()]
        bad = [d for d in names if d not in EVAL_DATA]
        if bad:
            raise UserError(f"--data must be among {', '.join(EVAL_DATA)}, not {bad[0]!r}")
    res = {
        "model": model,
        **robust_zero_shot(
            clip,
            names,
            eps=eps_list,
            norm=norm,
            attacks=attack_list,
            n=n,
            seed=seed,
            pgd_steps=pgd_steps,
            apgd_steps=apgd_steps,
            rescale=not native_eps,
            apgd_compat=apgd_compat,
            progress=progress,
        ),
    }
    if as_json:
        _print_json(res)
        return
    typer.echo(f"{model}: {norm} ε (224 → effective): " + ", ".join(f"{k}→{v:.3g}" for k, v in res["eps"].items()))
    if "apgd" in attack_list:
        typer.echo(f"  APGD-CE ({apgd_steps} steps): {APGD_LABELS[apgd_compat]}")
    for d in names:
        for split, r in res[d].items():
            parts = [f"clean {r['clean']:.1%}"] + [f"{a} ε={k}: {v:.1%}" for a in attack_list for k, v in r[a].items()]
            typer.echo(f"  {d}/{split} (n={r['n']}): " + "; ".join(parts))


def pag_cmd(
    model: Annotated[str, typer.Option(help="Zoo name, .safetensors, config or open_clip name")] = "shapes-clipag",
    pretrained: Pretrained = None,
    image_tower: ImageTower = None,
    threads: Threads = 0,
    n: Annotated[int, typer.Option(help="Number of (image, one-attribute edit) pairs")] = 300,
    seed: Annotated[int, typer.Option()] = 0,
    sigmas: Annotated[str, typer.Option(help="Comma list of gradient-smoothing σ (pixels)")] = "1,2,4",
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr)")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Perceptually-aligned-gradient score: cos(∇ₓ sim(x, edited caption), x* − x) on shapes edits."""
    from clip_t2i.backbones import load_clip
    from clip_t2i.robust.pag import PAG_ATTRIBUTES, pag_alignment

    if n < 1:
        raise UserError("--n must be ≥ 1")
    sig = _floats(sigmas, "--sigmas")
    if any(s < 0 for s in sig):
        raise UserError("--sigmas must be ≥ 0")
    set_threads(threads)
    clip = load_clip(model, pretrained, image_tower=path_or_none(image_tower))
    res = {"model": model, **pag_alignment(clip, n=n, seed=seed, sigmas=sig, progress=progress)}
    if as_json:
        _print_json(res)
        return
    cols = [*PAG_ATTRIBUTES, "mean"]
    typer.echo(f"PAG alignment of {model} (n={n}, {res['size']} px): " + ", ".join(cols))
    typer.echo("  raw      " + "  ".join(f"{res['alignment'][c]:+.4f}" for c in cols))
    for s, r in res["smoothed"].items():
        typer.echo(f"  σ={s:<6}" + "  ".join(f"{r[c]:+.4f}" for c in cols))


def register(app: typer.Typer) -> None:
    """Add this package's commands to the ``clip-t2i`` app."""
    app.command("robustify")(robustify_cmd)
    app.command("eval-robust")(eval_robust_cmd)
    app.command("pag")(pag_cmd)
