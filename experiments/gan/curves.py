"""FID-vs-steps curves of several GAN runs side by side (issue 16, item 3), as one markdown table.

    python experiments/gan/curves.py galip=experiments/gan/conv-galip-s0-eval.jsonl \
        scad-mi=runs/gan-conv-scad-mi-s0/eval.jsonl [--every 2000] [--json]

Each argument is NAME=EVAL_JSONL (a run's ``eval.jsonl``). Rows are the steps every run has evaluated (every
``--every`` steps, plus the last common one); per run: judge FID (and its ratio to FID(real, real')), judged
all-attributes seen / held-out, recognised, pixel mPPD and factor diversity (mean, and the capped mean when the
run recorded it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(path: Path) -> dict[int, dict]:
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return {int(r["step"]): r for r in rows}


def cell(r: dict) -> str:
    fd = r.get("factor_diversity") or {}
    mean, capped = fd.get("mean"), fd.get("mean_capped")
    div = "—" if mean is None else f"{mean:.2f}" + ("" if capped is None else f" ({capped:.2f})")
    ratio = r["fid_judge"] / r["fid_judge_real"] if r.get("fid_judge_real") else float("nan")
    return (
        f"{r['fid_judge']:.0f} ({ratio:.0f}×) | {100 * r['judge_all']:.1f} / {100 * r['judge_heldout_all']:.1f} | "
        f"{100 * r['judge_recognised']:.1f} | {r['mppd_pixels']:.3f} | {div}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="NAME=EVAL_JSONL")
    ap.add_argument("--every", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"error: expected NAME=EVAL_JSONL with an existing file, got {item!r}")
        runs[name] = load(Path(path))
    common = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not common:
        raise SystemExit("error: the runs share no evaluated step")
    steps = [s for s in common if s % args.every == 0]
    if common[-1] not in steps:
        steps.append(common[-1])
    if args.json:
        print(json.dumps({"steps": steps, "runs": {n: [r[s] for s in steps] for n, r in runs.items()}}))
        return
    head = " | ".join(
        f"{n}: FID judge (× floor) | judged all seen / held-out % | recognised % | mppd_pixels | "
        f"factor_diversity (capped)"
        for n in runs
    )
    print(f"| step | {head} |")
    print("|---|" + "---|" * (5 * len(runs)))
    for s in steps:
        print(f"| {s} | " + " | ".join(cell(r[s]) for r in runs.values()) + " |")


if __name__ == "__main__":
    main()
