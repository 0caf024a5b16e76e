"""Issue 16: how much the seeds of one prompt differ, in plain pixels, against real renders of the caption.

For 4 fixed prompts × seeds 0–7: ``within`` = mean over prompts and pixels of the std over seeds, ``between`` = the
std over prompts of the per-prompt mean image. The first line is a freshly initialised scad-mi generator (torch seed
0) around ``shapes-clip``; the last is real renders (4 random train combinations × 8 nuisance draws, seed 0).

    python experiments/gan/seed_spread.py MODEL [MODEL ...]     # GAN files, run folders' final.safetensors, zoo names
"""

from __future__ import annotations

import sys

import torch

PROMPTS = [
    "a small red circle on the left",
    "a large blue square at the top",
    "a large green triangle in the center",
    "a small yellow cross on the right",
]


def spread(G, clip) -> tuple[float, float]:
    from clip_t2i.gan.sample import generate

    prompts = [p for p in PROMPTS for _ in range(8)]
    seeds = [i for _ in PROMPTS for i in range(8)]
    x = generate(G, clip, prompts, seeds, 64).reshape(len(PROMPTS), 8, -1)
    return x.std(1).mean().item(), x.mean(1).std(0).mean().item()


def main() -> None:
    from clip_t2i.backbones import load_clip
    from clip_t2i.data.shapes import ShapesWorld
    from clip_t2i.gan import load_gan
    from clip_t2i.gan.networks import Generator
    from clip_t2i.gan.variants import get_variant

    clip = load_clip("shapes-clip").eval()
    torch.manual_seed(0)
    G = Generator(get_variant("scad-mi").generator, clip).eval()
    print("init G: within {:.4f} between {:.4f}".format(*spread(G, clip)))
    for m in sys.argv[1:]:
        gm = load_gan(m)
        print(m, "within {:.4f} between {:.4f}".format(*spread(gm.G, gm.clip)))
    world = ShapesWorld(size=64, level="one", split="train")
    g = torch.Generator().manual_seed(0)
    labels = world.labels(world.sample_scenes(4, g)).repeat_interleave(8)
    x = world.render(world.sample_scenes(0, g, labels=labels)).reshape(4, 8, -1)
    print(f"real renders: within {x.std(1).mean().item():.4f} between {x.mean(1).std(0).mean().item():.4f}")


if __name__ == "__main__":
    main()
