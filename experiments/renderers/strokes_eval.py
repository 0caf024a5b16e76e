"""Strokes benchmark: the same prompts, seed and preset with the vanilla and the robust CLIP; judged accuracy and
an independent CLIP score (shapes-clip-rn). Usage:
python experiments/renderers/strokes_eval.py [N_PROMPTS] [STEPS] [OUT_DIR] [--models A,B,...] [--tag T]
[--option KEY=JSON ...] (renderer options over the preset's, e.g. --option fill=true) [--first K] (only the first K of
the N prompts: the benchmark's own images for a grid)
(images + JSON; default results/; default models shapes-clip,shapes-clipag; a model file's folder names its row)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import clip_t2i
from clip_t2i.backbones import load_clip
from clip_t2i.metrics.clip_score import compute_clip_score
from clip_t2i.metrics.judge import judge_directory, shapes_eval_prompts

ROOT = Path(__file__).parent / "results"


def key_json(items: list[str], flag: str) -> dict:
    """``KEY=JSON`` items as a dict; a malformed item exits with a one-line error naming ``flag``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not (key and sep):
            raise SystemExit(f"error: {flag} takes KEY=JSON, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"error: {flag} {key}: {value!r} is not JSON (quote strings: {key}='\"text\"')") from None
    return out


def model_name(model: str) -> str:
    """A row name: the zoo name, or a model file's folder (``runs/align/sh4/final.safetensors`` → ``sh4``)."""
    p = Path(model)
    return p.parent.name if p.suffix == ".safetensors" else model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=100)
    ap.add_argument("steps", nargs="?", type=int, default=None)
    ap.add_argument("root", nargs="?", type=Path, default=ROOT)
    ap.add_argument("--models", default="shapes-clip,shapes-clipag")
    ap.add_argument("--tag", default="", help="suffix of the summary JSON's name")
    ap.add_argument("--option", action="append", default=[], help="renderer option KEY=JSON (repeatable)")
    ap.add_argument("--first", type=int, default=None, help="only the first K of the N prompts")
    args = ap.parse_args()
    options = key_json(args.option, "--option")
    n, steps, root = args.n, args.steps, args.root
    if args.first is not None and args.first < 1:
        raise SystemExit(f"error: --first takes a positive number of prompts, got {args.first}")
    prompts = [p["prompt"] for p in shapes_eval_prompts(n)][: args.first]
    scorer = load_clip("shapes-clip-rn")
    summary: dict = {
        "n_prompts": n,
        "steps": steps,
        "preset": "strokes",
        "options": options,
        "first": args.first,
        "seed": 0,
        "models": {},
    }
    for model in args.models.split(","):
        name = model_name(model)
        out = root / f"strokes-{name}"
        t0 = time.perf_counter()
        res = clip_t2i.generate(
            prompts,
            model=model,
            preset="strokes",
            seeds=[0],
            steps=steps,
            out=out,
            overwrite=True,
            renderer_options=options or None,
        )
        secs = time.perf_counter() - t0
        report = judge_directory(out)
        cs = compute_clip_score(res.images, prompts, scorer, eval_model_id="shapes-clip-rn", guide_model_id=model)
        summary["models"][name] = {
            "model": model,
            "seconds": round(secs, 1),
            "judge": report,
            "clip_score_rn": cs.score,
        }
        (root / f"strokes_eval{'-' + args.tag if args.tag else ''}.json").write_text(
            json.dumps(summary, indent=1, default=float) + "\n"
        )
        print(
            model,
            json.dumps({k: v for k, v in summary["models"][name].items() if k != "judge"}),
            flush=True,
        )


if __name__ == "__main__":
    main()
