"""Judged accuracy of one generation setting on the 100-prompt shapes benchmark; prints one JSON object.

Prompts: :func:`clip_t2i.metrics.judge.shapes_eval_prompts` (100 colour x shape x position triples with a random
size word, all 12 held-out triples included), one seed each (seed = prompt index + ``--seed``). Images are
judged by the zoo ``shapes-judge``; ``all`` = colour + shape + position (size reported on its own).
Seconds per image exclude loading the CLIP and fitting the GMM prior (both one-time costs).

Usage:
    python experiments/generation/eval_judged.py --model shapes-clip --preset clipag [--set KEY=VALUE ...]
        [--n 100] [--tag NAME] [--out DIR] [--log experiments/generation/results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.metrics.judge import judge_shapes, load_judge, shapes_eval_prompts
from clip_t2i.pipeline import generate
from clip_t2i.renderers.commands import _split_overrides
from clip_t2i.renderers.presets import get_preset
from clip_t2i.renderers.priors import fit_prior


def evaluate(model: str, preset: str, overrides: list[str], n: int = 100, seed: int = 0, out: str | None = None,
             renderer: str | None = None, clip=None) -> dict:
    """Generate the benchmark prompts with one setting and judge them."""
    clip = clip or load_clip(model)
    g_over, r_over = _split_overrides(overrides)
    cfg = get_preset(preset).with_overrides(guidance=g_over, renderer_options=r_over, renderer=renderer)
    if cfg.renderer_options.get("init") == "gmm":  # one-time cost, excluded from the timing
        fit_prior(cfg.renderer_options.get("gmm_data", "shapes"), cfg.renderer_options.get("gmm_resolution", 16))
    items = shapes_eval_prompts(n, seed=0)
    prompts = [it["prompt"] for it in items]
    # one seed per prompt (the same seed number for every prompt), all prompts in one batched call
    t0 = time.perf_counter()
    res = generate(prompts, model=clip, seeds=[seed], preset=preset, renderer=renderer, guidance=g_over,
                   renderer_options=r_over, out=out, progress=False)
    seconds = time.perf_counter() - t0
    report = judge_shapes(res.images, prompts, judge=load_judge("shapes-judge"))
    held = torch.tensor([it["heldout"] for it in items])
    ok = torch.tensor([r["all"] for r in report.per_image])
    return {
        "model": model, "preset": preset, "renderer": cfg.renderer, "overrides": overrides, "n": n,
        "steps": cfg.guidance.steps, "views": cfg.guidance.global_views + cfg.guidance.patch_views,
        "seconds_per_image": round(seconds / n, 3), "threads": torch.get_num_threads(),
        "accuracy": report.accuracy, "all_seen": round(float(ok[~held].float().mean()), 4),
        "all_heldout": round(float(ok[held].float().mean()), 4), "n_heldout": int(held.sum()),
        "mean_similarity": round(sum(r["similarity"] for r in res.records) / n, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-clip")
    ap.add_argument("--preset", default="clipag")
    ap.add_argument("--renderer", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE preset override")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=None, help="also write the PNGs here")
    ap.add_argument("--log", default="experiments/generation/results.jsonl")
    args = ap.parse_args()
    result = {"tag": args.tag, **evaluate(args.model, args.preset, args.overrides, args.n, args.seed, args.out,
                                          args.renderer)}
    line = json.dumps(result)
    print(line, flush=True)
    if args.log:
        with Path(args.log).open("a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
