"""Summarise GAN runs: last and best evaluation of each run folder (eval.jsonl) as a markdown table.

Usage: ``python experiments/gan/summarize.py RUN [RUN ...] [--json]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KEYS = (
    "fid_judge",
    "fid_clip",
    "judge_recognised",
    "judge_all",
    "judge_colour",
    "judge_shape",
    "judge_position",
    "judge_heldout_all",
    "judge_heldout_recognised",
    "factor_diversity_mean",
    "factor_diversity_capped",
    "factor_diversity_prompts",
    "mppd_pixels",
    "mppd_pixels_real",
    "mppd_clip",
    "mppd_clip_real",
)


def load(run: Path) -> dict:
    evals = [json.loads(ln) for ln in (run / "eval.jsonl").read_text().splitlines() if ln.strip()]
    log = [json.loads(ln) for ln in (run / "train.log").read_text().splitlines() if ln.strip()]
    done = next((r for r in reversed(log) if r.get("done")), {})
    start = next((r for r in log if "G_params" in r), {})
    steps = [r for r in log if "step" in r and "G/loss" in r]
    return {
        "run": run.name,
        "variant": start.get("variant"),
        "steps": done.get("step"),
        "minutes": round(done.get("elapsed_s", 0) / 60, 1),
        "skipped": done.get("skipped"),
        "s_per_step": round(done.get("elapsed_s", 0) / max(1, done.get("step") or 1), 3),
        "last": evals[-1] if evals else {},
        "trajectory": evals,
        "last_losses": steps[-1] if steps else {},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [load(r) for r in args.runs]
    if args.json:
        print(json.dumps(rows))
        return
    keys = [k for k in KEYS if any(k in r["last"] for r in rows)]
    print("| run | variant | steps | min | s/step | " + " | ".join(keys) + " |")
    print("|" + "---|" * (5 + len(keys)))
    for r in rows:
        vals = [r["last"].get(k) for k in keys]
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in vals]
        print(
            f"| {r['run']} | {r['variant']} | {r['steps']} | {r['minutes']} | {r['s_per_step']} | "
            + " | ".join(cells)
            + " |"
        )
    for r in rows:
        print(f"\n{r['run']} trajectory (step: fid_judge / fid_clip / mppd_judge / judge_all):")
        for e in r["trajectory"]:
            print(
                f"  {e['step']:>6}: {e.get('fid_judge', float('nan')):.3f} / {e.get('fid_clip', float('nan')):.3f}"
                f" / {e.get('mppd_judge', float('nan')):.3f} / {e.get('judge_all', float('nan'))}"
            )


if __name__ == "__main__":
    main()
