"""Weight-space interpolation of two checkpoints of one architecture (WiSE-FT, Wortsman et al. 2022).

theta = (1 - alpha) * theta_a + alpha * theta_b, tensor by tensor; alpha 0 gives A, alpha 1 gives B.
The output keeps A's metadata (config), which must equal B's.

    python experiments/robust/interpolate.py A.safetensors B.safetensors --alpha 0.5 --out OUT.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from clip_t2i.utils.io import atomic_write


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if not 0.0 <= args.alpha <= 1.0:
        sys.exit("error: --alpha must lie in [0, 1]")
    if args.out.exists():
        sys.exit(f"error: {args.out} exists; choose a new --out")
    with safe_open(str(args.a), "pt") as fa, safe_open(str(args.b), "pt") as fb:
        meta_a, meta_b = fa.metadata() or {}, fb.metadata() or {}
        cfg_a = json.loads(meta_a.get("clip_t2i_config", "{}")).get("model_cfg")
        cfg_b = json.loads(meta_b.get("clip_t2i_config", "{}")).get("model_cfg")
        if cfg_a != cfg_b:
            sys.exit("error: the two checkpoints have different model configs")
        keys_a, keys_b = set(fa.keys()), set(fb.keys())
        if keys_a != keys_b:
            sys.exit(f"error: key sets differ: {sorted(keys_a ^ keys_b)[:5]}")
        out = {}
        for k in sorted(keys_a):
            ta, tb = fa.get_tensor(k), fb.get_tensor(k)
            if ta.is_floating_point():
                out[k] = ((1 - args.alpha) * ta.double() + args.alpha * tb.double()).to(ta.dtype)
            else:
                out[k] = ta
    meta = dict(meta_a)
    meta["interpolation"] = json.dumps({"a": str(args.a), "b": str(args.b), "alpha": args.alpha})
    with atomic_write(args.out) as tmp:
        save_file(out, str(tmp), metadata=meta)
    print(json.dumps({"out": str(args.out), "alpha": args.alpha, "tensors": len(out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
