"""Speed and agreement of clip_t2i.metrics on 10,000 "images" worth of features; prints one JSON object.

Features (no pretrained Inception or DINOv2 weights can be downloaded here):

* ``--features judge`` (default): the shapes judge's penultimate features of 10,000 real 64x64 renders vs
  10,000 slightly blurred renders (the judge is the zoo `shapes-judge`).
* ``--features random``: 10,000 real and 10,000 fake D-dim vectors (D=256) from a seeded
  Gaussian with a random mixing matrix (correlated, non-isotropic); fake = 1.1 x real-like + 0.05 shift.
* ``--features cnn``: a seeded random CNN stand-in (3 stride-2 3x3 convs 3->16->32->64 with ReLU, 4x4
  average pool, fixed random 1024->D linear; weights from ``torch.manual_seed(0)``, never trained) applied
  to procedurally generated 64x64 images (bilinearly upsampled 8x8 colour noise, contrast-stretched per
  image; fake images use another seed and a colour cast). Extraction time is reported separately.

Timed side by side on the same features: our :class:`FrechetDistance` (batched updates + compute), our
functional :func:`frechet_distance`, and torchmetrics' ``FrechetInceptionDistance`` with a pass-through
feature module (same batches). Then mPPD over the fake features as 1,000 prompts x 10 seeds (ours, both
distances, vs a naive per-pair Python loop; torchmetrics has no PPD), and optionally PRDC and Vendi.
Times are the best of ``--repeats`` runs (the machine may be shared).

Usage: ``python benchmarks/metrics_speed.py [--features random|cnn] [--n 10000] [--dim 256] [--no-prdc]
[--threads T]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clip_t2i.metrics import FrechetDistance, compute_prdc, frechet_distance, per_prompt_distance, vendi_score
from clip_t2i.utils import jsonout


class PassThrough(nn.Module):
    """'Images' [B, D, 1, 1] -> features [B, D], so torchmetrics' FID sees exactly our features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class RandomCNN(nn.Module):
    """Fixed, untrained, seeded stand-in feature extractor for 64x64 images (see module docstring)."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(64 * 4 * 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.body(x), 4).flatten(1))


def _random_features(n: int, dim: int, seed: int, scale: float, shift: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=torch.Generator().manual_seed(1234)) / math.sqrt(dim)
    return ((torch.randn(n, dim, generator=g) @ mix) * scale + shift).float()


def _cnn_features(n: int, dim: int, seed: int, cast: float, batch: int = 500) -> torch.Tensor:
    net = RandomCNN(dim).eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.inference_mode():
        for s in range(0, n, batch):
            b = min(batch, n - s)
            low = torch.rand(b, 3, 8, 8, generator=g)
            low = (low - low.amin(dim=(1, 2, 3), keepdim=True)) / low.amax(dim=(1, 2, 3), keepdim=True)
            imgs = F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False)
            imgs = (imgs + cast * torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1)).clamp(0, 1)
            out.append(net(imgs))
    return torch.cat(out)


def _judge_features(n: int, seed: int, blur: float, batch: int = 500) -> torch.Tensor:
    """The shapes judge's penultimate features of ``n`` 64x64 shapes renders (``blur`` > 0 degrades them)."""
    from clip_t2i.data.shapes import ShapesWorld
    from clip_t2i.metrics.judge import judge_feature_extractor, load_judge

    world = ShapesWorld(size=64, split="all")
    extractor = judge_feature_extractor(load_judge("shapes-judge"))
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.inference_mode():
        for s in range(0, n, batch):
            imgs = world.render(world.sample_scenes(min(batch, n - s), g))
            if blur > 0:
                imgs = F.avg_pool2d(imgs, 3, stride=1, padding=1) * blur + imgs * (1 - blur)
            out.append(extractor(imgs))
    return torch.cat(out).float()


