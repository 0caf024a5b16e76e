"""Issue 13: does a tower's input gradient depend on BatchNorm's mode? Alignment of ∇ₓ cos(f(x_t), g(c)) with
x* − x_t on 64 fresh path points (neutral starts, t = u², seed 123), in train mode (batch statistics, what the
alignment loss saw by default) and in eval mode (running statistics, what generation uses); also the cosine of the
per-channel means (the colour part of the step).

    python experiments/robust/bn_probe.py MODEL [MODEL ...]
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from clip_t2i.backbones import load_clip
from clip_t2i.data.shapes import ShapesWorld
from clip_t2i.robust.alignment import flat_cos, neutral_starts


def probe(model: str) -> dict[str, tuple[float, float]]:
    clip = load_clip(model)
    world = ShapesWorld(size=clip.image_size, split="train")
    with torch.no_grad():
        text = clip.encode_text(world.canonical_caption_list()).float()
    g = torch.Generator().manual_seed(123)
    scenes = world.sample_scenes(64, g)
    labels, x_star = world.labels(scenes), world.render(scenes)
    src = neutral_starts(64, clip.image_size, g)
    t = torch.rand(64, 1, 1, 1, generator=g) ** 2
    out = {}
    for mode in ("train", "eval"):
        clip.train(mode == "train")
        x = ((1 - t) * src + t * x_star).detach().requires_grad_(True)
        sim = (clip.encode_image(x, normalize=True) * text[labels]).sum(-1)
        (grad,) = torch.autograd.grad(sim.sum(), x)
        target = x_star - x.detach()
        colour = F.cosine_similarity(grad.mean((2, 3)), target.mean((2, 3))).mean()
        out[mode] = (round(float(flat_cos(grad, target).mean()), 3), round(float(colour), 3))
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    for m in sys.argv[1:]:
        r = probe(m)
        print(m, " ".join(f"{k}: align {a} colour {c}" for k, (a, c) in r.items()), flush=True)
