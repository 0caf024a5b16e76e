"""Seconds per image and judged accuracy of the CLIPAG preset vs the fast preset, in one run; prints one JSON.

Both settings generate the same prompts (:func:`clip_t2i.metrics.judge.shapes_eval_prompts`: colour x shape x
position with a random size word, every held-out triple included), one seed each, all prompts batched in one
``generate`` call per setting, on the same loaded CLIP. Images are judged by the zoo ``shapes-judge``;
``all`` = colour + shape + position. Timing covers initialisation (incl. the GMM pool pick) and optimisation;
loading the CLIP and fitting the GMM prior (one-time, cached) happen before the clock starts.

Usage: ``python benchmarks/generate_speed.py [--model shapes-clipag] [--n 100] [--fast-preset fast]
[--threads T]``. The default model falls back to ``shapes-clip`` (noted in the JSON) until ``shapes-clipag``
is in the zoo.
"""

from __future__ import annotations

import os

os.environ.setdefault("CLIP_T2I_CACHE", "off")  # time the whole start (prior fit, pool scoring), not a warm cache

import argparse
import platform
import time

import torch

from clip_t2i import zoo
from clip_t2i.backbones import load_clip
from clip_t2i.metrics.judge import judge_shapes, load_judge, shapes_eval_prompts
from clip_t2i.pipeline import generate
from clip_t2i.renderers.presets import get_preset
from clip_t2i.renderers.priors import fit_prior, world_prior
from clip_t2i.utils import jsonout


def run_setting(clip, preset: str, prompts: list[str], heldout: torch.Tensor, judge, seed: int) -> dict:
    cfg = get_preset(preset)
    opts = cfg.renderer_options
    if opts.get("init") == "gmm":
        data = opts.get("gmm_data", "auto")
        fit_prior(world_prior(clip) or "shapes" if data == "auto" else data, opts.get("gmm_resolution", 16))
    t0 = time.perf_counter()
    res = generate(prompts, model=clip, seeds=[seed], preset=preset, progress=False)
    seconds = time.perf_counter() - t0
    report = judge_shapes(res.images, prompts, judge=judge)
    ok = torch.tensor([r["all"] for r in report.per_image])
    g = cfg.guidance
    return {
        "preset": preset,
        "renderer": cfg.renderer,
        "init": opts.get("init", "grey"),
        "steps": g.steps,
        "views_per_step": g.global_views + g.patch_views,
        "seconds_per_image": round(seconds / len(prompts), 4),
        "accuracy": report.accuracy,
        "all_seen": round(float(ok[~heldout].float().mean()), 4) if bool((~heldout).any()) else None,
        "all_heldout": round(float(ok[heldout].float().mean()), 4) if bool(heldout.any()) else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-clipag")
    ap.add_argument("--n", type=int, default=100, help="prompts (one seed each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-preset", default="clipag")
    ap.add_argument("--fast-preset", default="fast")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    note = None
    model = args.model
    if model == "shapes-clipag" and model not in zoo.list_zoo():
        model, note = "shapes-clip", "shapes-clipag is not in the zoo yet: measured with the vanilla shapes-clip"
    clip = load_clip(model)
    judge = load_judge("shapes-judge")
    items = shapes_eval_prompts(args.n, seed=0)
    prompts = [it["prompt"] for it in items]
    heldout = torch.tensor([it["heldout"] for it in items])
    ref = run_setting(clip, args.reference_preset, prompts, heldout, judge, args.seed)
    fast = run_setting(clip, args.fast_preset, prompts, heldout, judge, args.seed)
    out = {
        "model": model,
        "note": note,
        "n_prompts": args.n,
        "n_heldout": int(heldout.sum()),
        "all_attributes": "colour+shape+position",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "reference": ref,
        "fast": fast,
        "speedup": round(ref["seconds_per_image"] / max(fast["seconds_per_image"], 1e-9), 2),
        "fast_accuracy_at_least_reference": fast["accuracy"]["all"] >= ref["accuracy"]["all"],
    }
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