def _best_of(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    best, value = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return value, best


def _ours_metric(real: torch.Tensor, fake: torch.Tensor, batch: int) -> float:
    m = FrechetDistance(num_features=real.shape[1])
    for chunk in real.split(batch):
        m.update(chunk, real=True)
    for chunk in fake.split(batch):
        m.update(chunk, real=False)
    return float(m.compute())


def _torchmetrics_fid(real: torch.Tensor, fake: torch.Tensor, batch: int) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    m = FrechetInceptionDistance(feature=PassThrough(real.shape[1]), normalize=True)
    for chunk in real.split(batch):
        m.update(chunk[:, :, None, None], real=True)
    for chunk in fake.split(batch):
        m.update(chunk[:, :, None, None], real=False)
    return float(m.compute())


def _naive_mppd(x: torch.Tensor, ids: list[int], distance: str) -> float:
    """Reference: loop over prompts and over all i < j pairs."""
    groups: dict[int, list[torch.Tensor]] = {}
    for row, pid in zip(x.double(), ids, strict=True):
        groups.setdefault(pid, []).append(row)
    per_prompt = []
    for rows in groups.values():
        ds = [
            1.0 - float(F.cosine_similarity(a, b, dim=0)) if distance == "cosine" else float((a - b).norm())
            for a, b in combinations(rows, 2)
        ]
        per_prompt.append(sum(ds) / len(ds))
    return sum(per_prompt) / len(per_prompt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", choices=("judge", "random", "cnn"), default="judge")
    p.add_argument("--n", type=int, default=10_000, help="samples per side")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--batch", type=int, default=500, help="update() batch size for the metric objects")
    p.add_argument("--seeds", type=int, default=10, help="images per prompt for mPPD (n must divide)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-prdc", action="store_true", help="skip precision/recall/density/coverage")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    if args.features == "judge":
        real = _judge_features(args.n, seed=1, blur=0.0)
        fake = _judge_features(args.n, seed=2, blur=0.5)
        args.dim = real.shape[1]
    elif args.features == "random":
        real = _random_features(args.n, args.dim, seed=1, scale=1.0, shift=0.0)
        fake = _random_features(args.n, args.dim, seed=2, scale=1.1, shift=0.05)
    else:
        real = _cnn_features(args.n, args.dim, seed=1, cast=0.0)
        fake = _cnn_features(args.n, args.dim, seed=2, cast=0.1)
    t_feats = time.perf_counter() - t0

    ours_fn, t_ours_fn = _best_of(lambda: float(frechet_distance(real, fake)), args.repeats)
    ours_m, t_ours_m = _best_of(lambda: _ours_metric(real, fake, args.batch), args.repeats)
    tm_val, t_tm = _best_of(lambda: _torchmetrics_fid(real, fake, args.batch), args.repeats)

    n_prompts = args.n // args.seeds
    ids = [i // args.seeds for i in range(n_prompts * args.seeds)]
    x = fake[: len(ids)]
    ppd: dict[str, Any] = {"prompts": n_prompts, "seeds_per_prompt": args.seeds}
    for dist in ("cosine", "l2"):
        val, t = _best_of(lambda d=dist: per_prompt_distance(x, ids, d).mean, args.repeats)
        ref, t_ref = _best_of(lambda d=dist: _naive_mppd(x, ids, d), 1)
        ppd[dist] = {"ours": val, "ours_s": round(t, 4), "naive": ref, "naive_s": round(t_ref, 3)}

    out: dict[str, Any] = {
        "features": args.features,
        "n_real": args.n,
        "n_fake": args.n,
        "dim": args.dim,
        "feature_time_s": round(t_feats, 3),
        "frechet": {
            "ours_metric": ours_m,
            "ours_metric_s": round(t_ours_m, 4),
            "ours_function": ours_fn,
            "ours_function_s": round(t_ours_fn, 4),
            "torchmetrics_fid": tm_val,
            "torchmetrics_s": round(t_tm, 4),
            "rel_diff_vs_torchmetrics": abs(ours_m - tm_val) / max(abs(tm_val), 1e-12),
            "speedup_metric_vs_torchmetrics": round(t_tm / t_ours_m, 2),
        },
        "mppd": ppd,
    }
    vendi, t_vendi = _best_of(lambda: float(vendi_score(fake)), args.repeats)
    out["vendi"] = {"value": vendi, "s": round(t_vendi, 4)}
    if not args.no_prdc:
        res, t_prdc = _best_of(lambda: compute_prdc(real, fake, k=3), 1)
        out["prdc"] = {**res.as_dict(), "k": 3, "s": round(t_prdc, 2)}
    out["env"] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "repeats": args.repeats,
    }
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
