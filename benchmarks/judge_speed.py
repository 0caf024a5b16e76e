"""Seconds to judge 1,000 images with the default judges, one torch thread; prints one JSON object.

Shapes: ``--n`` 64x64 images through the analysis-by-synthesis judge (:class:`AbSShapesJudge`, fit + gates):
half clean world renders (all 240 combinations), half the same renders after the legacy judge's augmentation
(noise, blur, colour jitter: the fit works harder on them). Digits: ``--n`` 32x32 images (the test split,
cycled) through the robust classifier + realism gate. Median of ``--runs`` timed runs after one warm-up on 64
images (builds the fitter and loads the models).

    python benchmarks/judge_speed.py [--n 1000] [--runs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from clip_t2i.data.digits import DigitsDataset
from clip_t2i.data.shapes import shapes_eval_set
from clip_t2i.metrics.judges.scoring import default_digits_judge, default_shapes_judge
from clip_t2i.metrics.judges.training import judge_augment
from clip_t2i.utils import jsonout


def _time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clean = shapes_eval_set("one", "all", n=args.n // 2, seed=77)["image"]
    shapes = torch.cat([clean, judge_augment(clean, torch.Generator().manual_seed(77))])
    test = DigitsDataset(split="test", size=32).images.expand(-1, 3, -1, -1)
    digits = test.repeat(args.n // len(test) + 1, 1, 1, 1)[: args.n]
    sj, dj = default_shapes_judge(), default_digits_judge()
    sj.fit(shapes[:64])
    dj.verdict(digits[:64])
    s_shapes = _time(lambda: sj.fit(shapes), args.runs)
    s_digits = _time(lambda: dj.verdict(digits), args.runs)
    out = {
        "n": len(shapes),
        "threads": torch.get_num_threads(),
        "shapes_seconds": round(s_shapes, 2),
        "shapes_images_per_s": round(len(shapes) / s_shapes, 1),
        "digits_seconds": round(s_digits, 3),
        "digits_images_per_s": round(len(digits) / s_digits, 1),
        "goal_seconds": 60.0,
        "goal_met": bool(s_shapes <= 60.0 and s_digits <= 60.0),
        "runs": args.runs,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
