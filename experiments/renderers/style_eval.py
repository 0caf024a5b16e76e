"""Style benchmark: same contents, colour texts, seed and settings with shapes-clip vs shapes-clipag.

Hit = dominant hue of the output is the asked colour; content kept = Sobel edge correlation with the content >= 0.5
(fixed before measuring). Also shapes-clip-rn CLIP score of "a <colour> image". Usage:
style_eval.py [STEPS] [LOSS] [--models A,B,...] [--tag T] [--dev] [--set KEY=JSON ...] (a model file's folder names
its row). ``--dev`` swaps in the development contents (tune there, report on the benchmark contents); ``--set``
overrides any StyleConfig field (e.g. ``--set lr=2e-3``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.renderers.outputs import make_grid, save_png
from clip_t2i.renderers.style import StyleConfig, dominant_colour, edge_correlation, load_content, run_style

sys.path.insert(0, str(Path(__file__).parent))
from strokes_eval import key_json, model_name  # noqa: E402

ROOT = Path(__file__).parent / "results"
CONTENTS = ("skimage:astronaut", "skimage:coffee", "shapes:1", "shapes:2")
# for tuning; never reported as the benchmark
DEV_CONTENTS = ("skimage:chelsea", "skimage:rocket", "shapes:3", "shapes:4")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
KEEP = 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("steps", nargs="?", type=int, default=30)
    ap.add_argument("loss", nargs="?", default="ssim")
    ap.add_argument("--models", default="shapes-clip,shapes-clipag")
    ap.add_argument("--tag", default="", help="suffix of the result names")
    ap.add_argument("--dev", action="store_true", help="the development contents instead of the benchmark's")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a StyleConfig field")
    args = ap.parse_args()
    steps, loss, tag = args.steps, args.loss, f"-{args.tag}" if args.tag else ""
    over = key_json(args.set, "--set")
    fixed = {"steps": steps, "content_loss": loss, "snapshot_every": 0}
    try:
        cfg = StyleConfig(**{"size": 64, "patches": 8, **over, **fixed})
    except TypeError as e:
        raise SystemExit(f"error: --set: {e}") from None
    cfg.validate()
    contents = DEV_CONTENTS if args.dev else CONTENTS
    rn = load_clip("shapes-clip-rn")
    summary: dict = {
        "steps": steps,
        "content_loss": loss,
        "size": cfg.size,
        "patches": cfg.patches,
        "settings": over,
        "contents": list(contents),
        "keep_threshold": KEEP,
        "models": {},
    }
    for model in args.models.split(","):
        clip = load_clip(model)
        name = model_name(model)
        rows, imgs = [], []
        for c in contents:
            content = load_content(c, cfg.size)
            for col in COLOURS:
                res = run_style(clip, content, col, cfg, seed=0)
                dom = dominant_colour(res.image)[0]
                corr = float(edge_correlation(res.image, content)[0])
                with torch.no_grad():
                    e = torch.nn.functional.normalize(rn.encode_image(res.image).float(), dim=-1)
                    t = torch.nn.functional.normalize(rn.encode_text([f"a {col} image"]).float(), dim=-1)
                rows.append({"content": c, "colour": col, "dominant": dom, "edge_corr": corr, "rn_cos": float(e @ t.T)})
                imgs.append(res.image)
        hit = [r["dominant"] == r["colour"] for r in rows]
        kept = [r["edge_corr"] >= KEEP for r in rows]
        summary["models"][name] = {
            "model": model,
            "hue_hit": sum(hit) / len(rows),
            "content_kept": sum(kept) / len(rows),
            "hit_and_kept": sum(h and k for h, k in zip(hit, kept, strict=True)) / len(rows),
            "mean_edge_corr": sum(r["edge_corr"] for r in rows) / len(rows),
            "rn_clip_score": 100 * sum(r["rn_cos"] for r in rows) / len(rows),
            "rows": rows,
        }
        save_png(
            ROOT / f"style-grid-{name}-{loss}{tag}.png", make_grid(torch.cat(imgs), len(COLOURS)), {}, sidecar=False
        )
        (ROOT / f"style_eval_{loss}{tag}.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(model, {k: v for k, v in summary["models"][name].items() if k != "rows"}, flush=True)


if __name__ == "__main__":
    main()
