"""Load test of ``clip-t2i serve``: ``--n`` concurrent requests on loopback; prints one JSON object.

Starts the app in this process (``--out`` a fresh temporary folder unless given) with the caps below, fires
``--n`` requests at ``/generate`` at once (4 in 5 small valid strokes drawings, 1 in 5 over a cap or empty), and
times ``GET /healthz`` throughout. Every request must complete or be refused with a message (over a cap, bad input,
queue full); ``lost`` must be 0; ``outputs.over_caps`` must be empty; ``server.max_running`` must not exceed
``--concurrency``. See :mod:`clip_t2i.web.load`.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/serve_load.py [--n 50] [--concurrency 1] [--max-queue 16]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50, help="concurrent requests")
    ap.add_argument("--steps", type=int, default=3, help="steps of each valid request")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--max-queue", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=50)
    ap.add_argument("--max-size", type=int, default=128)
    ap.add_argument("--max-images", type=int, default=2)
    ap.add_argument("--out", default=None, help="output folder of the app (default: a new temporary folder)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from clip_t2i.web.app import background_server
    from clip_t2i.web.jobs import ServeLimits
    from clip_t2i.web.load import load_test

    limits = ServeLimits(
        max_steps=args.max_steps,
        max_size=args.max_size,
        max_images=args.max_images,
        concurrency=args.concurrency,
        max_queue=args.max_queue,
    )
    with tempfile.TemporaryDirectory(prefix="clip-t2i-serve-load-") as tmp:
        out = args.out or os.path.join(tmp, "out")
        with background_server(out, limits) as (url, _):
            report = load_test(url, out, limits, n=args.n, steps=args.steps)
    report["load_average"] = list(os.getloadavg())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
