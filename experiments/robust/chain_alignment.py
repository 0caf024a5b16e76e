"""Diagnostic (issue 13): does the gradient point at the picture *where the synthesis goes*?

Run the ``draw`` synthesis's own steps (``align_proto.advance``: L2-normalised ascent on cos(f(x), g(c)), cosine
step schedule from 0.5, one rolled view) from neutral starts for ``--n`` seen captions, and at several ages read

* ``cos_sample``  = mean_j cos(∇ₓ cos(f(x), g(c)), x*_j − x), over 32 renders x*_j of the caption drawn on the
  chain's own flat background (per-channel median), i.e. "does the step draw the render?";
* ``cos_mean``    = cos(∇, mean_j x*_j − x), the same against the caption's mean render;
* ``ceiling``     = mean_j cos(mean_j x*_j − x, x*_j − x), the best any single direction can do against a sample;
* ``mass``        = Σ∇ / Σ|∇|, the gradient's net brightness (0 for a contrast-invariant tower from a flat start).

    python experiments/robust/chain_alignment.py --model M [--n 16] [--seed 5]   # appends to chain_alignment.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.data.shapes import ShapesWorld
from clip_t2i.robust.alignment import flat_cos, neutral_starts

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("align_proto", HERE / "align_proto.py")
align_proto = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(align_proto)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--ages", default="0,5,15,30,45,60")
    ap.add_argument("--log", default=str(HERE / "chain_alignment.jsonl"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    clip = load_clip(args.model).eval()
    world = ShapesWorld(size=clip.image_size, level="one", split="train")
    with torch.no_grad():
        text = clip.encode_text(world.canonical_caption_list()).float()
    g = torch.Generator().manual_seed(args.seed)
    allowed = world.allowed_labels()
    lab = allowed[torch.randint(0, len(allowed), (args.n,), generator=g)]
    opts = argparse.Namespace(policy_advance=1, policy_max_age=60, policy_lr=0.5)
    ages = sorted(int(a) for a in args.ages.split(","))
    x = neutral_starts(args.n, clip.image_size, g)
    age = torch.zeros(args.n, dtype=torch.long)
    rows = {}
    for k in range(ages[-1] + 1):
        if k in ages:
            xr = x.clone().requires_grad_(True)
            (gr,) = torch.autograd.grad((clip.encode_image(xr, normalize=True) * text[lab]).sum(), xr)
            tg = []
            for _ in range(32):
                tg.append(world.render(align_proto.on_own_background(world.sample_scenes(args.n, g, lab), x)) - x)
            tg = torch.stack(tg)
            mean_t = tg.mean(0)
            rows[k] = {
                "cos_sample": round(float(torch.stack([flat_cos(gr, t) for t in tg]).mean()), 4),
                "cos_mean": round(float(flat_cos(gr, mean_t).mean()), 4),
                "ceiling": round(float(torch.stack([flat_cos(mean_t, t) for t in tg]).mean()), 4),
                "mass": round(float((gr.flatten(1).sum(1) / gr.flatten(1).abs().sum(1)).mean()), 4),
            }
        x = align_proto.advance(clip, x, text[lab], age, opts, g)
        age += 1
    rec = {"model": args.model, "n": args.n, "seed": args.seed, "by_age": rows}
    print(json.dumps(rec))
    with open(args.log, "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
