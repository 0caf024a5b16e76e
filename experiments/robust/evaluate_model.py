"""Evaluate robust-CLIP candidates: clean zero-shot, PGD robust accuracy, PAG, and a synthesis check.

Prints one JSON object per model (and appends it to ``--out`` if given). Everything is seeded.

Synthesis check (end-to-end, the generator-free text-to-image in miniature): for ``--prompts`` canonical
one-object captions, start from a dark-grey image (0.2) and take ``--synth-steps`` L2-normalised gradient
ascent steps of size ``--synth-lr`` on cos(f(x), g(prompt)), clamping to [0, 1]. The result is judged by
:func:`pixel_judge` (saturated pixels -> colour by nearest palette entry, centroid -> nearest position; the
background is low-saturation grey) and, if a ``shapes-judge`` exists in the zoo, by the CNN judge.

Usage: python experiments/robust/evaluate_model.py MODEL [MODEL ...] [--eps 1.5,4,8] [--out results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.data.shapes import COLOUR_RGB, COLOURS, POSITION_CENTRES, POSITIONS, ShapesWorld
from clip_t2i.metrics.zeroshot import zero_shot_shapes
from clip_t2i.robust.attacks import robust_accuracy
from clip_t2i.robust.evaluate import labelled_eval_sets, zero_shot_classifier
from clip_t2i.robust.finetune import effective_eps
from clip_t2i.robust.pag import pag_alignment


def pixel_judge(images: torch.Tensor, thresh: float = 0.25) -> tuple[list[int | None], list[int | None]]:
    """(colour index, position index) per image from saturated pixels; None if nothing is saturated."""
    rgb = torch.tensor(COLOUR_RGB)
    centres = torch.tensor(POSITION_CENTRES)
    cols, poss = [], []
    S = images.shape[-1]
    ys, xs = torch.meshgrid((torch.arange(S) + 0.5) / S, (torch.arange(S) + 0.5) / S, indexing="ij")
    for im in images:
        sat = im.max(0).values - im.min(0).values
        mask = sat > thresh
        if mask.sum() < 4:
            cols.append(None)
            poss.append(None)
            continue
        w = sat * mask
        mean = (im * w).flatten(1).sum(1) / w.sum()
        cols.append(int(((rgb - mean) ** 2).sum(1).argmin()))
        c = torch.stack([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
        poss.append(int(((centres - c) ** 2).sum(1).argmin()))
    return cols, poss


def synthesize(clip, prompts: list[str], steps: int = 80, lr: float = 0.5, start: float = 0.2) -> torch.Tensor:
    """L2-normalised gradient ascent on cos(f(x), g(prompt)) from a flat dark-grey image."""
    S = clip.image_size
    with torch.no_grad():
        text = clip.encode_text(prompts)
    x = torch.full((len(prompts), 3, S, S), start)
    for _ in range(steps):
        x.requires_grad_(True)
        sim = (clip.encode_image(x) * text).sum()
        (g,) = torch.autograd.grad(sim, x)
        with torch.no_grad():
            g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x = (x + lr * g).clamp(0, 1)
    return x.detach()


def synth_check(clip, n_prompts: int = 30, seed: int = 0, steps: int = 80, lr: float = 0.5) -> dict:
    world = ShapesWorld(size=clip.image_size, level="one", split="all")
    combos = world.all_combinations()
    caps = world.canonical_caption_list()
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(len(caps), generator=g)[:n_prompts].tolist()
    prompts = [caps[i] for i in labels]
    x = synthesize(clip, prompts, steps=steps, lr=lr)
    cols, poss = pixel_judge(x)
    want_c = [COLOURS.index(combos[i]["colour"]) for i in labels]
    want_p = [POSITIONS.index(combos[i]["position"]) for i in labels]
    ok_c = [a == b for a, b in zip(cols, want_c, strict=True)]
    ok_p = [a == b for a, b in zip(poss, want_p, strict=True)]
    out = {"colour": sum(ok_c) / n_prompts, "position": sum(ok_p) / n_prompts,
           "both": sum(a and b for a, b in zip(ok_c, ok_p, strict=True)) / n_prompts}
    try:
        from clip_t2i import zoo
        from clip_t2i.metrics.judge import judge_shapes

        if "shapes-judge" in zoo.list_zoo():
            up = torch.nn.functional.interpolate(x, size=64, mode="bilinear") if x.shape[-1] != 64 else x
            out["judge"] = judge_shapes(up, prompts).accuracy
    except Exception as e:  # noqa: BLE001
        out["judge_error"] = str(e)[:100]
    return out, x


def evaluate(name: str, eps_list: list[float], n_pag: int = 300, n_rob: int = 200, synth: bool = True,
             save_images: str | None = None) -> dict:
    t0 = time.time()
    clip = load_clip(name).eval()
    zs = zero_shot_shapes(clip, "one", n=500, with_retrieval=False)
    res = {"model": name, "clean_seen": zs["seen"]["exact"], "clean_heldout": zs["heldout"]["exact"],
           "attr_seen": {k: round(zs["seen"][k], 3) for k in ("colour", "shape", "size", "position")}}
    sets, prompts = labelled_eval_sets("shapes", clip.image_size, n=n_rob, seed=1234, splits=("seen",))
    clf = zero_shot_classifier(clip, prompts)
    x, y = sets["seen"]
    res["pgd10"] = {}
    for e in eps_list:
        res["pgd10"][f"{e:g}"] = robust_accuracy(
            clf, x, y, eps=effective_eps(e, clip.image_size), attack="pgd", steps=10, batch_size=n_rob,
            generator=torch.Generator().manual_seed(0))
    pag = pag_alignment(clip, n=n_pag, seed=0)
    res["pag"] = {k: round(v, 4) for k, v in pag["alignment"].items()}
    res["pag_smoothed"] = {s: round(v["mean"], 4) for s, v in pag["smoothed"].items()}
    if synth:
        res["synth"], images = synth_check(clip)
        if save_images:
            from torchvision.utils import save_image

            save_image(images, save_images, nrow=10)
    res["eval_s"] = round(time.time() - t0, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--eps", default="1.5,4,8")
    ap.add_argument("--n-pag", type=int, default=300)
    ap.add_argument("--n-rob", type=int, default=200)
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", default=None, help="save the synthesis grid of the (last) model here")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    eps = [float(e) for e in args.eps.split(",")]
    for m in args.models:
        r = evaluate(m, eps, args.n_pag, args.n_rob, not args.no_synth, args.images)
        line = json.dumps(r)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
