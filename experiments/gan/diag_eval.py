"""Issue 16 diagnostics: per-prompt variety of a GAN's samples, read by the judge's renderer fit *with the realism
gates ignored* — so it is defined for blurry early samples too — beside the gated ``factor_diversity``.

For 24 seen prompts × 8 seeds (the GAN evaluator's selection rule, with seed 0) it reports, per nuisance factor,
the mean over prompts of std_over_seeds(generated) / std(real renders of the caption), and the fraction recognised.
Supplementary to ``clip-t2i eval-gan`` (the bar uses the gated numbers).

    python experiments/gan/diag_eval.py RUN_OR_MODEL [...] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch


def prompts_and_seeds(seed: int = 0) -> tuple[list[str], list[int]]:
    """The GAN evaluator's mPPD selection (24 seen prompts × 8 seeds) with ``EvalSpec(seed=seed)``. The rows in
    ``diagnose_results.jsonl`` use seed 0; ``clip-t2i eval-gan`` uses the spec's default 1234 (other prompts)."""
    from clip_t2i.data.shapes import ShapesWorld, shapes_eval_set
    from clip_t2i.gan.evaluate import EvalSpec, pick_ppd_prompts, ppd_set

    spec = EvalSpec(seed=seed)
    labels = shapes_eval_set("one", "train", n=spec.n_real, seed=spec.seed, size=64)["label"]
    captions = ShapesWorld(size=64, level="one", split="all").canonical_caption_list()
    return ppd_set(pick_ppd_prompts(labels, captions, spec), spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--raw", action="store_true", help="the raw (non-EMA) G of the run's last checkpoint instead")
    ap.add_argument("--log", default="experiments/gan/diagnose_results.jsonl", help="append every row here")
    args = ap.parse_args()
    from clip_t2i.gan import load_gan
    from clip_t2i.gan.sample import generate
    from clip_t2i.metrics.judges.diversity import RealFactorSpread, factor_diversity
    from clip_t2i.metrics.judges.scoring import default_shapes_judge, judge_shapes

    judge = default_shapes_judge()
    real = RealFactorSpread(judge, seed=0)
    prompts, seeds = prompts_and_seeds()
    rows = []
    for m in args.models:
        src = Path(m) / "final.safetensors" if Path(m).is_dir() and (Path(m) / "final.safetensors").exists() else m
        gm = load_gan(str(src))
        if args.raw:
            ck = sorted((Path(m) / "checkpoints").glob("step_*/state.pt"))[-1]
            gm.G.load_trainable_state_dict(torch.load(ck, weights_only=True)["G"])
        images = generate(gm.G, gm.clip, prompts, seeds, 64)
        rep = judge_shapes(images, prompts, judge)
        fit = rep.fit
        judged = [prompts[i] for i in rep.judged]
        gated = factor_diversity(fit, judged, judge, real=real)
        ungated_fit = dataclasses.replace(fit, recognised=torch.ones_like(fit.recognised))
        ungated = factor_diversity(ungated_fit, judged, judge, real=real)
        evals = Path(m) / "eval.jsonl"
        # the run's own last evaluation is of the EMA G: not copied into a raw-G row
        last = json.loads(evals.read_text().splitlines()[-1]) if evals.is_file() and not args.raw else {}
        rows.append(
            {
                "model": str(m) + (" (raw G)" if args.raw else ""),
                "steps": int(gm.meta.get("steps", 0)),
                **{k: last[k] for k in ("fid_judge", "fid_clip", "judge_all", "judge_recognised") if k in last},
                "recognised": round(float(fit.recognised.float().mean()), 4),
                "factor_diversity_gated": gated["mean"],
                "gated_prompts": gated["n_prompts"],
                "factor_diversity_fit_all": ungated["mean"],
                # the fitted rotation of a blob is arbitrary, so it inflates the ungated spread: also without it
                "fit_all_no_rotation": round(
                    sum(v for k, v in ungated["ratio"].items() if k != "rotation" and v is not None)
                    / sum(1 for k, v in ungated["ratio"].items() if k != "rotation" and v is not None),
                    4,
                ),
                "fit_all_ratio": ungated["ratio"],
                "mean_iou": round(float(fit.iou.mean()), 4),
            }
        )
    if args.log:
        with open(args.log, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
