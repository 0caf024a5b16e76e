"""Distributions of the shapes judge's evidence on the accept set and on the reject sets; prints one JSON object.

Accept set: ``--n`` renders balanced over all 240 combinations (world nuisance variation), clean and after the
legacy judge's training augmentation (``judge_augment``, strength 1). Reject sets: the probes of
:mod:`clip_t2i.metrics.judges.probes` and washed-out colours. Proposed thresholds: the augmented set's 0.5th
(``iou``, ``saturation``) / 99.5th (``residual``) percentiles, half its minimum contrast.

    python experiments/judges/calibrate.py [--n 2400] [--n-probe 400] [--out experiments/judges/calibration.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from clip_t2i.data.shapes import shapes_eval_set
from clip_t2i.metrics.judges.calibration import evidence_quantiles
from clip_t2i.metrics.judges.probes import all_probes, washed_out_renders
from clip_t2i.metrics.judges.synthesis import fit_shapes
from clip_t2i.metrics.judges.training import judge_augment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2400)
    ap.add_argument("--n-probe", type=int, default=400)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", default="experiments/judges/calibration.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = shapes_eval_set("one", "all", n=args.n, seed=args.seed)
    sets = {
        "clean": data["image"],
        "augmented": judge_augment(data["image"], torch.Generator().manual_seed(args.seed)),
        **all_probes(args.n_probe, seed=args.seed),
        "washed_out": washed_out_renders(args.n_probe, seed=args.seed)["image"],
    }
    fits = {k: fit_shapes(v) for k, v in sets.items()}
    aug = fits["augmented"]
    proposal = {
        "min_iou": float(aug.iou.quantile(0.005)),
        "max_residual": float(aug.residual.quantile(0.995)),
        "min_saturation": float(aug.saturation.quantile(0.005)),
        "min_contrast": float(aug.contrast.min()) / 2,
        "hue_distance_q995": float(aug.hue_distance.quantile(0.995)),
    }
    out = {
        "n_accept": args.n,
        "n_probe": args.n_probe,
        "seed": args.seed,
        "proposal": {k: round(v, 4) for k, v in proposal.items()},
        "evidence": {k: evidence_quantiles(f) for k, f in fits.items()},
    }
    text = json.dumps(out, indent=1)
    Path(args.out).write_text(text + "\n")
    print(json.dumps(out["proposal"]))


if __name__ == "__main__":
    main()
