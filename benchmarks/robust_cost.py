"""Cost of robust fine-tuning relative to clean fine-tuning, side by side in one run; prints one JSON object.

Every variant runs the real training step (:class:`clip_t2i.robust.finetune.AdversarialStep`: targets,
attack, forward/backward, clipping, AdamW) on the same pre-rendered shapes batches and the same starting
model, text tower frozen:

* ``clean``  — attack ``none`` (clean fine-tuning with the same objective): the unit of cost;
* ``pgd-k``  — PGD-k inner maximisation (k = ``--pgd-steps``, default 3);
* ``fast``   — FGSM from a random start (one attack step);
* ``free-m`` — free adversarial training, ``m`` replays per minibatch (one backward per step);
* ``recipe`` — the configuration the zoo ``shapes-clipag`` was trained with (``--recipe-*``).

Variants are interleaved over ``--repeats`` rounds (the CPU is shared with other jobs) and each reports the
median seconds per optimizer step. ``ratio`` = s/step ÷ clean s/step. For the recipe, ``total_s`` is
s/step × its number of steps and ``total_ratio`` compares it with clean fine-tuning for the same number of
steps (the same optimizer schedule); ``batches_per_step`` shows that free AT sees 1/m new minibatches per
step.

Usage: ``python benchmarks/robust_cost.py [--model shapes-clip] [--batch-size 128] [--steps 6] [--repeats 3]
[--threads 2]``
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from typing import Any

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.data import make_stream
from clip_t2i.robust.finetune import (
    AdversarialStep,
    ImageTower,
    effective_eps,
    freeze_text_tower,
)
from clip_t2i.robust.objectives import get_objective
from clip_t2i.training.common import param_groups
from clip_t2i.utils import jsonout

# The recipe of the zoo model shapes-clipag (see experiments/robust/README.md): four stages of free AT (m = 4)
# with a clean term, ε = 6 (224 convention): 1600 steps at lr 1e-3 (clean weight 1), then 400 (2), 800 (4) and
# 400 (6) steps at lr 1e-4. The clean weight's value does not change the cost of a step.
RECIPE = {
    "objective": "clipag",
    "attack": "free",
    "free_replays": 4,
    "attack_steps": 1,
    "clean_weight": 1.0,
    "eps": 6.0,
    "steps": 1600 + 400 + 800 + 400,
}


def _variant(
    clip0,
    name: str,
    *,
    objective: str,
    attack: str,
    eps: float,
    attack_steps: int = 1,
    free_replays: int = 1,
    clean_weight: float = 0.0,
) -> dict[str, Any]:
    clip = copy.deepcopy(clip0)
    freeze_text_tower(clip)
    clip.train()
    tower = ImageTower(clip)
    opt = torch.optim.AdamW(param_groups(tower, 1e-4), lr=1e-5, betas=(0.9, 0.98), eps=1e-6)
    step = AdversarialStep(
        clip,
        tower,
        get_objective(objective),
        opt,
        attack=attack,
        eps=eps,
        attack_steps=attack_steps,
        clean_weight=clean_weight,
    )
    return {"name": name, "step": step, "replays": free_replays if attack == "free" else 1, "times": [], "k": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-clip", help="start model (falls back to random vit-t64)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant and round")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pgd-steps", type=int, default=3)
    ap.add_argument("--free-replays", type=int, default=4)
    ap.add_argument("--eps", type=float, default=RECIPE["eps"], help="224-convention L2 radius")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    try:
        clip0 = load_clip(args.model)
        model_name = args.model
    except Exception:  # noqa: BLE001 - the zoo model may not exist yet
        clip0, model_name = load_clip("vit-t64"), "vit-t64 (random init)"
    eps = effective_eps(args.eps, clip0.image_size)
    stream = iter(make_stream("shapes", size=clip0.image_size, batch_size=args.batch_size, seed=0))
    batches = [next(stream) for _ in range(args.steps + 2)]
    batches = [{**b, "image": b["image"].clone()} for b in batches]
    obj = RECIPE["objective"]
    variants = [
        _variant(clip0, "clean", objective=obj, attack="none", eps=eps),
        _variant(clip0, f"pgd-{args.pgd_steps}", objective=obj, attack="pgd", eps=eps, attack_steps=args.pgd_steps),
        _variant(clip0, "fast", objective=obj, attack="fast", eps=eps),
        _variant(
            clip0, f"free-{args.free_replays}", objective=obj, attack="free", eps=eps, free_replays=args.free_replays
        ),
        _variant(
            clip0,
            "recipe",
            objective=RECIPE["objective"],
            attack=RECIPE["attack"],
            eps=effective_eps(RECIPE["eps"], clip0.image_size),
            attack_steps=RECIPE["attack_steps"],
            free_replays=RECIPE["free_replays"],
            clean_weight=RECIPE["clean_weight"],
        ),
    ]
    for v in variants:  # warm-up (allocator, first-call overheads)
        v["step"]([batches[0]], step=0, eps=eps)
    for _ in range(args.repeats):
        for v in variants:
            for _ in range(args.steps):
                b = batches[1 + (v["k"] // v["replays"]) % (len(batches) - 1)]
                t0 = time.perf_counter()
                v["step"]([b], step=v["k"], eps=eps)
                v["times"].append(time.perf_counter() - t0)
                v["k"] += 1
    clean_s = statistics.median(variants[0]["times"])
    out: dict[str, Any] = {
        "model": model_name,
        "image_size": clip0.image_size,
        "batch_size": args.batch_size,
        "eps_224": args.eps,
        "eps_effective": round(eps, 4),
        "threads": args.threads,
        "timed_steps_per_variant": args.steps * args.repeats,
        "machine": platform.machine(),
    }
    for v in variants:
        s = statistics.median(v["times"])
        out[v["name"]] = {
            "s_per_step": round(s, 4),
            "ratio": round(s / clean_s, 3),
            "batches_per_step": round(1 / v["replays"], 3),
        }
    rec = out["recipe"]
    rec.update({k: RECIPE[k] for k in RECIPE})
    rec["total_s"] = round(rec["s_per_step"] * RECIPE["steps"], 1)
    rec["clean_total_s_same_steps"] = round(clean_s * RECIPE["steps"], 1)
    rec["total_ratio"] = round(rec["total_s"] / rec["clean_total_s_same_steps"], 3)
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
