"""Seconds to a judged-correct image: the default preset vs the CLIPAG notebook recipe (and the retrieval preset),
on the same CLIP and prompts, in one run; prints one JSON object.

Every setting generates the same prompts (:func:`clip_t2i.metrics.judges.prompts.shapes_eval_prompts`: colour x
shape x position with a random size word, every held-out triple included), one seed each, all prompts batched in
one ``generate`` call per setting. Images are judged by the default, un-foolable analysis-by-synthesis judge
(``all`` = colour + shape + position; an image it does not recognise is wrong). Timing covers initialisation (incl.
a retrieval pool pick) and optimisation; loading the CLIP and fitting a GMM prior (one-time, cached) happen before
the clock starts. ``seconds_per_correct`` = seconds per image / judged-all accuracy (null when nothing is right);
``speedup`` = the reference's seconds_per_correct / the default's (goal: ≥ 5 at equal or better accuracy).

Usage: ``python benchmarks/generate_speed.py [--model shapes-clipag] [--n 100] [--preset draw]
[--reference-preset clipag] [--also retrieval] [--threads T]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("CLIP_T2I_CACHE", "off")  # time the whole start (prior fit, pool scoring), not a warm cache

import argparse
import platform
import time

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.metrics.judges.prompts import shapes_eval_prompts
from clip_t2i.metrics.judges.scoring import judge_shapes
from clip_t2i.pipeline import generate
from clip_t2i.renderers.presets import DEFAULT_PRESET, get_preset
from clip_t2i.renderers.priors import fit_prior, world_prior
from clip_t2i.utils import jsonout


def run_setting(clip, preset: str, prompts: list[str], heldout: torch.Tensor, seed: int) -> dict:
    cfg = get_preset(preset)
    opts = cfg.renderer_options
    if opts.get("init") == "gmm":
        data = opts.get("gmm_data", "auto")
        fit_prior(world_prior(clip) or "shapes" if data == "auto" else data, opts.get("gmm_resolution", 16))
    t0 = time.perf_counter()
    res = generate(prompts, model=clip, seeds=[seed], preset=preset, progress=False)
    seconds = time.perf_counter() - t0
    report = judge_shapes(res.images, prompts)
    ok = torch.tensor([bool(r["all"]) for r in report.per_image])
    g = cfg.guidance
    per_image = seconds / len(prompts)
    acc = report.accuracy["all"]
    return {
        "preset": preset,
        "renderer": cfg.renderer,
        "init": opts.get("init", "grey"),
        "steps": g.steps,
        "views_per_step": g.global_views + g.patch_views,
        "seconds_per_image": round(per_image, 4),
        "seconds_per_correct": round(per_image / acc, 4) if acc > 0 else None,
        "judge": report.judge,
        "recognised": report.recognised,
        "accuracy": report.accuracy,
        "all_seen": round(float(ok[~heldout].float().mean()), 4) if bool((~heldout).any()) else None,
        "all_heldout": round(float(ok[heldout].float().mean()), 4) if bool(heldout.any()) else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-clipag")
    ap.add_argument("--n", type=int, default=100, help="prompts (one seed each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default=DEFAULT_PRESET, help="the setting under test (default: the default preset)")
    ap.add_argument("--reference-preset", default="clipag", help="the CLIPAG notebook recipe")
    ap.add_argument("--also", default="retrieval", help="comma list of further presets reported alongside ('' = none)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = load_clip(args.model)
    items = shapes_eval_prompts(args.n, seed=0)
    prompts = [it["prompt"] for it in items]
    heldout = torch.tensor([it["heldout"] for it in items])
    ref = run_setting(clip, args.reference_preset, prompts, heldout, args.seed)
    new = run_setting(clip, args.preset, prompts, heldout, args.seed)
    others = {p: run_setting(clip, p, prompts, heldout, args.seed) for p in filter(None, args.also.split(","))}
    a, b = ref["seconds_per_correct"], new["seconds_per_correct"]
    out = {
        "model": args.model,
        "n_prompts": args.n,
        "n_heldout": int(heldout.sum()),
        "all_attributes": "colour+shape+position",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "reference": ref,
        "default": new,
        "others": others,
        "speedup": round(a / b, 2) if a is not None and b is not None else None,
        "default_accuracy_at_least_reference": new["accuracy"]["all"] >= ref["accuracy"]["all"],
        "goal": "speedup >= 5 with default_accuracy_at_least_reference",
    }
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
