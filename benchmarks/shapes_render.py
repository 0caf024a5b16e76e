"""Throughput of the shapes world: scene sampling + rendering (no captions), one-object level.

Prints one JSON object. ``images_per_s`` renders into a reused output buffer, as :class:`ShapesStream` does in
the main process; ``images_per_s_fresh_alloc`` allocates a new output tensor every batch (on VMs where
first-touching memory is slow this is dominated by page faults; ``THP_MEM_ALLOC_ENABLE=1`` helps there).
Median of ``--runs`` timed batches after ``--warmup`` untimed ones; one torch thread unless ``--threads``.

    python benchmarks/shapes_render.py [--size 64] [--batch 2048] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from clip_t2i.data.shapes import ShapesWorld


def _rate(world: ShapesWorld, batch: int, runs: int, warmup: int, reuse: bool, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    buf = torch.empty(batch, 3, world.size, world.size) if reuse else None
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        world.render(world.sample_scenes(batch, g), out=buf)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main() -> None:
    """Parse arguments, time, print the JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the per-op tensors are small, and OpenMP threads collapse "
        "when other processes compete for the cores; 0 = torch's default)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    world = ShapesWorld(size=args.size, level="one", split="train")
    reused = _rate(world, args.batch, args.runs, args.warmup, True, args.seed)
    fresh = _rate(world, args.batch, args.runs, args.warmup, False, args.seed)
    print(
        json.dumps(
            {
                "images_per_s": round(reused, 1),
                "images_per_s_fresh_alloc": round(fresh, 1),
                "size": args.size,
                "batch": args.batch,
                "threads": torch.get_num_threads(),
                "level": "one",
                "runs": args.runs,
            }
        )
    )


if __name__ == "__main__":
    main()
