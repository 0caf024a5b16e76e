"""Probe (issue 13): is a CLIP's image tower invariant to the input's contrast about the preprocessing mean μ?

Prints, for two prompts at a dark-grey start and at uniform noise, ``cos(∇f, x − μ)`` (0 for an exactly
contrast-invariant tower, ``f(μ + α (x − μ)) = f(x)``) and the gradient's mass ``Σ∇ / Σ|∇|``.

    python experiments/robust/invariance_probe.py MODEL
"""

from __future__ import annotations

import sys

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.robust.alignment import flat_cos

torch.manual_seed(0)
clip = load_clip(sys.argv[1]).eval()
norm = type(clip.visual.bn1).__name__ if hasattr(clip.visual, "bn1") else "ViT"
mean = torch.tensor(clip.config["preprocess_cfg"].get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1)
t = clip.encode_text(["large red square in the center", "small blue circle on the left"]).float()
side = clip.image_size
for name, x in [("grey", 0.2 + 0.02 * torch.randn(2, 3, side, side)), ("uniform", torch.rand(2, 3, side, side))]:
    x = x.requires_grad_(True)
    (g,) = torch.autograd.grad((clip.encode_image(x, normalize=True) * t).sum(), x)
    cos = [round(v, 8) for v in flat_cos(g, x.detach() - mean).tolist()]
    mass = [round(v, 4) for v in (g.flatten(1).sum(1) / g.flatten(1).abs().sum(1)).tolist()]
    print(f"{sys.argv[1]} ({norm} stem) {name}: cos(grad, x - mean) {cos}  mass {mass}")
