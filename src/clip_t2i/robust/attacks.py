"""Adversarial attacks on images in [0, 1]: PGD (L2 / Linf), APGD-CE/DLR and robust accuracy.

Threat model: ``S = {x' : ||x' - x||_p <= eps, x' in [0, 1]^d}`` with ``p in {2, inf}``. Every iterate is
projected with ``P_S(v) = clip_[0,1](x + Pi_eps(v - x))`` where ``Pi_eps`` renormalises (L2) or clamps (Linf)
the perturbation; because ``x`` is in [0, 1] the final clip never leaves the eps-ball.

Gradients are taken with ``torch.autograd.grad`` w.r.t. the images only, so model parameters never receive
``.grad``; all returned tensors are detached.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.errors import UserError

Norm = Literal["l2", "linf"]
LossFn = Callable[[Tensor], Tensor]
LogitsFn = Callable[[Tensor], Tensor]

NORMS: tuple[str, ...] = ("l2", "linf")
ATTACKS: tuple[str, ...] = ("pgd", "apgd")
APGD_LOSSES: tuple[str, ...] = ("ce", "dlr")
_GRAD_DIV_EPS = 1e-10  # added to ||grad||_2 before dividing (same constant as torchattacks PGDL2)

__all__ = [
    "APGD",
    "PGD",
    "ZeroShotClassifier",
    "apgd",
    "apgd_checkpoints",
    "clean_accuracy",
    "dlr_loss",
    "eval_mode",
    "pgd",
    "project",
    "random_init",
    "robust_accuracy",
]


# ---------------------------------------------------------------------------------------------- validation
def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps) or eps <= 0:
        raise UserError(f"eps must be a finite number > 0, got {eps!r}")
    return float(eps)


def _check_norm(norm: str) -> Norm:
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    return norm  # type: ignore[return-value]


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _check_step_size(step_size: float) -> float:
    ok = not isinstance(step_size, bool) and isinstance(step_size, int | float)
    if not ok or not math.isfinite(step_size) or step_size <= 0:
        raise UserError(f"step_size must be a finite number > 0, got {step_size!r}")
    return float(step_size)


def _check_images(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise UserError("x must be a floating-point tensor [B, ...] of images in [0, 1]")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise UserError(f"x must lie in [0, 1], got range [{x.min().item():.4g}, {x.max().item():.4g}]")
    return x.detach()


def _check_labels(y: Tensor, x: Tensor) -> Tensor:
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise UserError(f"y must be an integer tensor of shape [{x.shape[0]}] (one label per image)")
    return y.detach().long()


# ------------------------------------------------------------------------------------------------ geometry
def _per_sample(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a [B] vector so it broadcasts against ``like`` ([B, ...])."""
    return v.view(-1, *([1] * (like.ndim - 1)))


def _l2(t: Tensor) -> Tensor:
    """Per-sample L2 norm ``||t_i||_2`` as a [B] vector."""
    return t.flatten(1).norm(p=2, dim=1)


