"""Markdown table of an equal-budget comparison from ``clip-t2i eval-gan --json`` output, with the SCAD goal check.

Usage: ``python experiments/gan/compare_table.py runs/gan-eq-eval.json [--baseline galip]``

Per run: training steps and wall time (from its ``train.log``), FID on judge / CLIP features, CLIP score with
the independent CLIP, mPPD on judge / CLIP features and their ratio to the baseline, judged accuracy. Goal (the
SCAD paper's COCO claim, transposed): each SCAD variant's mPPD ≥ 1.1 × the baseline's at FID ≤ 1.1 × the
baseline's; checked on both feature spaces, the judge's FID being the primary one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def wall_minutes(run: Path) -> float | None:
    log = run / "train.log"
    if not log.is_file():
        return None
    done = [json.loads(ln) for ln in log.read_text().splitlines() if '"done"' in ln]
    return round(done[-1]["elapsed_s"] / 60, 1) if done else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_json", type=Path)
    ap.add_argument("--baseline", default="galip")
    args = ap.parse_args()
    data = json.loads(args.eval_json.read_text())
    rows = data["results"]
    base = next(r for r in rows if r["variant"] == args.baseline)
    print(f"CLIP score: independent CLIP `{data['eval_clip']}` (0-100; real renders: "
          f"{base.get('clip_score_eval_real', float('nan')):.1f}); real-data mPPD: judge "
          f"{base['mppd_judge_real']:.4f}, CLIP {base['mppd_clip_real']:.4f}\n")
    print("| variant | steps | wall min | FID judge | FID CLIP | CLIP score | mPPD judge (× base) | mPPD CLIP (× base) "
          "| judged all seen / held-out | goal (judge / CLIP) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rj, rc = r["mppd_judge"] / base["mppd_judge"], r["mppd_clip"] / base["mppd_clip"]
        fj, fc = r["fid_judge"] / base["fid_judge"], r["fid_clip"] / base["fid_clip"]
        goal = "—" if r is base else (f"{'met' if rj >= 1.1 and fj <= 1.1 else 'missed'} / "
                                      f"{'met' if rc >= 1.1 and fc <= 1.1 else 'missed'}")
        cs, held = r.get("clip_score_eval", float("nan")), r.get("judge_heldout_all", float("nan"))
        print(f"| {r['variant']} | {r['steps']} | {wall_minutes(Path(r['gan']))} | {r['fid_judge']:.1f} | "
              f"{r['fid_clip']:.4f} | {cs:.2f} | {r['mppd_judge']:.4f} ({rj:.2f}) | "
              f"{r['mppd_clip']:.4f} ({rc:.2f}) | {r['judge_all']:.3f} / {held:.3f} | {goal} |")


if __name__ == "__main__":
    main()
