"""Strokes benchmark: the same prompts, seed and preset with the vanilla and the robust CLIP; judged accuracy and
an independent CLIP score (shapes-clip-rn). Usage:
python experiments/renderers/strokes_eval.py [N_PROMPTS] [STEPS] [OUT_DIR] (images + JSON; default results/)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import clip_t2i
from clip_t2i.backbones import load_clip
from clip_t2i.metrics.clip_score import compute_clip_score
from clip_t2i.metrics.judge import judge_directory, shapes_eval_prompts

ROOT = Path(__file__).parent / "results"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else None
    root = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT
    prompts = [p["prompt"] for p in shapes_eval_prompts(n)]
    scorer = load_clip("shapes-clip-rn")
    summary: dict = {"n_prompts": n, "steps": steps, "preset": "strokes", "seed": 0, "models": {}}
    for model in ("shapes-clip", "shapes-clipag"):
        out = root / f"strokes-{model}"
        t0 = time.perf_counter()
        res = clip_t2i.generate(prompts, model=model, preset="strokes", seeds=[0], steps=steps, out=out, overwrite=True)
        secs = time.perf_counter() - t0
        report = judge_directory(out)
        cs = compute_clip_score(res.images, prompts, scorer, eval_model_id="shapes-clip-rn", guide_model_id=model)
        summary["models"][model] = {"seconds": round(secs, 1), "judge": report, "clip_score_rn": cs.score}
        (root / "strokes_eval.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
        print(model, json.dumps({k: v for k, v in summary["models"][model].items() if k != "judge"}), flush=True)


if __name__ == "__main__":
    main()
