"""Per-prompt diversity of the fitted nuisance factors: real renders score about 1, copies score 0."""

from __future__ import annotations

import torch

from clip_t2i.data.shapes import ShapesWorld
from clip_t2i.metrics.judges.diversity import FACTORS, RealFactorSpread, factor_diversity
from clip_t2i.metrics.judges.scoring import default_shapes_judge

torch.set_num_threads(1)


def _renders(labels: list[int], per: int, seed: int):
    world = ShapesWorld(size=64, level="one", split="all")
    lab = torch.tensor(labels).repeat_interleave(per)
    scenes = world.sample_scenes(len(lab), torch.Generator().manual_seed(seed), labels=lab)
    return world.render(scenes), world.canonical_captions(scenes)


def test_real_renders_have_ratio_near_one_and_copies_zero():
    judge = default_shapes_judge()
    real = RealFactorSpread(judge, n=48, seed=0)
    images, prompts = _renders([13, 97, 202], per=24, seed=5)
    fd = factor_diversity(judge.fit(images), prompts, judge, real=real)
    assert fd["n_prompts"] == 3 and set(fd["ratio"]) == set(FACTORS)
    # std ratio of two independent samples (24 vs 48) of the same distribution: sd of the ratio ~ 0.18,
    # so the mean over 3 prompts and 10 factors stays within [0.7, 1.3]
    assert 0.7 <= fd["mean"] <= 1.3, fd["ratio"]
    # capping every per-prompt ratio at 1 can only lower the mean; for real data it loses E[max(0, 1 - r)]
    # ~ 0.4 sd ~ 0.07 per ratio, so it stays above 0.6
    assert 0.6 <= fd["mean_capped"] <= min(1.0, fd["mean"] + 1e-9)
    assert all(v is None or v <= 1.0 for v in fd["ratio_capped"].values())
    copies = images[::24].repeat_interleave(8, 0)
    fc = factor_diversity(judge.fit(copies), [p for p in prompts[::24] for _ in range(8)], judge, real=real)
    assert fc["mean"] <= 0.01 and fc["mean_capped"] <= 0.01
    one = factor_diversity(judge.fit(images[:1]), prompts[:1], judge, real=real)
    assert one["n_prompts"] == 0 and one["n_prompts_skipped"] == 1 and one["mean"] is None
