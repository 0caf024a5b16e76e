"""VQGAN+CLIP benchmark: the judges' shapes prompts, one seed, the same preset with a vanilla and a robust CLIP,
plus the VQGAN alone (random codes decoded, no guidance) so the renderer's prior is not credited to the guide.

Judged by the analysis-by-synthesis judge (``judge_directory``: recognised, all attributes = colour + shape +
position); CLIP score from the independent ``shapes-clip-rn``. Writes ``results/vqgan_eval.json`` after every model
and a labelled grid (first ``--grid`` prompts; rows: prior, vanilla, robust).

    python experiments/renderers/vqgan_eval.py --n 100 --steps 40 --model shapes-clipag
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import clip_t2i
from clip_t2i.backbones import load_clip
from clip_t2i.metrics.clip_score import compute_clip_score
from clip_t2i.metrics.judge import judge_directory
from clip_t2i.metrics.judges.prompts import shapes_eval_prompts
from clip_t2i.renderers.base import build_renderer
from clip_t2i.renderers.outputs import image_stem, make_grid, save_png
from clip_t2i.renderers.presets import get_preset

sys.path.insert(0, str(Path(__file__).parent))
from strokes_eval import model_name  # noqa: E402

ROOT = Path(__file__).parent / "results"


def _summary(report: dict) -> dict:
    s = report["shapes"]
    return {"n": s["n"], "recognised": s["recognised"], "all": s["accuracy"]["all"], "accuracy": s["accuracy"]}


def prior_images(prompts: list[str], seed: int, preset: str, vqgan: str, size: int, out: Path) -> torch.Tensor:
    """The VQGAN alone: each prompt's start (the preset's init, seed ``seed``) decoded, no guidance step."""
    opts = {**get_preset(preset).renderer_options, "vqgan": vqgan}
    r = build_renderer("vqgan", size, opts)
    gens = [torch.Generator().manual_seed(seed) for _ in prompts]
    with torch.no_grad():
        images = r.render(r.init(len(prompts), gens))
    out.mkdir(parents=True, exist_ok=True)
    for i, (p, img) in enumerate(zip(prompts, images, strict=True)):
        rec = {"prompt": p, "seed": seed, "model": "none", "renderer": "vqgan", "preset": f"{preset} (0 steps)"}
        save_png(out / f"{image_stem(i, p, seed)}.png", img, rec)
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-clipag", help="robust CLIP (re-run with a better one later)")
    ap.add_argument("--vanilla", default="shapes-clip")
    ap.add_argument("--n", type=int, default=100, help="prompts (the first n of shapes_eval_prompts(100))")
    ap.add_argument("--steps", type=int, default=None, help="guidance steps (default: the preset's)")
    ap.add_argument("--preset", default="vqgan")
    ap.add_argument("--vqgan", default="shapes-vqgan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--grid-out", default="docs/vqgan-vanilla-vs-robust.png")
    ap.add_argument("--tag", default="", help="suffix of the result names")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    prompts = [p["prompt"] for p in shapes_eval_prompts(100)][: args.n]
    scorer = load_clip("shapes-clip-rn")
    tag = f"-{args.tag}" if args.tag else ""
    summary: dict = {
        "command": "python experiments/renderers/vqgan_eval.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "n_prompts": len(prompts),
        "seed": args.seed,
        "preset": get_preset(args.preset).to_dict(),
        "steps": args.steps,
        "vqgan": args.vqgan,
        "rows": {},
    }
    json_path = ROOT / f"vqgan_eval{tag}.json"
    size = 64
    rows: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    out = ROOT / f"vqgan{tag}-prior"
    rows["VQGAN alone"] = prior_images(prompts, args.seed, args.preset, args.vqgan, size, out)
    cs = compute_clip_score(rows["VQGAN alone"], prompts, scorer, eval_model_id="shapes-clip-rn", guide_model_id="none")
    summary["rows"]["prior"] = {
        "seconds": round(time.perf_counter() - t0, 1),
        **_summary(judge_directory(out)),
        "clip_score_rn": cs.score,
    }
    json_path.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    print("prior", json.dumps(summary["rows"]["prior"], default=float), flush=True)
    for model in (args.vanilla, args.model):
        name = model_name(model)
        out = ROOT / f"vqgan{tag}-{name}"
        t0 = time.perf_counter()
        res = clip_t2i.generate(
            prompts,
            model=model,
            preset=args.preset,
            seeds=[args.seed],
            steps=args.steps,
            renderer_options={"vqgan": args.vqgan},
            out=out,
            overwrite=True,
        )
        secs = time.perf_counter() - t0
        rows[name] = res.images
        cs = compute_clip_score(res.images, prompts, scorer, eval_model_id="shapes-clip-rn", guide_model_id=model)
        summary["rows"][name] = {
            "model": model,
            "seconds": round(secs, 1),
            **_summary(judge_directory(out)),
            "clip_score_rn": cs.score,
        }
        json_path.write_text(json.dumps(summary, indent=1, default=float) + "\n")
        print(model, json.dumps(summary["rows"][name], default=float), flush=True)
    k = min(args.grid, len(prompts))
    images = torch.cat([im[:k] for im in rows.values()])
    labels = [f"{name}: {p}" for name in rows for p in prompts[:k]]
    grid = make_grid(images, ncol=k, labels=labels)
    save_png(Path(args.grid_out), grid, {"kind": "grid", "rows": list(rows), "prompts": prompts[:k]}, sidecar=False)
    print("grid", args.grid_out, flush=True)


if __name__ == "__main__":
    main()
