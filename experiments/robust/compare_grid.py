"""Side-by-side grid of draw_eval runs: one row per run folder, the same first K prompts (file order) in every row,
each tile labelled with its row name and prompt. No selection: the first K images of the benchmark.

    python experiments/robust/compare_grid.py --out docs/X.png --k 12 NAME=runs/draw_eval/RUN NAME=runs/draw_eval/RUN
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from clip_t2i.renderers.outputs import make_grid, read_image_record, save_png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="NAME=FOLDER, one row each")
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tiles, labels = [], []
    for spec in args.runs:
        name, folder = spec.split("=", 1)
        pngs = sorted(Path(folder).glob("[0-9][0-9][0-9]-*.png"))[: args.k]
        if len(pngs) < args.k:
            raise SystemExit(f"{folder}: only {len(pngs)} images, need {args.k}")
        for png in pngs:
            record, image = read_image_record(png)
            tiles.append(image)
            labels.append(f"{name}: {(record or {}).get('prompt', png.stem)}")
    grid = make_grid(torch.stack(tiles), ncol=args.k, labels=labels)
    save_png(args.out, grid, {"rows": args.runs, "k": args.k}, sidecar=False)
    print(args.out)


if __name__ == "__main__":
    main()
