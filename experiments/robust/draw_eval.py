"""Judge what a CLIP's gradients draw from a neutral start (issue 13): generate the judges' benchmark prompts with a
preset (default ``draw``: grey start, no views), judge them with the analysis-by-synthesis shapes judge, append one
JSON line to ``--log`` and write a labelled grid.

    python experiments/robust/draw_eval.py --model shapes-clipag --n 100 --seed 0 [--preset draw] \\
        [--set guidance.steps=80]

``--prompt-seed`` picks the benchmark's prompt draw (0 = the 100-prompt benchmark); ``--seed`` the image seed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from clip_t2i.metrics.judges.prompts import shapes_eval_prompts
from clip_t2i.metrics.judges.scoring import judge_shapes
from clip_t2i.pipeline import generate
from clip_t2i.renderers.outputs import make_grid, save_png


def parse_sets(items: list[str]) -> tuple[dict, dict]:
    guidance, options = {}, {}
    for item in items:
        key, sep, value = item.partition("=")
        where, dot, name = key.partition(".")
        if not (sep and dot and where in ("guidance", "renderer")):
            raise SystemExit(f"error: --set takes guidance.KEY=JSON or renderer.KEY=JSON, got {item!r}")
        try:
            (guidance if where == "guidance" else options)[name] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"error: --set {key}: {value!r} is not JSON (quote strings: {key}='\"text\"')") from None
    return guidance, options


def with_negatives(prompt: str, weight: float) -> str:
    """``prompt`` plus its shape and size alternatives as negative prompts of total weight ``-weight``."""
    from clip_t2i.data.shapes import SHAPES, SIZES

    words = prompt.split()
    alts = []
    for i, w in enumerate(words):
        for vocab in (SHAPES, SIZES):
            if w in vocab:
                alts += [" ".join(words[:i] + [o] + words[i + 1 :]) for o in vocab if o != w]
    return " | ".join([f"{prompt}:1"] + [f"{a}:{-weight / len(alts):.4f}" for a in alts])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--preset", default="draw")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-seeds", type=int, default=1, help="seeds seed .. seed+k-1 for every prompt")
    ap.add_argument("--prompt-seed", type=int, default=0)
    ap.add_argument("--renderer", default=None, help="override the preset's renderer (pixels, pyramid, ...)")
    ap.add_argument("--set", action="append", default=[], help="guidance.KEY=JSON or renderer.KEY=JSON")
    ap.add_argument("--tag", default="")
    ap.add_argument("--world", default="shapes", choices=["shapes", "digits"], help="digits: n images cycling 0..9")
    ap.add_argument(
        "--negatives",
        type=float,
        default=0.0,
        help="shapes only: add the caption with every other shape and the other size as negative prompts, "
        "total weight -NEGATIVES (the judge still reads the plain caption)",
    )
    ap.add_argument("--out", default="runs/draw_eval")
    ap.add_argument("--log", default="experiments/robust/draw_results.jsonl")
    args = ap.parse_args()
    if args.negatives and args.world != "shapes":
        ap.error("--negatives needs --world shapes (it swaps the caption's shape and size words)")
    torch.set_num_threads(1)
    if args.world == "digits":
        from clip_t2i.data.digits import canonical_caption

        items = [{"prompt": canonical_caption(i % 10), "heldout": False} for i in range(args.n)]
    else:
        items = shapes_eval_prompts(args.n, seed=args.prompt_seed)
    prompts = [it["prompt"] for it in items]
    held = torch.tensor([it["heldout"] for it in items]).repeat_interleave(args.n_seeds)
    guidance, options = parse_sets(args.set)
    name = f"{Path(args.model).parent.name or args.model}-{args.preset}{args.tag}-p{args.prompt_seed}-s{args.seed}"
    out = Path(args.out) / name
    t0 = time.perf_counter()
    specs = prompts if not args.negatives else [with_negatives(p, args.negatives) for p in prompts]
    res = generate(
        specs,
        model=args.model,
        seeds=list(range(args.seed, args.seed + args.n_seeds)),
        preset=args.preset,
        renderer=args.renderer,
        guidance=guidance or None,
        renderer_options=options or None,
        out=out,
        overwrite=True,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    judged = [p for p in prompts for _ in range(args.n_seeds)]
    if args.world == "digits":
        from clip_t2i.metrics.judges.scoring import judge_digits

        rep = judge_digits(res.images, judged)
    else:
        rep = judge_shapes(res.images, judged)
    per = rep.per_image
    ok = torch.tensor([r["all"] for r in per])

    def frac(key: str, mask: torch.Tensor | None = None) -> float:
        v = torch.tensor([bool(r[key]) for r in per])
        v = v if mask is None else v[mask]
        return round(float(v.float().mean()), 4) if len(v) else float("nan")

    line = {
        "model": args.model,
        "world": args.world,
        "preset": args.preset,
        "renderer": args.renderer,
        "set": args.set,
        "n": args.n,
        "seed": args.seed,
        "n_seeds": args.n_seeds,
        "prompt_seed": args.prompt_seed,
        "negatives": args.negatives,
        "seconds_per_image": round(seconds / len(judged), 3),
        **{k: round(float(v), 4) for k, v in rep.accuracy.items()},
        "all_seen": round(float(ok[~held].float().mean()), 4),
        "all_heldout": round(float(ok[held].float().mean()), 4) if held.any() else None,
        "recognised_heldout": frac("recognised", held) if held.any() else None,
        "grid": str(out / "grid.png"),
    }
    if args.world == "shapes":  # supplementary, NOT the bar: the fit's reading with the realism gates ignored
        fit = {}
        for key in ("colour", "shape", "position"):
            fit[key] = round(sum(r[f"fit_{key}"] == r[key] for r in per) / len(per), 4)
        fit["all"] = round(
            sum(all(r[f"fit_{k}"] == r[k] for k in ("colour", "shape", "position")) for r in per) / len(per), 4
        )
        line["fit_ignoring_gates"] = fit
        line["mean_iou"] = round(sum(r["iou"] for r in per) / len(per), 4)
        gates: dict[str, int] = {}
        for r in per:
            for gname in r["failed_gates"]:
                gates[gname] = gates.get(gname, 0) + 1
        line["failed_gates"] = gates
    prompts = judged
    k = min(len(prompts), 40)
    verdict = ["ok" if r["all"] else ("wrong" if r.get("recognised") else "unrecognised") for r in per[:k]]
    labels = [f"{p.removeprefix('a ')} [{v}]" for p, v in zip(prompts[:k], verdict, strict=True)]
    save_png(out / "grid.png", make_grid(res.images[:k], 8, labels=labels), {"grid": name}, sidecar=False)
    print(json.dumps(line), flush=True)
    with open(args.log, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
