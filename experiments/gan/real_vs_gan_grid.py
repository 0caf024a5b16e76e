"""Issue 16, item 6: real renders vs GAN samples for the same prompts, 8 seeds per row.

For each prompt, one row of real renders of its caption (random nuisance factors, the world's own variety), then
one row per GAN (seeds 0..7, EMA generator). Labels under the first tile of each row name the row.

    python experiments/gan/real_vs_gan_grid.py OUT.png --gans shapes-scad runs/X/final.safetensors \
        --names scad-mi-2000 scad-mi-20000 [--prompts "a small red circle on the left" ...] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

PROMPTS = [
    "a small red circle on the left",
    "a large blue square at the top",
    "a large green triangle in the center",
    "a small yellow cross on the right",
]


def real_rows(prompts: list[str], n: int, seed: int) -> torch.Tensor:
    from clip_t2i.data.shapes import ShapesWorld
    from clip_t2i.metrics.judges.diversity import caption_renders
    from clip_t2i.metrics.judges.prompts import read_prompt

    world = ShapesWorld(size=64, level="one", split="all")
    out = [
        caption_renders(world, read_prompt(p).target, n, torch.Generator().manual_seed(seed * 1000 + i))
        for i, p in enumerate(prompts)
    ]
    return torch.stack(out)  # [P, n, 3, 64, 64]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--gans", nargs="+", required=True)
    ap.add_argument("--names", nargs="+", default=None)
    ap.add_argument("--prompts", nargs="+", default=PROMPTS)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = args.names or args.gans
    if len(names) != len(args.gans):
        raise SystemExit("error: give one --names entry per --gans entry")
    if args.out.exists():
        raise SystemExit(f"error: {args.out} exists; choose another path")
    torch.set_num_threads(1)
    from clip_t2i.gan import load_gan
    from clip_t2i.gan.sample import generate
    from clip_t2i.renderers.outputs import make_grid, save_png

    rows = [real_rows(args.prompts, args.n, args.seed)]
    for m in args.gans:
        gm = load_gan(m)
        prompts = [p for p in args.prompts for _ in range(args.n)]
        seeds = [args.seed + i for _ in args.prompts for i in range(args.n)]
        rows.append(generate(gm.G, gm.clip, prompts, seeds, 64).reshape(len(args.prompts), args.n, 3, 64, 64))
    images, labels = [], []
    for p_i, prompt in enumerate(args.prompts):
        for r_i, row in enumerate(rows):
            images.append(row[p_i])
            name = "real" if r_i == 0 else names[r_i - 1]
            labels += [f"{name}: {prompt}"] + [""] * (args.n - 1)
    grid = make_grid(torch.cat(images), ncol=args.n, pad=1, min_side=96, labels=labels)
    save_png(args.out, grid, {"kind": "grid", "rows": ["real", *names], "prompts": args.prompts}, sidecar=False)
    print(args.out)


if __name__ == "__main__":
    main()
