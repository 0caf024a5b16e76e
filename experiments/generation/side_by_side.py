"""Side-by-side grid of the same prompts / seeds generated with several models (one row per folder).

Usage:
    python experiments/generation/side_by_side.py OUT.png DIR_A DIR_B [...] --labels vanilla robust --cols 12

Each DIR holds PNGs written by ``clip-t2i generate`` / ``eval_judged.py --out`` (prompt and seed in the PNG text
chunks); images are matched by file name, the first ``--cols`` names common to all folders are used. The
grid's own PNG text chunks list the folders, labels and prompts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, PngImagePlugin


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--labels", nargs="+", default=None)
    ap.add_argument("--cols", type=int, default=12)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--pattern", default="*.png", help="glob of the file names to use, e.g. '*seed0300.png'")
    args = ap.parse_args()
    labels = args.labels or [d.name for d in args.dirs]
    if len(labels) != len(args.dirs):
        raise SystemExit("error: give one label per folder")
    names = sorted(
        set.intersection(*({p.name for p in d.glob(args.pattern) if p.name != "grid.png"} for d in args.dirs))
    )[: args.cols]
    if not names:
        raise SystemExit("error: the folders share no PNG file names")
    first = Image.open(args.dirs[0] / names[0])
    side = first.width * args.scale
    label_w, pad = 70, 2
    grid = Image.new("RGB", (label_w + len(names) * (side + pad), len(args.dirs) * (side + pad)), "white")
    draw = ImageDraw.Draw(grid)
    prompts = []
    for r, (d, label) in enumerate(zip(args.dirs, labels, strict=True)):
        draw.text((4, r * (side + pad) + side // 2 - 6), label, fill="black")
        for c, name in enumerate(names):
            img = Image.open(d / name)
            if r == 0:
                prompts.append(img.text.get("prompt", name))
            grid.paste(
                img.convert("RGB").resize((side, side), Image.NEAREST), (label_w + c * (side + pad), r * (side + pad))
            )
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "clip_t2i",
        json.dumps(
            {"kind": "side_by_side", "rows": labels, "folders": [str(d) for d in args.dirs], "prompts": prompts}
        ),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out, pnginfo=info)
    print(json.dumps({"out": str(args.out), "prompts": prompts}))


if __name__ == "__main__":
    main()
