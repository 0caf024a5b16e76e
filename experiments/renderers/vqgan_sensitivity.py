"""Where can the VQGAN's decoder draw? Its Jacobian's sensitivity map at three kinds of start.

For a latent z, the sensitivity of code position (i, j) is E_v ||d<decode(z), v>/dz_ij||^2 over random pixel-space
cotangents v ~ N(0, I) (``--probes`` of them), normalised to mean 1 over the map. A decoder that can draw an object
anywhere has a flat map at a featureless start. Prints one JSON object: the per-column and per-row means of the map
for a flat grey start (encoded, plus ``init_noise``), random codes and encoded world renders.

    python experiments/renderers/vqgan_sensitivity.py [--vqgan shapes-vqgan] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from clip_t2i.data.shapes import ShapesWorld
from clip_t2i.renderers.base import build_renderer


def sensitivity(model, z: torch.Tensor, probes: int, seed: int) -> torch.Tensor:
    z = z.detach().clone().requires_grad_(True)
    total = torch.zeros(z.shape[-2:])
    for i in range(probes):
        z.grad = None
        x = model.decode_latent(z)
        v = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed * 1000 + i))
        (x * v).sum().backward()
        total += z.grad.pow(2).sum(1).mean(0)
    return total / total.mean()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vqgan", default="shapes-vqgan")
    ap.add_argument("--side", type=int, default=32, help="decode side (shapes-vqgan's training side)")
    ap.add_argument("--grey", type=float, default=0.2)
    ap.add_argument("--init-noise", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        grey = Path(tmp) / "grey.png"
        Image.new("RGB", (args.side, args.side), (round(255 * args.grey),) * 3).save(grey)
        opts = {"vqgan": args.vqgan, "decode_size": args.side}
        r_grey = build_renderer(
            "vqgan", args.side, {**opts, "init": "image", "init_image": str(grey), "init_noise": args.init_noise}
        )
        starts = {"grey": r_grey.init(args.batch, torch.Generator().manual_seed(args.seed))[0]}
    r = build_renderer("vqgan", args.side, {**opts, "init": "random_codes"})
    starts["random_codes"] = r.init(args.batch, torch.Generator().manual_seed(args.seed))[0]
    world = ShapesWorld(size=args.side, level="one", split="all")
    starts["renders"] = r.encode(
        world.render(world.sample_scenes(args.batch, torch.Generator().manual_seed(args.seed)))
    )
    out = {"vqgan": args.vqgan, "side": args.side, "seed": args.seed, "probes": args.probes}
    for name, z in starts.items():
        s = sensitivity(r.model, z, args.probes, args.seed)
        out[name] = {
            "per_column": [round(float(v), 3) for v in s.mean(0)],
            "per_row": [round(float(v), 3) for v in s.mean(1)],
            "left_half_over_right_half": round(float(s[:, : s.shape[1] // 2].sum() / s[:, s.shape[1] // 2 :].sum()), 2),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
