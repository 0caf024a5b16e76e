"""Best of K seeds, picked by the guide's own similarity (issue 13, session 17).

For each prompt, K seeds are generated with a preset; every image is judged, and per prompt the image with the
highest similarity to the prompt *under the guiding CLIP* (the generation record's ``similarity``; the judge is
never consulted for the pick) is kept. Reported: judged accuracy of one seed (mean over the K), of the pick, and
of an oracle that keeps any correct seed (an upper bound no method here reaches), plus the seconds per picked image.

    python experiments/robust/best_of_eval.py --model shapes-clipag --n 40 --k 4 --prompt-seed 1 \\
        [--set renderer.init_noise=0.05]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from clip_t2i.metrics.judges.prompts import shapes_eval_prompts
from clip_t2i.metrics.judges.scoring import judge_shapes
from clip_t2i.pipeline import generate

sys.path.insert(0, str(Path(__file__).parent))
from draw_eval import parse_sets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--preset", default="draw")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k", type=int, default=4, help="seeds per prompt (seed .. seed + k - 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prompt-seed", type=int, default=1, help="1 = the development prompts (0 is the benchmark)")
    ap.add_argument("--set", action="append", default=[], help="guidance.KEY=JSON or renderer.KEY=JSON")
    ap.add_argument("--tag", default="")
    ap.add_argument("--log", default="experiments/robust/best_of.jsonl")
    args = ap.parse_args()
    if args.n < 1 or args.k < 1:
        ap.error("--n and --k must be >= 1")
    torch.set_num_threads(1)
    guidance, options = parse_sets(args.set)
    items = shapes_eval_prompts(args.n, seed=args.prompt_seed)
    prompts = [it["prompt"] for it in items]
    held = torch.tensor([it["heldout"] for it in items])
    t0 = time.perf_counter()
    res = generate(
        prompts,
        model=args.model,
        seeds=list(range(args.seed, args.seed + args.k)),
        preset=args.preset,
        guidance=guidance or None,
        renderer_options=options or None,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    judged = [p for p in prompts for _ in range(args.k)]  # prompt-major, as generate returns them
    assert [r["prompt"] for r in res.records] == judged
    rep = judge_shapes(res.images, judged)
    ok = torch.tensor([bool(r["all"]) for r in rep.per_image]).view(args.n, args.k)
    rec = torch.tensor([bool(r["recognised"]) for r in rep.per_image]).view(args.n, args.k)
    sim = torch.tensor([float(r["similarity"]) for r in res.records]).view(args.n, args.k)
    pick = sim.argmax(1)
    rows = torch.arange(args.n)
    picked = ok[rows, pick]
    line = {
        "model": args.model,
        "preset": args.preset,
        "set": args.set,
        "tag": args.tag,
        "n": args.n,
        "k": args.k,
        "seed": args.seed,
        "prompt_seed": args.prompt_seed,
        "one_seed_all": round(float(ok.float().mean()), 4),
        "one_seed_recognised": round(float(rec.float().mean()), 4),
        "picked_all": round(float(picked.float().mean()), 4),
        "picked_recognised": round(float(rec[rows, pick].float().mean()), 4),
        "picked_all_heldout": round(float(picked[held].float().mean()), 4) if held.any() else None,
        "oracle_all": round(float(ok.any(1).float().mean()), 4),
        "prompts_with_mixed_seeds": int((ok.any(1) & ~ok.all(1)).sum()),
        "seconds_per_picked_image": round(seconds / args.n, 3),
    }
    print(json.dumps(line), flush=True)
    with open(args.log, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
