"""Seconds to a judged-correct image: the default preset vs the CLIPAG notebook recipe (and the retrieval preset),
on the same CLIP and prompts, in one run; prints one JSON object.

Every setting generates the same prompts (:func:`clip_t2i.metrics.judges.prompts.shapes_eval_prompts`: colour x
shape x position with a random size word, every held-out triple included), one seed each, all prompts batched in
one ``generate`` call per setting. Images are judged by the default, un-foolable analysis-by-synthesis judge
(``all`` = colour + shape + position; an image it does not recognise is wrong). Timing covers initialisation (incl.
a retrieval pool pick) and optimisation; loading the CLIP and fitting a GMM prior (one-time, cached) happen before
the clock starts. ``seconds_per_correct`` = seconds per image / judged-all accuracy (null when nothing is right);
``speedup`` = the reference's seconds_per_correct / the default's (goal: ≥ 5 at equal or better accuracy).

The CLIPAG recipe costs ~50 s per image on the patch-8 tower, so ``--reference-n K`` runs *every* setting on the
same stratified subset of K of the n prompts (every (n/K)-th, held-out triples included) and computes ``speedup`` there
(same prompts, same batch size); the default and the ``--also`` presets are then also run on all n prompts
(``default_full``, ``others_full``). ``--out FILE`` rewrites FILE (atomically) after every setting, so a run that is
stopped keeps what it measured; the last line printed is the complete object.

Usage: ``python benchmarks/generate_speed.py [--model shapes-clipag] [--n 100] [--reference-n 25] [--preset draw]
[--reference-preset clipag] [--also retrieval] [--threads T] [--out FILE]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("CLIP_T2I_CACHE", "off")  # time the whole start (prior fit, pool scoring), not a warm cache

import argparse
import platform
import time
from pathlib import Path

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.metrics.judges.prompts import shapes_eval_prompts
from clip_t2i.metrics.judges.scoring import judge_shapes
from clip_t2i.pipeline import generate
from clip_t2i.renderers.presets import DEFAULT_PRESET, get_preset
from clip_t2i.renderers.priors import fit_prior, world_prior
from clip_t2i.utils import jsonout
from clip_t2i.utils.io import atomic_write_text


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


def subset_indices(n: int, k: int) -> list[int]:
    """``k`` of ``range(n)`` spread evenly (every (n/k)-th, starting at 0); all of them when ``k >= n``."""
    if k >= n:
        return list(range(n))
    return sorted({round(i * n / k) for i in range(k)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-clipag")
    ap.add_argument("--n", type=int, default=100, help="prompts (one seed each)")
    ap.add_argument("--reference-n", type=int, default=None, help="prompts every setting runs on (default: n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default=DEFAULT_PRESET, help="the setting under test (default: the default preset)")
    ap.add_argument("--reference-preset", default="clipag", help="the CLIPAG notebook recipe")
    ap.add_argument("--also", default="retrieval", help="comma list of further presets reported alongside ('' = none)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="JSON file rewritten after every setting")
    args = ap.parse_args()
    if args.n < 1 or (args.reference_n is not None and args.reference_n < 1):
        raise SystemExit("error: --n and --reference-n must be at least 1")
    if args.out is not None and args.out.exists():
        raise SystemExit(f"error: {args.out} exists; choose another --out (it is never overwritten)")
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = load_clip(args.model)
    items = shapes_eval_prompts(args.n, seed=0)
    prompts = [it["prompt"] for it in items]
    heldout = torch.tensor([it["heldout"] for it in items])
    sub = subset_indices(args.n, args.reference_n or args.n)
    sub_prompts, sub_heldout = [prompts[i] for i in sub], heldout[sub]
    also = list(filter(None, args.also.split(",")))
    out: dict = {
        "model": args.model,
        "n_prompts": args.n,
        "n_heldout": int(heldout.sum()),
        "compared_on": {"n_prompts": len(sub), "n_heldout": int(sub_heldout.sum()), "indices": sub},
        "all_attributes": "colour+shape+position",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "complete": False,
    }

    def save() -> None:
        if args.out is not None:
            atomic_write_text(args.out, jsonout.dumps(out) + "\n")

    save()
    out["reference"] = run_setting(clip, args.reference_preset, sub_prompts, sub_heldout, args.seed)
    save()

    def run_default_and_others(suffix: str, ps: list[str], ho: torch.Tensor) -> None:
        """``default{suffix}`` and ``others{suffix}`` on prompts ``ps``, saved after each setting."""
        out["default" + suffix] = run_setting(clip, args.preset, ps, ho, args.seed)
        save()
        others = out["others" + suffix] = {}
        for p in also:
            others[p] = run_setting(clip, p, ps, ho, args.seed)
            save()

    run_default_and_others("", sub_prompts, sub_heldout)
    ref, new = out["reference"], out["default"]
    a, b = ref["seconds_per_correct"], new["seconds_per_correct"]
    out["speedup"] = round(a / b, 2) if a is not None and b is not None else None
    out["default_accuracy_at_least_reference"] = new["accuracy"]["all"] >= ref["accuracy"]["all"]
    out["goal"] = "speedup >= 5 with default_accuracy_at_least_reference"
    save()
    if len(sub) < args.n:
        run_default_and_others("_full", prompts, heldout)
    out["complete"] = True
    save()
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
