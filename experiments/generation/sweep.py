"""Judged accuracy and speed of several generation settings on the same prompts (one JSON line each).

Settings are ``NAME=PRESET[,KEY=VALUE...]`` (preset field overrides, renderer options included;
``renderer=NAME`` switches the renderer). Results are appended to ``--log``.

Usage:
    python experiments/generation/sweep.py --model shapes-clip --n 40 \
        "ref=clipag" "fast=fast" "fast-gmm=fast,init=gmm"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from eval_judged import evaluate  # noqa: E402

from clip_t2i.backbones import load_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="+")
    ap.add_argument("--model", default="shapes-clip")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default="experiments/generation/results.jsonl")
    args = ap.parse_args()
    clip = load_clip(args.model)
    for spec in args.settings:
        name, _, rest = spec.partition("=")
        preset, *pairs = rest.split(",")
        renderer = None
        overrides = []
        for p in pairs:
            if p.startswith("renderer="):
                renderer = p.split("=", 1)[1]
            else:
                overrides.append(p)
        res = {"tag": name, **evaluate(args.model, preset, overrides, args.n, args.seed, None, renderer, clip=clip)}
        line = json.dumps(res)
        print(line, flush=True)
        with Path(args.log).open("a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
