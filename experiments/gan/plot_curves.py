"""Judge-FID-vs-steps curves of GAN runs as one PNG (issue 16, item 3), drawn with PIL (no plotting dependency).

    python experiments/gan/plot_curves.py docs/gan-fid-vs-steps.png \
        galip-s0=experiments/gan/conv-galip-s0-eval.jsonl scad-s0=experiments/gan/conv-scad-s0-eval.jsonl ...

Each argument after the output is NAME=EVAL_JSONL (a run's ``eval.jsonl``). The y axis is judge FID on a log scale
(each run's own FID(real, real') floor drawn as a dashed line in the run's colour); the x axis is training steps.
Refuses to overwrite an existing PNG unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207), (0, 0, 0)]


def load(path: Path) -> list[tuple[int, float, float]]:
    """(step, judge FID, judge FID floor) per evaluation, sorted by step."""
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    out = {int(r["step"]): (float(r["fid_judge"]), float(r.get("fid_judge_real") or "nan")) for r in rows}
    return [(s, *out[s]) for s in sorted(out)]


def plot(curves: dict[str, list[tuple[int, float, float]]], out: Path, width: int = 900, height: int = 520) -> None:
    left, right, top, bottom = 70, 170, 30, 50
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    steps = [s for c in curves.values() for s, _, _ in c]
    fids = [f for c in curves.values() for _, f, floor in c for f in (f, floor) if math.isfinite(f) and f > 0]
    x_max = max(steps)
    lo, hi = math.floor(math.log10(min(fids))), math.ceil(math.log10(max(fids)))

    def xy(step: float, fid: float) -> tuple[float, float]:
        x = left + (width - left - right) * step / x_max
        y = top + (height - top - bottom) * (hi - math.log10(fid)) / (hi - lo)
        return x, y

    d.rectangle([left, top, width - right, height - bottom], outline="black")
    for e in range(lo, hi + 1):
        for m in (1, 2, 5):
            v = m * 10**e
            if 10**lo <= v <= 10**hi:
                _, y = xy(0, v)
                d.line([left, y, width - right, y], fill=(225, 225, 225))
                d.text((left - 8, y), f"{v:g}", fill="black", anchor="rm")
    tick = 5000 if x_max > 10000 else 1000
    for s in range(0, x_max + 1, tick):
        x, _ = xy(s, 10**hi)
        d.line([x, height - bottom, x, height - bottom + 5], fill="black")
        d.text((x, height - bottom + 8), f"{s // 1000}k", fill="black", anchor="mt")
    d.text(((width - right + left) / 2, height - 15), "training steps (batch 32)", fill="black", anchor="mm")
    d.text((8, 8), "judge FID (log scale); dashed: FID(real, real')", fill="black")
    for i, (name, rows) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        d.line([xy(s, f) for s, f, _ in rows], fill=colour, width=2)
        floor = rows[-1][2]
        if math.isfinite(floor):
            for s in range(0, rows[-1][0], 400):
                d.line([xy(s, floor), xy(min(s + 200, rows[-1][0]), floor)], fill=colour, width=1)
        s, f, _ = rows[-1]
        d.text((width - right + 10, top + 18 * i), f"{name}: {f:.1f} @ {s // 1000}k", fill=colour)
    img.save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", nargs="+", help="NAME=EVAL_JSONL")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"error: {args.out} exists; pass --overwrite to replace it")
    curves = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"error: expected NAME=EVAL_JSONL with an existing file, got {item!r}")
        curves[name] = load(Path(path))
    plot(curves, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
