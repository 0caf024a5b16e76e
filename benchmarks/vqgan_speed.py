"""VQGAN+CLIP speed: guidance steps/s at 64² (shapes-vqgan + shapes-clipag, preset ``vqgan``: decoded at 32 px and
resized) and at 224² (random weights: the shapes-vqgan architecture decoding at 224 px, open_clip ViT-B-32;
preset ``vqgan``'s views and optimiser), and shapes-vqgan encode / decode
images/s at 64² (batch 32, no gradient). Prints one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/vqgan_speed.py [--steps 5] [--batch 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import clip_t2i
from clip_t2i.utils import jsonout


def steps_per_second(model, vqgan: str, size: int, steps: int, batch: int, decode_size: int | None) -> float:
    """Guidance steps/s for ``batch`` images (the first step, with its start-up, is not counted)."""
    stamps: list[float] = []
    clip_t2i.generate(
        ["a red circle on the left"],
        model=model,
        seeds=list(range(batch)),
        preset="vqgan",
        steps=steps + 1,
        size=size,
        renderer_options={"vqgan": vqgan, "decode_size": decode_size},
        progress=lambda step, total, sim: stamps.append(time.perf_counter()),
    )
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


@torch.no_grad()
def codec_rates(vqgan: str, size: int = 64, batch: int = 32, repeats: int = 3) -> dict[str, float]:
    from clip_t2i.renderers.vqgan.loading import load_vqgan

    m = load_vqgan(vqgan)
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    idx = m.encode(x)
    m.decode_codes(idx)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        idx = m.encode(x)
    t1 = time.perf_counter()
    for _ in range(repeats):
        m.decode_codes(idx)
    t2 = time.perf_counter()
    return {
        "encode_images_per_s": round(batch * repeats / (t1 - t0), 1),
        "decode_images_per_s": round(batch * repeats / (t2 - t1), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4, help="images optimised together")
    args = ap.parse_args()
    from clip_t2i.backbones import load_clip
    from clip_t2i.renderers.vqgan.loading import load_vqgan, save_vqgan
    from clip_t2i.renderers.vqgan.model import VQGAN

    torch.manual_seed(0)
    out: dict = {"threads": torch.get_num_threads(), "batch": args.batch, "views_per_image": 16}
    out["64"] = {
        "vqgan": "shapes-vqgan",
        "clip": "shapes-clipag",
        "decoded_at": 32,  # as the vqgan preset runs it (shapes-vqgan's training side), resized to 64
        "steps_per_s": round(steps_per_second("shapes-clipag", "shapes-vqgan", 64, args.steps, args.batch, 32), 3),
        **codec_rates("shapes-vqgan"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        random_vq = save_vqgan(Path(tmp) / "random.safetensors", VQGAN(load_vqgan("shapes-vqgan").config))
        clip = load_clip("ViT-B-32")  # random init (no pretrained tag): the 224-px cost, not its quality
        out["224"] = {
            "vqgan": "random weights, shapes-vqgan architecture (56x56 codes)",
            "clip": "ViT-B-32, random weights",
            "decoded_at": 224,
            "steps_per_s": round(steps_per_second(clip, str(random_vq), 224, max(2, args.steps // 2), 1, None), 3),
            "batch": 1,
            **codec_rates(str(random_vq), size=224, batch=4, repeats=1),
        }
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
