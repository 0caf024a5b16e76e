"""Zoo files of the CNN judges: ``<name>.safetensors`` + ``.json`` entry + ``.md`` model card."""

from __future__ import annotations

import json
import math
from pathlib import Path

from clip_t2i.metrics.judges.cnn import (
    DIGITS_JUDGE,
    DIGITS_JUDGE_ROBUST,
    SHAPES_JUDGE,
    _JudgeBase,
    judge_kind,
    save_judge,
)


def zoo_card(name: str, kind: str, metrics: dict, command: str, n_params: int, size_bytes: int) -> str:
    """Markdown model card of a judge."""
    robust = "robust_eps_l2" in metrics
    lines = [
        f"# {name}",
        "",
        f"A {'shapes-world attribute' if kind == 'shapes' else 'digit'} classifier used as an **evaluator** "
        "of generated images (never for guidance).",
        "",
        "- architecture: conv trunk (stride-2 4x4 stem, 3 conv-BN-ReLU stages, 4x4 average grid), 128-d "
        "penultimate layer (`features()`), linear heads",
        f"- parameters: {n_params:,}; file: {size_bytes / 1024:.0f} KiB (fp16 safetensors)",
        "- data: "
        + (
            "clean renders of all 240 one-object combinations (held-out ones included), 64x64"
            if kind == "shapes"
            else "digits train split (1437 images) at 32x32, scale/shift jitter"
        ),
        "- augmentation: brightness +-0.06, contrast x[0.85,1.15], saturation x[0.8,1.2], channel gain "
        "x[0.93,1.07], blur sigma<=1 px (p=0.5), noise std<=0.06",
    ]
    if robust:
        lines.append(
            f"- adversarial training: L2 PGD on the one-channel 32x32 luminance input, eps = {metrics['robust_eps_l2']}"
            " (loss = 0.5 CE(clean) + 0.5 CE(PGD)); robust accuracy under PGD-50, APGD-CE and APGD-DLR "
            "(100 steps) at the same eps, `worst` = robust against all three"
        )
    lines += [
        f"- training time: {metrics.get('train_seconds', math.nan):.0f} s on a 2-core CPU (1 thread, may be shared)",
        "",
        "## Reproduce",
        "",
        "```",
        command,
        "```",
        "",
        "## Accuracy",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in metrics.items() if k != "train_seconds"]
    return "\n".join(lines) + "\n"


def write_zoo_entry(
    model: _JudgeBase, metrics: dict, folder: str | Path, command: str, name: str | None = None
) -> Path:
    """Write ``<name>.safetensors`` + ``.json`` + ``.md`` for a judge into ``folder`` (atomically)."""
    from clip_t2i.utils.io import atomic_write_text

    kind = judge_kind(model)
    robust = "robust_eps_l2" in metrics
    name = name or (SHAPES_JUDGE if kind == "shapes" else (DIGITS_JUDGE_ROBUST if robust else DIGITS_JUDGE))
    folder = Path(folder)
    width = model.trunk.body[0][0].out_channels
    weights = save_judge(model, folder / f"{name}.safetensors", extra={"width": width})
    n_params = sum(p.numel() for p in model.parameters())
    entry = {"file": weights.name, "kind": f"judge-{kind}", "metrics": metrics, "command": command}
    atomic_write_text(folder / f"{name}.json", json.dumps(entry, indent=2) + "\n")
    card = zoo_card(name, kind, metrics, command, n_params, weights.stat().st_size)
    atomic_write_text(folder / f"{name}.md", card)
    return weights
