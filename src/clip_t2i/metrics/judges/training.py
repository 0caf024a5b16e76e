"""Training and clean / robust evaluation of the CNN judges.

Shapes: clean renders of all 240 combinations with mild augmentation (legacy judge; FID features only now).
Digits: the fixed train split with scale/shift jitter and mild augmentation; with ``adv_eps > 0`` adversarial
training (Madry-style PGD on the judge's own input, mixed with the clean loss).

**Threat model of the digits judge** (what its robust accuracy means): L2 ball of radius ``eps`` on the
*single-channel* 32x32 luminance image in [0, 1] that the judge sees (the test split is grey, so this is the
image itself). For scale: the nearest test->train digit of *another* class is 4.58 away at the 1st percentile
and 6.65 at the median (measured on the fixed split), so eps = 2.0 stays below half the closest inter-class gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.metrics.judges.cnn import SHAPES_ATTRIBUTES, DigitsJudge, ShapesJudge, _JudgeBase

#: L2 radius (32x32, one channel, [0, 1]) at which the robust digits judge is trained and reported.
DIGITS_ROBUST_EPS = 2.0


# ------------------------------------------------------------------------------------------ augmentation
def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Per-image separable Gaussian blur (5 taps); ``sigma`` ``[B]`` (0 = identity)."""
    taps = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    s = sigma.clamp_min(1e-3).view(-1, 1)
    k = torch.exp(-0.5 * (taps / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # [B, 5]
    b, c, h, w = x.shape
    xs = x.reshape(1, b * c, h, w)
    kk = k.repeat_interleave(c, 0)
    xs = F.conv2d(F.pad(xs, (2, 2, 0, 0), mode="replicate"), kk.view(b * c, 1, 1, 5), groups=b * c)
    xs = F.conv2d(F.pad(xs, (0, 0, 2, 2), mode="replicate"), kk.view(b * c, 1, 5, 1), groups=b * c)
    return xs.view(b, c, h, w)


def judge_augment(x: Tensor, g: torch.Generator, strength: float = 1.0) -> Tensor:
    """Mild training augmentation: colour jitter, slight blur (p=0.5), pixel noise; output in [0, 1].

    Ranges (x ``strength``): brightness +-0.06, contrast x[0.85, 1.15], saturation x[0.8, 1.2], per-channel
    gain x[0.93, 1.07], blur sigma U(0, 1) px at 64 px, Gaussian noise std U(0, 0.06) — small enough that
    no colour crosses into a neighbouring colour name.
    """
    b = x.shape[0]
    u = torch.rand(b, 8, generator=g)
    r = strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + (u[:, 0] * 2 - 1) * 0.15 * r).view(b, 1, 1, 1) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (1 + (u[:, 1] * 2 - 1) * 0.2 * r).view(b, 1, 1, 1) + grey
    gain = 1 + (torch.rand(b, 3, generator=g) * 2 - 1) * 0.07 * r
    x = x * gain.view(b, 3, 1, 1) + ((u[:, 2] * 2 - 1) * 0.06 * r).view(b, 1, 1, 1)
    sigma = u[:, 3] * (x.shape[-1] / 64) * r * (u[:, 4] < 0.5)
    x = torch.where((sigma > 0.05).view(b, 1, 1, 1), _gaussian_blur(x, sigma), x)
    noise = torch.randn(x.shape, generator=g) * (u[:, 5] * 0.06 * r).view(b, 1, 1, 1)
    return (x + noise).clamp(0.0, 1.0)


def luminance(images: Tensor) -> Tensor:
    """``[B, 1, H, W]`` luminance (Rec. 601 weights) of ``[B, 3, H, W]`` images (or the image if 1 channel)."""
    if images.shape[1] == 1:
        return images
    w = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


# ------------------------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class JudgeTrainConfig:
    """Judge training settings (units in the names); ``adv_*`` only for digits."""

    kind: str = "shapes"  # shapes | digits
    steps: int = 1500
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    augment_strength: float = 1.0
    seed: int = 0
    eval_n: int = 2400  # shapes: clean evaluation images (10 per combination)
    adv_eps: float = 0.0  # digits: L2 radius of the training attack (0 = clean training)
    adv_steps: int = 5  # digits: PGD steps of the training attack
    adv_clean_weight: float = 0.5  # digits: loss = w * CE(clean) + (1 - w) * CE(adversarial)
    width: int = 32


def _adversarial(model: DigitsJudge, x1: Tensor, y: Tensor, eps: float, steps: int, g: torch.Generator) -> Tensor:
    """PGD-``steps`` (L2, ``eps``) on the luminance images ``x1`` against ``model`` held in eval mode."""
    from clip_t2i.robust.attacks import eval_mode, pgd

    with eval_mode(model):
        return pgd(lambda xa: F.cross_entropy(model(xa), y, reduction="none"), x1, eps=eps, steps=steps, generator=g)


def train_judge(cfg: JudgeTrainConfig, log: Callable[[str], None] | None = print) -> tuple[_JudgeBase, dict]:
    """Train a judge from scratch; returns ``(model in eval mode, metrics)`` (clean / robust accuracy, seconds)."""
    if cfg.kind not in ("shapes", "digits"):
        raise UserError(f"judge kind must be 'shapes' or 'digits', got {cfg.kind!r}")
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise UserError("judge training needs steps >= 1 and batch_size >= 1")
    if cfg.adv_eps < 0 or (cfg.adv_eps > 0 and cfg.kind != "digits"):
        raise UserError("adversarial training (adv_eps > 0) is implemented for the digits judge only")
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    if cfg.kind == "shapes":
        from clip_t2i.data.shapes import ShapesWorld

        world = ShapesWorld(size=64, level="one", split="all")
        model: _JudgeBase = ShapesJudge(width=cfg.width)

        def batch() -> tuple[Tensor, Any]:
            scenes = world.sample_scenes(cfg.batch_size, g)
            return world.render(scenes), world.attributes(scenes)
    else:
        from clip_t2i.data.digits import DigitsStream

        stream = DigitsStream(split="train", size=32, batch_size=cfg.batch_size, seed=cfg.seed, augment=True)
        model = DigitsJudge(width=cfg.width)
        counter = iter(range(10**9))

        def batch() -> tuple[Tensor, Any]:
            b = stream.batch(next(counter))
            return b["image"], b["label"]

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    model.train()
    for step in range(cfg.steps):
        images, target = batch()
        images = judge_augment(images, g, cfg.augment_strength)
        if cfg.adv_eps > 0:
            x1 = luminance(images)
            x_adv = _adversarial(model, x1, target, cfg.adv_eps, cfg.adv_steps, g)  # type: ignore[arg-type]
            w = cfg.adv_clean_weight
            loss = w * F.cross_entropy(model(x1), target) + (1 - w) * F.cross_entropy(model(x_adv), target)
        else:
            out = model(images)
            if isinstance(out, dict):
                loss = sum(F.cross_entropy(out[k], target[k]) for k in SHAPES_ATTRIBUTES)
            else:
                loss = F.cross_entropy(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 100 == 0 or step == cfg.steps - 1):
            log(f"step {step:5d}  loss {float(loss.detach()):.4f}  {time.perf_counter() - t0:.0f}s")
    model.eval()
    train_seconds = round(time.perf_counter() - t0, 1)
    metrics = evaluate_judge(model, n=cfg.eval_n)
    if cfg.adv_eps > 0:
        metrics.update(robust_digits_accuracy(model, eps=cfg.adv_eps))
    metrics["train_seconds"] = train_seconds
    return model, metrics


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_judge(model: _JudgeBase, n: int = 2400, seed: int = 12345) -> dict:
    """Clean accuracy: shapes on a balanced set over all combinations (also split seen / held-out, and with
    the training augmentation applied); digits on the test split."""
    model.eval()
    if isinstance(model, ShapesJudge):
        from clip_t2i.data.shapes import ShapesWorld, shapes_eval_set

        data = shapes_eval_set(level="one", split="all", n=n, seed=seed)
        held = ShapesWorld(split="all").is_heldout(data["label"])
        pred = model.predict(data["image"])
        ok = {k: pred[k] == data["attrs"][k] for k in SHAPES_ATTRIBUTES}
        allk = torch.stack(list(ok.values())).all(0)
        aug = judge_augment(data["image"], torch.Generator().manual_seed(seed))
        pred_aug = model.predict(aug)
        all_aug = torch.stack([pred_aug[k] == data["attrs"][k] for k in SHAPES_ATTRIBUTES]).all(0)
        return {
            **{f"clean_{k}": round(float(v.float().mean()), 4) for k, v in ok.items()},
            "clean_all": round(float(allk.float().mean()), 4),
            "clean_all_heldout": round(float(allk[held].float().mean()), 4),
            "augmented_all": round(float(all_aug.float().mean()), 4),
            "eval_n": n,
        }
    from clip_t2i.data.digits import DigitsDataset

    test = DigitsDataset(split="test", size=32)
    images = test.images.expand(-1, 3, -1, -1)
    acc = float((model.predict(images) == test.labels).float().mean())
    train = DigitsDataset(split="train", size=32)
    acc_train = float((model.predict(train.images.expand(-1, 3, -1, -1)) == train.labels).float().mean())
    return {"test_accuracy": round(acc, 4), "train_accuracy": round(acc_train, 4), "eval_n": len(test)}


def robust_digits_accuracy(
    model: DigitsJudge,
    eps: float = DIGITS_ROBUST_EPS,
    *,
    pgd_steps: int = 50,
    apgd_steps: int = 100,
    seed: int = 0,
    n: int | None = None,
) -> dict[str, float]:
    """Robust accuracy on the digits test split under L2 attacks of radius ``eps`` (one-channel 32x32 input).

    AutoAttack/RobustBench conventions: the model in eval mode, no randomness at test time, untargeted attacks,
    and the reported ``robust_accuracy_worst`` counts an image as robust only if *every* attack (PGD-``pgd_steps``
    with random start, APGD-CE and APGD-DLR with ``apgd_steps``) fails on it.
    """
    from clip_t2i.data.digits import DigitsDataset
    from clip_t2i.robust.attacks import APGD, PGD

    test = DigitsDataset(split="test", size=32)
    x, y = test.images, test.labels
    if n is not None:
        x, y = x[:n], y[:n]
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ok_all = model.predict(x) == y
    out: dict[str, float] = {"robust_eps_l2": float(eps), "robust_n": int(len(y))}
    attacks = {
        f"pgd{pgd_steps}": PGD(model, eps=eps, norm="l2", steps=pgd_steps, generator=g),
        "apgd_ce": APGD(model, eps=eps, norm="l2", steps=apgd_steps, loss="ce", generator=g),
        "apgd_dlr": APGD(model, eps=eps, norm="l2", steps=apgd_steps, loss="dlr", generator=g),
    }
    for name, attack in attacks.items():
        x_adv = torch.cat([attack(xb, yb) for xb, yb in zip(x.split(120), y.split(120), strict=True)])
        ok = model.predict(x_adv) == y
        out[f"robust_accuracy_{name}"] = round(float(ok.float().mean()), 4)
        ok_all &= ok
    out["robust_accuracy_worst"] = round(float(ok_all.float().mean()), 4)
    return out
