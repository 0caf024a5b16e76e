"""How much do the seeds of one prompt differ when a CLIP's gradients draw? (issue 13, session 17)

Generates ``--seeds`` seeds of each of ``--prompts`` development prompts with a preset (default ``draw``),
judges them, and reports the judge's ``factor_diversity`` (per prompt, the spread of the fitted nuisance factors
of the recognised images as a ratio to real renders of the same caption; the GAN evaluation's measure) next to
judged accuracy, then writes a grid (one row per prompt). Appends one JSON line to ``--log``.

    python experiments/robust/draw_seed_spread.py --model shapes-clipag [--set renderer.init_noise=0.1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from clip_t2i.metrics.judges.diversity import factor_diversity
from clip_t2i.metrics.judges.prompts import shapes_eval_prompts
from clip_t2i.metrics.judges.scoring import judge_shapes
from clip_t2i.pipeline import generate
from clip_t2i.renderers.outputs import make_grid, save_png

sys.path.insert(0, str(Path(__file__).parent))
from draw_eval import parse_sets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--preset", default="draw")
    ap.add_argument("--prompts", type=int, default=8, help="the first P prompts of the development draw")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--prompt-seed", type=int, default=1, help="1 = the development prompts (0 is the benchmark)")
    ap.add_argument("--set", action="append", default=[], help="guidance.KEY=JSON or renderer.KEY=JSON")
    ap.add_argument("--grid", default=None, help="PNG path of the grid (default: beside the log)")
    ap.add_argument("--log", default="experiments/robust/draw_seed_spread.jsonl")
    args = ap.parse_args()
    if args.prompts < 1 or args.seeds < 2:
        ap.error("--prompts must be >= 1 and --seeds >= 2 (a spread needs two seeds)")
    torch.set_num_threads(1)
    guidance, options = parse_sets(args.set)
    prompts = [it["prompt"] for it in shapes_eval_prompts(args.prompts, seed=args.prompt_seed)]
    res = generate(
        prompts,
        model=args.model,
        seeds=list(range(args.seeds)),
        preset=args.preset,
        guidance=guidance or None,
        renderer_options=options or None,
        progress=False,
    )
    x = res.images  # prompt-major: all seeds of prompt 0, then prompt 1, ...
    judged = [p for p in prompts for _ in range(args.seeds)]
    rep = judge_shapes(x, judged)
    div = factor_diversity(rep.fit, judged)
    line = {
        "model": args.model,
        "preset": args.preset,
        "set": args.set,
        "prompts": args.prompts,
        "seeds": args.seeds,
        "prompt_seed": args.prompt_seed,
        "all": round(float(rep.accuracy["all"]), 4),
        "recognised": round(float(rep.accuracy["recognised"]), 4),
        "factor_diversity": div["mean"],
        "factor_diversity_capped": div["mean_capped"],
        "ratio": div["ratio"],
        "n_prompts_scored": div["n_prompts"],
    }
    grid = Path(args.grid) if args.grid else Path(args.log).with_suffix("") / f"{Path(args.model).stem}.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    save_png(grid, make_grid(x, args.seeds), {"prompts": json.dumps(prompts)}, sidecar=False)
    line["grid"] = str(grid)
    print(json.dumps(line), flush=True)
    with open(args.log, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
