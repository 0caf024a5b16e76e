"""Re-run the generation benchmarks of ``experiments/generation/README.md`` and judge the *same* images with the
legacy CNN judge and the new analysis-by-synthesis judge; one JSON line per setting (also appended to ``--log``).

Settings (as in that README): ``fast`` on the 100-prompt benchmark and ``pag`` on its first 24 prompts
(:func:`shapes_eval_prompts`, seed 0), with the vanilla ``shapes-clip`` and the robust ``shapes-clipag``.
PNGs go to ``--out/<model>-<preset>`` so the verdicts can be inspected.

    python experiments/judges/rejudge_generation.py [--settings shapes-clip:fast:100,...] [--out runs/judges/rejudge]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from clip_t2i.metrics.judges.prompts import shapes_eval_prompts
from clip_t2i.metrics.judges.scoring import judge_shapes
from clip_t2i.pipeline import generate

DEFAULT = "shapes-clip:fast:100,shapes-clipag:fast:100,shapes-clip:pag:24,shapes-clipag:pag:24"


def _split(report, held: torch.Tensor) -> dict[str, float]:
    ok = torch.tensor([r["all"] for r in report.per_image])
    return {
        "all_seen": round(float(ok[~held].float().mean()), 4),
        "all_heldout": round(float(ok[held].float().mean()), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default=DEFAULT, help="comma list of MODEL:PRESET:N")
    ap.add_argument("--out", default="runs/judges/rejudge")
    ap.add_argument("--log", default="experiments/judges/rejudge_generation.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for spec in args.settings.split(","):
        model, preset, n = spec.split(":")
        items = shapes_eval_prompts(int(n), seed=0)
        prompts = [it["prompt"] for it in items]
        held = torch.tensor([it["heldout"] for it in items])
        t0 = time.perf_counter()
        res = generate(
            prompts, model=model, seeds=[0], preset=preset, out=Path(args.out) / f"{model}-{preset}", progress=False
        )
        seconds = time.perf_counter() - t0
        new = judge_shapes(res.images, prompts)
        old = judge_shapes(res.images, prompts, judge="legacy")
        line = {
            "model": model,
            "preset": preset,
            "n": int(n),
            "seconds_per_image": round(seconds / int(n), 3),
            "legacy": {**old.accuracy, **_split(old, held)},
            "new": {**new.accuracy, **_split(new, held)},
            "failed_gates": {
                g: sum(g in r["failed_gates"] for r in new.per_image)
                for g in ("object", "iou", "residual", "hue", "saturation")
            },
        }
        print(json.dumps(line), flush=True)
        with Path(args.log).open("a") as fh:
            fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