def project(x_adv: Tensor, x: Tensor, eps: float, norm: Norm) -> Tensor:
    """``P_S(x_adv) = clip_[0,1](x + Pi_eps(x_adv - x))``.

    L2: ``Pi_eps(d) = d · min(1, eps / ||d||_2)`` per sample; Linf: ``Pi_eps(d) = clamp(d, -eps, eps)``.
    """
    delta = x_adv - x
    if norm == "l2":
        scale = (eps / _l2(delta).clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * _per_sample(scale, delta)
    else:
        delta = delta.clamp(-eps, eps)
    return (x + delta).clamp(0.0, 1.0)


def _ascent_direction(grad: Tensor, norm: Norm) -> Tensor:
    """Steepest-ascent direction: ``g / (||g||_2 + 1e-10)`` (L2) or ``sign(g)`` (Linf)."""
    if norm == "l2":
        return grad / _per_sample(_l2(grad) + _GRAD_DIV_EPS, grad)
    return grad.sign()


def random_init(x: Tensor, eps: float, norm: Norm, generator: torch.Generator | None = None) -> Tensor:
    """A random point of ``S`` around ``x`` (torchattacks' conventions).

    L2: ``x + eps · r · u / ||u||_2`` with ``u ~ N(0, I)`` and ``r ~ U[0, 1]`` per sample (the radius, not
    the volume, is uniform; draws ``u`` then ``r`` as PGDL2 does, so equal seeds give equal starts).
    Linf: ``x + U[-eps, eps]^d``. Both are clipped to [0, 1].
    """
    if norm == "l2":
        u = torch.empty_like(x).normal_(generator=generator)
        r = torch.empty((x.shape[0],), dtype=x.dtype, device=x.device).uniform_(0, 1, generator=generator)
        delta = u * _per_sample(r * eps / _l2(u).clamp_min(1e-12), u)
    else:
        delta = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    return (x + delta).clamp(0.0, 1.0)


# ------------------------------------------------------------------------------------------- model helpers
@contextmanager
def eval_mode(module: nn.Module | None) -> Iterator[None]:
    """Put ``module`` (and all submodules) in eval mode; restore every submodule's own mode on exit."""
    if module is None:
        yield
        return
    saved = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in saved:
            m.training = training


def _module_of(fn: Callable[..., Tensor], model: nn.Module | None) -> nn.Module | None:
    if model is not None:
        return model
    return fn if isinstance(fn, nn.Module) else None


def _loss_and_grad(loss_fn: LossFn, x_adv: Tensor, batch_mean: bool = False) -> tuple[Tensor, Tensor]:
    """Per-sample loss ``l(x_adv) [B]`` and ``∇_x sum_i l_i`` (``∇_x (1/B) sum_i l_i`` if ``batch_mean``).

    Row ``i`` of either gradient is ``∇ l_i`` up to the factor ``1/B``; both are detached.
    """
    with torch.enable_grad():
        xa = x_adv.detach().requires_grad_(True)
        loss = loss_fn(xa)
        if not isinstance(loss, Tensor) or loss.shape != (x_adv.shape[0],):
            got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise UserError(f"loss_fn must return one loss per sample, shape [{x_adv.shape[0]}], got {got}")
        total = loss.mean() if batch_mean else loss.sum()
        (grad,) = torch.autograd.grad(total, xa, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(xa)
    return loss.detach(), grad.detach()


# ----------------------------------------------------------------------------------------------------- PGD
def pgd(
    loss_fn: LossFn,
    x: Tensor,
    *,
    eps: float,
    norm: Norm = "l2",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    targeted: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient ascent on a per-sample loss ``loss_fn(x_adv) -> [B]`` (descent if ``targeted``).

    ``x_{k+1} = P_S(x_k + s · a · d(∇ l(x_k)))`` with ``s = +1`` (untargeted) / ``-1`` (targeted), step size
    ``a`` (default ``2.5 eps / steps``) and ``d(g) = g / ||g||_2`` (L2) or ``sign(g)`` (Linf). ``x_0`` is
    :func:`random_init` (if ``random_start``) or ``x``. Like torchattacks, ``g`` is the gradient of the batch
    mean ``(1/B) sum_i l_i`` (this only matters through the ``1e-10`` guard in the L2 normaliser), so with CE
    it reproduces torchattacks ``PGDL2`` / ``PGD`` step for step.
    """
    eps = _check_eps(eps)
    norm = _check_norm(norm)
    steps = _check_positive_int(steps, "steps")
    alpha = 2.5 * eps / steps if step_size is None else _check_step_size(step_size)
    x = _check_images(x)
    if x.shape[0] == 0:
        return x.clone()
    sign = -1.0 if targeted else 1.0
    x_adv = random_init(x, eps, norm, generator) if random_start else x.clone()
    for _ in range(steps):
        _, grad = _loss_and_grad(loss_fn, x_adv, batch_mean=True)
        x_adv = project(x_adv + sign * alpha * _ascent_direction(grad, norm), x, eps, norm)
    return x_adv.detach()


class PGD:
    """PGD with cross-entropy on a classifier: ``PGD(model, eps, norm, steps, step_size)(x, y) -> x_adv``.

    Maximises ``CE(model(x_adv), y)``; if ``targeted``, ``y`` are target classes and ``CE`` is minimised.
    The model runs in eval mode during the attack (each submodule's mode is restored afterwards) and its
    parameters get no ``.grad``.
    """

    def __init__(
        self,
        model: LogitsFn,
        eps: float,
        norm: Norm = "l2",
        steps: int = 10,
        step_size: float | None = None,
        *,
        random_start: bool = True,
        targeted: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.model = model
        self.eps = _check_eps(eps)
        self.norm = _check_norm(norm)
        self.steps = _check_positive_int(steps, "steps")
        self.step_size = 2.5 * self.eps / self.steps if step_size is None else _check_step_size(step_size)
        self.random_start = random_start
        self.targeted = targeted
        self.generator = generator

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        x = _check_images(x)
        y = _check_labels(y, x)
        model = self.model

        def loss_fn(xa: Tensor) -> Tensor:
            return F.cross_entropy(model(xa), y, reduction="none")

        with eval_mode(_module_of(model, None)):
            return pgd(
                loss_fn,
                x,
                eps=self.eps,
                norm=self.norm,
                steps=self.steps,
                step_size=self.step_size,
                random_start=self.random_start,
                targeted=self.targeted,
                generator=self.generator,
            )


# ---------------------------------------------------------------------------------------------------- APGD
def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio ``-(z_y - max_{i≠y} z_i) / (z_π1 - z_π3 + 1e-12)`` per sample.

    ``z_π1 >= z_π2 >= ...`` are the sorted logits; needs at least 3 classes.
    """
    if logits.shape[-1] < 3:
        raise UserError("the DLR loss needs at least 3 classes")
    top, top_idx = logits.topk(3, dim=1)
    z_y = logits.gather(1, y[:, None])[:, 0]
    best_other = torch.where(top_idx[:, 0] == y, top[:, 1], top[:, 0])
    return -(z_y - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations ``w_j = ceil(p_j · N)`` where APGD may halve its step (``0 < w_j < N``).

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``.
    """
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    ws = {math.ceil(round(pj * steps, 6)) for pj in p[1:]}
    return sorted(w for w in ws if 0 < w < steps)


def _objective(
    logits_fn: LogitsFn, y: Tensor, loss: str, targeted: bool
) -> Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]:
    """``x_adv -> (loss [B], ∇ loss, success [B])`` for the chosen APGD loss."""

    def evaluate(x_adv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits_box: list[Tensor] = []

        def loss_fn(xa: Tensor) -> Tensor:
            logits = logits_fn(xa)
            logits_box.append(logits.detach())
            if loss == "dlr":
                return dlr_loss(logits, y)
            ce = F.cross_entropy(logits, y, reduction="none")
            return -ce if targeted else ce

        value, grad = _loss_and_grad(loss_fn, x_adv)
        pred = logits_box[0].argmax(dim=1)
        success = pred == y if targeted else pred != y
        return value, grad, success

    return evaluate


def _apgd_single_run(
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]],
    x: Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    rho: float,
    momentum: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One APGD run (Croce & Hein 2020, Alg. 1); returns ``(x_best, loss_best, success)`` per sample.

    ``z = P_S(x_k + η d(∇f(x_k)))``, ``x_{k+1} = P_S(x_k + α(z - x_k) + (1-α)(x_k - x_{k-1}))`` (``x_1 = z``),
    ``η_0 = 2 eps``. At checkpoint ``w_j`` a sample halves ``η`` and restarts from its best point if
    (1) ``#{k in [w_{j-1}, w_j): f(x_{k+1}) > f(x_k)} < ρ (w_j - w_{j-1})`` or (2) ``η`` was not halved
    at ``w_{j-1}`` and ``f_max`` did not improve since ``w_{j-1}``. ``x_best`` is the highest-loss
    successful point if any, else the highest-loss point.
    """
    n = x.shape[0]
    ckpts = set(apgd_checkpoints(steps))
    x_cur = random_init(x, eps, norm, generator)
    f_cur, g_cur, s_cur = evaluate(x_cur)
    x_max, f_max, g_max = x_cur.clone(), f_cur.clone(), g_cur.clone()
    found = s_cur.clone()
    x_succ = torch.where(_per_sample(found, x), x_cur, x)
    f_succ = torch.where(found, f_cur, torch.full_like(f_cur, -math.inf))

    eta = torch.full((n,), 2.0 * eps, dtype=x.dtype, device=x.device)
    x_prev = x_cur
    n_increase = torch.zeros(n, dtype=torch.long, device=x.device)
    f_max_at_ckpt = f_max.clone()
    halved_at_ckpt = torch.zeros(n, dtype=torch.bool, device=x.device)
    last_ckpt = 0

    for k in range(steps):
        z = project(x_cur + _per_sample(eta, x) * _ascent_direction(g_cur, norm), x, eps, norm)
        if k == 0:
            x_new = z
        else:
            x_new = project(x_cur + momentum * (z - x_cur) + (1 - momentum) * (x_cur - x_prev), x, eps, norm)
        f_new, g_new, s_new = evaluate(x_new)

        n_increase += (f_new > f_cur).long()
        better = f_new > f_max
        x_max = torch.where(_per_sample(better, x), x_new, x_max)
        g_max = torch.where(_per_sample(better, x), g_new, g_max)
        f_max = torch.where(better, f_new, f_max)
        take = s_new & (f_new > f_succ)
        x_succ = torch.where(_per_sample(take, x), x_new, x_succ)
        f_succ = torch.where(take, f_new, f_succ)
        found |= s_new

        x_prev, x_cur, f_cur, g_cur = x_cur, x_new, f_new, g_new
        it = k + 1
        if it in ckpts:
            cond1 = n_increase.double() < rho * (it - last_ckpt)
            cond2 = ~halved_at_ckpt & (f_max <= f_max_at_ckpt)
            halve = cond1 | cond2
            eta = torch.where(halve, eta / 2, eta)
            x_cur = torch.where(_per_sample(halve, x), x_max, x_cur)
            g_cur = torch.where(_per_sample(halve, x), g_max, g_cur)
            f_cur = torch.where(halve, f_max, f_cur)
            halved_at_ckpt = halve
            f_max_at_ckpt = f_max.clone()
            n_increase.zero_()
            last_ckpt = it

    x_best = torch.where(_per_sample(found, x), x_succ, x_max)
    f_best = torch.where(found, f_succ, f_max)
    return x_best, f_best, found


def apgd(
    logits_fn: LogitsFn,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm = "l2",
    steps: int = 100,
    n_restarts: int = 1,
    loss: Literal["ce", "dlr"] = "ce",
    targeted: bool = False,
    rho: float = 0.75,
    momentum: float = 0.75,
    generator: torch.Generator | None = None,
    model: nn.Module | None = None,
) -> Tensor:
    """Auto-PGD (Croce & Hein 2020) with CE (default) or DLR loss on a classifier ``logits_fn(x) -> [B, K]``.

    Untargeted maximises ``CE(z, y)`` / ``DLR(z, y)``; ``targeted`` (CE only) maximises ``-CE(z, y)`` with
    ``y`` the target classes. ``logits_fn`` may be any differentiable callable, e.g. zero-shot CLIP logits
    (see :class:`ZeroShotClassifier`). Restarts rerun from new random starts on the samples not yet fooled.
    Per sample returns the strongest fooling point found, else the highest-loss point. Each run makes
    ``steps`` updates (``steps + 1`` gradient evaluations, counting the start). ``model`` (default:
    ``logits_fn`` if it is a module) is held in eval mode during the attack.
    """
    eps = _check_eps(eps)
    norm = _check_norm(norm)
    steps = _check_positive_int(steps, "steps")
    n_restarts = _check_positive_int(n_restarts, "n_restarts")
    if loss not in APGD_LOSSES:
        raise UserError(f"unknown APGD loss {loss!r}; use one of {', '.join(APGD_LOSSES)}")
    if targeted and loss != "ce":
        raise UserError("targeted APGD supports loss='ce' only")
    if not 0 < rho <= 1:
        raise UserError(f"rho must be in (0, 1], got {rho!r}")
    if not 0 < momentum <= 1:
        raise UserError(f"momentum must be in (0, 1], got {momentum!r}")
    x = _check_images(x)
    y = _check_labels(y, x)
    x_best = x.clone()
    if x.shape[0] == 0:
        return x_best
    f_best = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    with eval_mode(_module_of(logits_fn, model)):
        for _ in range(n_restarts):
            idx = (~fooled).nonzero()[:, 0]
            if idx.numel() == 0:
                break
            evaluate = _objective(logits_fn, y[idx], loss, targeted)
            xr, fr, sr = _apgd_single_run(evaluate, x[idx], eps, norm, steps, rho, momentum, generator)
            keep = sr | (fr > f_best[idx])
            x_best[idx[keep]] = xr[keep]
            f_best[idx[keep]] = fr[keep]
            fooled[idx] = sr
    return x_best.detach()


class APGD:
    """APGD on a classifier: ``APGD(model, eps, norm, steps, ...)(x, y) -> x_adv`` (see :func:`apgd`)."""

    def __init__(
        self,
        model: LogitsFn,
        eps: float,
        norm: Norm = "l2",
        steps: int = 100,
        *,
        n_restarts: int = 1,
        loss: Literal["ce", "dlr"] = "ce",
        targeted: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.model = model
        self.eps = _check_eps(eps)
        self.norm = _check_norm(norm)
        self.steps = _check_positive_int(steps, "steps")
        self.n_restarts = _check_positive_int(n_restarts, "n_restarts")
        if loss not in APGD_LOSSES:
            raise UserError(f"unknown APGD loss {loss!r}; use one of {', '.join(APGD_LOSSES)}")
        self.loss = loss
        self.targeted = targeted
        self.generator = generator

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return apgd(
            self.model,
            x,
            y,
            eps=self.eps,
            norm=self.norm,
            steps=self.steps,
            n_restarts=self.n_restarts,
            loss=self.loss,
            targeted=self.targeted,
            generator=self.generator,
        )


# ----------------------------------------------------------------------------------------------- zero-shot
class ZeroShotClassifier(nn.Module):
    """Zero-shot CLIP logits ``s · normalize(f(x)) @ normalize(T)^T`` as a differentiable classifier.

    ``image_encoder``: a module with ``encode_image(pixels in [0, 1])`` (e.g. ``ClipModel``) or a callable
    module mapping images to features; ``text_features``: ``[K, D]`` class embeddings; ``scale``: ``s``.
    """

    def __init__(self, image_encoder: nn.Module, text_features: Tensor, scale: float = 100.0) -> None:
        super().__init__()
        if text_features.ndim != 2:
            raise UserError(f"text_features must be [K, D], got shape {tuple(text_features.shape)}")
        self.image_encoder = image_encoder
        self.register_buffer("text_features", F.normalize(text_features.detach().float(), dim=-1))
        self.scale = float(scale)

    def forward(self, pixels: Tensor) -> Tensor:
        encode = getattr(self.image_encoder, "encode_image", self.image_encoder)
        feats = F.normalize(encode(pixels).float(), dim=-1)
        return self.scale * feats @ self.text_features.T


# ---------------------------------------------------------------------------------------------- accuracy
def _batches(n: int, batch_size: int | None) -> Iterator[slice]:
    size = n if batch_size is None else _check_positive_int(batch_size, "batch_size")
    for start in range(0, n, max(size, 1)):
        yield slice(start, start + size)


@torch.no_grad()
def _correct(logits_fn: LogitsFn, x: Tensor, y: Tensor) -> Tensor:
    return logits_fn(x).argmax(dim=1) == y


def clean_accuracy(
    logits_fn: LogitsFn,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int | None = None,
    model: nn.Module | None = None,
) -> float:
    """``mean_i 1[argmax logits_fn(x_i) = y_i]`` (in eval mode if ``logits_fn``/``model`` is a module)."""
    x = _check_images(x)
    y = _check_labels(y, x)
    if x.shape[0] == 0:
        raise UserError("x is empty")
    with eval_mode(_module_of(logits_fn, model)):
        hits = sum(int(_correct(logits_fn, x[s], y[s]).sum()) for s in _batches(x.shape[0], batch_size))
    return hits / x.shape[0]


def robust_accuracy(
    logits_fn: LogitsFn,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm = "l2",
    attack: Literal["pgd", "apgd"] = "apgd",
    steps: int | None = None,
    step_size: float | None = None,
    n_restarts: int = 1,
    loss: Literal["ce", "dlr"] = "ce",
    random_start: bool = True,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    model: nn.Module | None = None,
) -> float:
    """``mean_i 1[f(x_i) = y_i and f(A(x_i)) = y_i]`` for attack ``A`` = PGD-CE or APGD within ``S``.

    Only clean-correct samples are attacked. ``steps`` defaults to 10 (PGD) / 100 (APGD); ``step_size``
    (PGD only) to ``2.5 eps / steps``; ``n_restarts``/``loss`` are APGD options.
    """
    if attack not in ATTACKS:
        raise UserError(f"unknown attack {attack!r}; use one of {', '.join(ATTACKS)}")
    eps = _check_eps(eps)
    norm = _check_norm(norm)
    steps = _check_positive_int((10 if attack == "pgd" else 100) if steps is None else steps, "steps")
    if step_size is not None:
        _check_step_size(step_size)
    x = _check_images(x)
    y = _check_labels(y, x)
    if x.shape[0] == 0:
        raise UserError("x is empty")
    hits = 0
    with eval_mode(_module_of(logits_fn, model)):
        for s in _batches(x.shape[0], batch_size):
            xb, yb = x[s], y[s]
            ok = _correct(logits_fn, xb, yb)
            idx = ok.nonzero()[:, 0]
            if idx.numel() == 0:
                continue
            xa, ya = xb[idx], yb[idx]
            if attack == "pgd":

                def ce(xi: Tensor, ya: Tensor = ya) -> Tensor:
                    return F.cross_entropy(logits_fn(xi), ya, reduction="none")

                x_adv = pgd(
                    ce,
                    xa,
                    eps=eps,
                    norm=norm,
                    steps=steps,
                    step_size=step_size,
                    random_start=random_start,
                    generator=generator,
                )
            else:
                x_adv = apgd(
                    logits_fn,
                    xa,
                    ya,
                    eps=eps,
                    norm=norm,
                    steps=steps,
                    n_restarts=n_restarts,
                    loss=loss,
                    generator=generator,
                    model=model,
                )
            hits += int(_correct(logits_fn, x_adv, ya).sum())
    return hits / x.shape[0]
