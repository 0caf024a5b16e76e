"""Adversarial attacks on images in [0, 1]: PGD (L2 / Linf), APGD-CE/DLR and robust accuracy.

Threat model: ``S = {x' : ||x' - x||_p <= eps, x' in [0, 1]^d}`` with ``p in {2, inf}``. Every iterate is
projected with ``P_S(v) = clip_[0,1](x + Pi_eps(v - x))`` where ``Pi_eps`` renormalises (L2) or clamps (Linf)
the perturbation; because ``x`` is in [0, 1] the final clip never leaves the eps-ball.

Gradients are taken with ``torch.autograd.grad`` w.r.t. the images only, so model parameters never receive
``.grad``; all returned tensors are detached.

Randomness. Every random draw (the random starts) uses a ``torch.Generator`` on the device of the images:
``generator`` may be an ``int`` seed (a generator is then created on the images' device), a generator that
already lives there (one on another device is refused with a :class:`UserError`), or None (the global RNG
of that device). On the CPU a seed gives the same numbers as ``torch.Generator().manual_seed(seed)``.

APGD comes in two variants (``compat``): ``"autoattack"`` reproduces ``APGDAttack`` of the AutoAttack code
(fra31/auto-attack, the numbers RobustBench reports) operation for operation; ``"paper"`` is this project's
earlier variant, written from the text of Croce & Hein (2020, Alg. 1). See :func:`apgd`.
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
Compat = Literal["autoattack", "paper"]
LossFn = Callable[[Tensor], Tensor]
LogitsFn = Callable[[Tensor], Tensor]
GeneratorArg = torch.Generator | int | None

NORMS: tuple[str, ...] = ("l2", "linf")
ATTACKS: tuple[str, ...] = ("pgd", "apgd")
APGD_LOSSES: tuple[str, ...] = ("ce", "dlr")
COMPAT_MODES: tuple[str, ...] = ("autoattack", "paper")
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
    "make_generator",
    "pgd",
    "project",
    "random_init",
    "robust_accuracy",
]


# ---------------------------------------------------------------------------------------------- validation
def _check_eps(eps: float) -> float:
    """``eps`` as a float; a :class:`UserError` unless it is a finite number > 0."""
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps) or eps <= 0:
        raise UserError(f"eps must be a finite number > 0, got {eps!r}")
    return float(eps)


def _check_norm(norm: str) -> Norm:
    """``norm`` if it is ``"l2"`` or ``"linf"``, else a :class:`UserError`."""
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    return norm  # type: ignore[return-value]


def _check_positive_int(value: int, name: str) -> int:
    """``value`` if it is an ``int >= 1`` (not a bool), else a :class:`UserError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _check_step_size(step_size: float) -> float:
    """``step_size`` as a float; a :class:`UserError` unless it is a finite number > 0."""
    ok = not isinstance(step_size, bool) and isinstance(step_size, int | float)
    if not ok or not math.isfinite(step_size) or step_size <= 0:
        raise UserError(f"step_size must be a finite number > 0, got {step_size!r}")
    return float(step_size)


def _check_images(x: Tensor) -> Tensor:
    """``x`` detached; a :class:`UserError` unless it is a floating-point batch ``[B, ...]`` in [0, 1]."""
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise UserError("x must be a floating-point tensor [B, ...] of images in [0, 1]")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise UserError(f"x must lie in [0, 1], got range [{x.min().item():.4g}, {x.max().item():.4g}]")
    return x.detach()


def _check_labels(y: Tensor, x: Tensor) -> Tensor:
    """``y`` as a detached long tensor; a :class:`UserError` unless it holds one integer label per image."""
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise UserError(f"y must be an integer tensor of shape [{x.shape[0]}] (one label per image)")
    return y.detach().long()


def _check_compat(compat: str) -> Compat:
    """``compat`` if it is ``"autoattack"`` or ``"paper"``, else a :class:`UserError`."""
    if compat not in COMPAT_MODES:
        raise UserError(f"unknown APGD compat {compat!r}; use one of {', '.join(COMPAT_MODES)}")
    return compat  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ generators
_GENERATOR_TYPE = torch.Generator  # the class itself, kept for isinstance checks


def _device_key(device: torch.device | str) -> tuple[str, int]:
    """``(type, index)`` of ``device``; a missing index is the current CUDA device (``cuda`` = ``cuda:0``) or 0."""
    d = torch.device(device)
    if d.index is not None:
        return d.type, d.index
    if d.type == "cuda" and torch.cuda.is_available():
        return d.type, torch.cuda.current_device()
    return d.type, 0


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """``torch.Generator(device=device).manual_seed(seed)``: a seeded generator on the images' device.

    On the CPU it draws the same numbers as ``torch.Generator().manual_seed(seed)``; CUDA generators draw a
    different (but equally deterministic) stream for the same seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"a generator seed must be an int, got {seed!r}")
    return torch.Generator(device=device).manual_seed(seed)


def _resolve_generator(generator: GeneratorArg, device: torch.device) -> torch.Generator | None:
    """The generator to draw with on ``device``: an ``int`` becomes :func:`make_generator` on ``device``.

    A generator on another device is refused (PyTorch cannot draw CUDA numbers with a CPU generator);
    None stays None (the global RNG of ``device``).
    """
    if generator is None:
        return None
    if isinstance(generator, _GENERATOR_TYPE):
        if _device_key(generator.device) != _device_key(device):
            raise UserError(
                f"the generator is on {generator.device} but the images are on {device}; pass an int seed or "
                f"torch.Generator(device=x.device)"
            )
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return make_generator(generator, device)
    raise UserError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")


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


def random_init(x: Tensor, eps: float, norm: Norm, generator: GeneratorArg = None) -> Tensor:
    """A random point of ``S`` around ``x`` (torchattacks' conventions), drawn on ``x``'s device.

    L2: ``x + eps · r · u / ||u||_2`` with ``u ~ N(0, I)`` and ``r ~ U[0, 1]`` per sample (the radius, not
    the volume, is uniform; draws ``u`` then ``r`` as PGDL2 does, so equal seeds give equal starts).
    Linf: ``x + U[-eps, eps]^d``. Both are clipped to [0, 1]. ``generator``: see the module docstring.
    """
    generator = _resolve_generator(generator, x.device)
    if norm == "l2":
        u = torch.empty_like(x).normal_(generator=generator)
        r = torch.empty((x.shape[0],), dtype=x.dtype, device=x.device).uniform_(0, 1, generator=generator)
        delta = u * _per_sample(r * eps / _l2(u).clamp_min(1e-12), u)
    else:
        delta = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    return (x + delta).clamp(0.0, 1.0)


def _aa_norm_per_sample(t: Tensor, norm: Norm) -> Tensor:
    """AutoAttack's per-sample norm, shaped ``[B, 1, ...]``: ``max_i |t_i|`` (Linf) or ``sqrt(sum_i t_i^2)`` (L2).

    The L2 norm is ``(t ** 2).sum().sqrt()`` rather than ``Tensor.norm``: the rounding must be AutoAttack's.
    """
    flat = t.reshape(t.shape[0], -1)
    n = flat.abs().max(dim=1)[0] if norm == "linf" else (flat**2).sum(-1).sqrt()
    return n.view(-1, *([1] * (t.ndim - 1)))


def _aa_normalize(t: Tensor, norm: Norm) -> Tensor:
    """AutoAttack's ``t / (||t||_p + 1e-12)`` per sample (``p`` = 2 or inf)."""
    return t / (_aa_norm_per_sample(t, norm) + 1e-12)


def _aa_project(v: Tensor, x: Tensor, eps: float, norm: Norm) -> Tensor:
    """AutoAttack's projection onto ``S``, in its order of operations (which fixes the float32 rounding).

    Linf: ``clip_[0,1](min(max(v, x - eps), x + eps))``; L2: ``clip_[0,1](x + d / (||d|| + 1e-12) · min(eps, ||d||))``
    with ``d = v - x``.
    """
    if norm == "linf":
        return torch.min(torch.max(v, x - eps), x + eps).clamp(0.0, 1.0)
    d = v - x
    return (x + _aa_normalize(d, "l2") * torch.min(eps * torch.ones_like(x), _aa_norm_per_sample(d, "l2"))).clamp(
        0.0, 1.0
    )


def _autoattack_init(x: Tensor, eps: float, norm: Norm, generator: torch.Generator | None) -> Tensor:
    """AutoAttack's APGD start ``clip_[0,1](x + eps · t / ||t||_p)``: on the eps-sphere before the clip.

    Linf: ``t = 2 U[0, 1)^d - 1`` (so ``||delta||_inf = eps``); L2: ``t ~ N(0, I)``. Drawn on ``x``'s device;
    on the CPU a generator seeded ``s`` gives exactly AutoAttack's start for ``seed=s`` (AutoAttack always
    draws on the CPU, so on a GPU the start differs from AutoAttack's while every later step is the same).
    """
    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) - 1
    else:
        t = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + eps * torch.ones_like(x) * _aa_normalize(t, norm)).clamp(0.0, 1.0)


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
    """The module whose mode the attack controls: ``model``, else ``fn`` if it is a module, else None."""
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
    generator: GeneratorArg = None,
) -> Tensor:
    """Projected gradient ascent on a per-sample loss ``loss_fn(x_adv) -> [B]`` (descent if ``targeted``).

    ``x_{k+1} = P_S(x_k + s · a · d(∇ l(x_k)))`` with ``s = +1`` (untargeted) / ``-1`` (targeted), step size
    ``a`` (default ``2.5 eps / steps``) and ``d(g) = g / ||g||_2`` (L2) or ``sign(g)`` (Linf). ``x_0`` is
    :func:`random_init` (if ``random_start``) or ``x``. Like torchattacks, ``g`` is the gradient of the batch
    mean ``(1/B) sum_i l_i`` (this only matters through the ``1e-10`` guard in the L2 normaliser), so with CE
    it reproduces torchattacks ``PGDL2`` / ``PGD`` step for step. ``generator``: see the module docstring.
    """
    eps = _check_eps(eps)
    norm = _check_norm(norm)
    steps = _check_positive_int(steps, "steps")
    alpha = 2.5 * eps / steps if step_size is None else _check_step_size(step_size)
    x = _check_images(x)
    if x.shape[0] == 0:
        return x.clone()
    sign = -1.0 if targeted else 1.0
    generator = _resolve_generator(generator, x.device)
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
        generator: GeneratorArg = None,
    ) -> None:
        """Store the attack's settings (validated here, so bad ones fail before any image is seen)."""
        self.model = model
        self.eps = _check_eps(eps)
        self.norm = _check_norm(norm)
        self.steps = _check_positive_int(steps, "steps")
        self.step_size = 2.5 * self.eps / self.steps if step_size is None else _check_step_size(step_size)
        self.random_start = random_start
        self.targeted = targeted
        self.generator = generator

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial images for ``(x, y)`` (see the class docstring)."""
        x = _check_images(x)
        y = _check_labels(y, x)
        model = self.model

        def loss_fn(xa: Tensor) -> Tensor:
            """``CE(model(xa), y)`` per sample."""
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
    """Difference of logits ratio ``DLR(z, y) = -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3 + 1e-12)`` per sample.

    ``z_π1 >= z_π2 >= ...`` are the sorted logits; needs at least 3 classes.
    """
    if logits.shape[-1] < 3:
        raise UserError("the DLR loss needs at least 3 classes")
    top, top_idx = logits.topk(3, dim=1)
    z_y = logits.gather(1, y[:, None])[:, 0]
    best_other = torch.where(top_idx[:, 0] == y, top[:, 1], top[:, 0])
    return -(z_y - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def _dlr_loss_autoattack(logits: Tensor, y: Tensor) -> Tensor:
    """The same ``DLR(z, y) = -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3 + 1e-12)``, computed as AutoAttack does.

    With ``s = sort(z)`` ascending and ``m = 1[argmax z = y]`` (argmax as ``sort`` orders ties):
    ``-(z_y - s_{-2} m - s_{-1} (1 - m)) / (s_{-1} - s_{-3} + 1e-12)``. Equal to :func:`dlr_loss` in value; the
    separate graph keeps AutoAttack's tie-breaking and gradient bit for bit. Needs at least 3 classes.
    """
    if logits.shape[-1] < 3:
        raise UserError("the DLR loss needs at least 3 classes")
    s, order = logits.sort(dim=1)
    m = (order[:, -1] == y).float()
    z_y = logits[torch.arange(logits.shape[0], device=logits.device), y]
    return -(z_y - s[:, -2] * m - s[:, -1] * (1.0 - m)) / (s[:, -1] - s[:, -3] + 1e-12)


def _autoattack_periods(steps: int) -> tuple[int, int, int]:
    """AutoAttack's ``(first period, decrement, shortest period)`` for ``N`` steps.

    ``(max(⌊0.22 N⌋, 1), max(⌊0.03 N⌋, 1), max(⌊0.06 N⌋, 1))``, with the products taken in float64 exactly as
    ``int(0.22 * N)`` etc. in AutoAttack (so e.g. ``N = 50`` gives ``(11, 1, 3)``).
    """
    return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)


def apgd_checkpoints(steps: int, compat: Compat = "paper") -> list[int]:
    """Iteration counts after which APGD checks its step size (and may halve it and restart).

    ``paper``: ``w_j = ceil(p_j · N)`` with ``0 < w_j < N``, ``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (Croce & Hein 2020, Sec. 3.2).

    ``autoattack``: the running sums of the periods ``k_0 = max(⌊0.22 N⌋, 1)``,
    ``k_{j+1} = max(k_j - max(⌊0.03 N⌋, 1), max(⌊0.06 N⌋, 1))`` that are ``<= N`` (AutoAttack checks after
    ``k_j`` further iterations; a check at ``N`` itself is listed but changes nothing that is returned).
    ``N = 100`` gives the same list in both modes; ``N = 50`` does not.
    """
    steps = _check_positive_int(steps, "steps")
    if _check_compat(compat) == "autoattack":
        period, decrement, shortest = _autoattack_periods(steps)
        out, done = [], 0
        while done + period <= steps:
            done += period
            out.append(done)
            period = max(period - decrement, shortest)
        return out
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    ws = {math.ceil(round(pj * steps, 6)) for pj in p[1:]}
    return sorted(w for w in ws if 0 < w < steps)


def _objective(
    logits_fn: LogitsFn,
    y: Tensor,
    loss: str,
    targeted: bool,
    dlr_fn: Callable[[Tensor, Tensor], Tensor] = dlr_loss,
) -> Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]:
    """``x_adv -> (loss [B], ∇ sum_i loss_i, success [B])`` for the chosen APGD loss.

    ``loss``: ``CE(z, y)`` (``-CE(z, y)`` if ``targeted``) or ``dlr_fn(z, y)``; success is ``argmax z ≠ y``
    (``= y`` if ``targeted``), read off the same forward pass.
    """

    def evaluate(x_adv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Loss, gradient and success at ``x_adv`` from one forward and one backward pass."""
        logits_box: list[Tensor] = []

        def loss_fn(xa: Tensor) -> Tensor:
            """The per-sample APGD loss at ``xa``; keeps the logits for the success test."""
            logits = logits_fn(xa)
            logits_box.append(logits.detach())
            if loss == "dlr":
                return dlr_fn(logits, y)
            ce = F.cross_entropy(logits, y, reduction="none")
            return -ce if targeted else ce

        value, grad = _loss_and_grad(loss_fn, x_adv)
        pred = logits_box[0].max(dim=1)[1]
        success = pred == y if targeted else pred != y
        return value, grad, success

    return evaluate


def _apgd_paper_run(
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]],
    x: Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    rho: float,
    momentum: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One APGD run, ``compat="paper"`` (Croce & Hein 2020, Alg. 1); returns ``(x_best, loss_best, success)``.

    ``z = P_S(x_k + η d(∇f(x_k)))``, ``x_{k+1} = P_S(x_k + α(z - x_k) + (1-α)(x_k - x_{k-1}))`` (``x_1 = z``),
    ``η_0 = 2 eps``. At checkpoint ``w_j`` a sample halves ``η`` and restarts from its best point if
    (1) ``#{k in [w_{j-1}, w_j): f(x_{k+1}) > f(x_k)} < ρ (w_j - w_{j-1})`` or (2) ``η`` was not halved
    at ``w_{j-1}`` and ``f_max`` did not improve since ``w_{j-1}``; after a restart the next increase is
    counted against ``f_max``. ``x_best`` is the highest-loss successful point if any, else the highest-loss
    point.
    """
    n = x.shape[0]
    ckpts = set(apgd_checkpoints(steps, "paper"))
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


class _AutoAttackStepControl:
    """AutoAttack's step-size rule for one APGD run, fed the per-sample loss of every iterate.

    Keeps AutoAttack's loss history ``h`` (``[N, B]``, zero-initialised; ``h[i] = f(x^(i+1))``), the best
    loss ``f_best`` (start included), and per checkpoint the best loss and the decision of the previous one.
    After ``k`` further iterations (the period, see :func:`apgd_checkpoints`) at iteration index ``i`` a sample
    halves its step and restarts from its best point if

    1. ``#{c < k : h[i-c] > h[i-c-1]} <= ρ k`` (the index wraps like Python's, so the first window compares
       ``f(x^(1))`` with the zero in ``h[-1]``, and after a restart the first comparison is with the loss of
       the iterate it left, not with ``f_best``), or
    2. it did not halve at the previous checkpoint (all samples count as having halved before the first one)
       and ``f_best`` did not increase since then.
    """

    def __init__(self, steps: int, f_start: Tensor, rho: float) -> None:
        """Start a run of ``steps`` iterations whose start point has loss ``f_start`` ``[B]``."""
        self.period, self.decrement, self.shortest = _autoattack_periods(steps)
        self.rho = rho
        self.count = 0
        self.history = torch.zeros((steps, f_start.shape[0]), dtype=f_start.dtype, device=f_start.device)
        self.f_best = f_start.clone()
        self.f_best_at_check = f_start.clone()
        self.halved_at_check = torch.ones(f_start.shape[0], dtype=torch.bool, device=f_start.device)

    def update(self, i: int, f: Tensor) -> tuple[Tensor, Tensor | None]:
        """Record ``f = f(x^(i+1))``; return ``(f > f_best, halve)`` with ``halve`` None between checkpoints."""
        self.history[i] = f
        improved = f > self.f_best
        self.f_best = torch.where(improved, f, self.f_best)
        self.count += 1
        if self.count < self.period:
            return improved, None
        k = self.period
        increases = torch.zeros(f.shape[0], dtype=torch.float32, device=f.device)
        for c in range(k):
            increases += (self.history[i - c] > self.history[i - c - 1]).float()
        # AutoAttack compares the float32 count with float32(k · ρ); with ρ = 0.75 both sides are exact.
        oscillating = increases <= torch.full_like(increases, k * self.rho)
        stalled = ~self.halved_at_check & (self.f_best_at_check >= self.f_best)
        halve = oscillating | stalled
        self.halved_at_check = halve
        self.f_best_at_check = self.f_best.clone()
        self.period = max(k - self.decrement, self.shortest)
        self.count = 0
        return improved, halve


def _apgd_autoattack_run(
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]],
    x: Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    rho: float,
    momentum: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """One APGD run as ``APGDAttack.attack_single_run``; returns ``(fooled [B], x_adv)``.

    ``z = P(x_k + η_k d(g_k))``, ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))`` with ``a = 1`` at
    the first step and ``a = α`` after, ``η_0 = 2 eps``, ``d(g) = g / (||g||_2 + 1e-12)`` (L2) or ``sign(g)``
    (Linf), ``P`` = :func:`_aa_project`. ``x_best`` (highest loss so far) and its gradient replace the iterate
    when :class:`_AutoAttackStepControl` halves ``η``; ``x_{k-1}`` is then still the point before the last
    step. ``fooled``: misclassified at the start or at any iterate; ``x_adv``: the *last* misclassified iterate
    (the start if only that was), else the start point.
    """
    x_adv = _autoattack_init(x, eps, norm, generator)
    f, grad, success = evaluate(x_adv)
    fooled = success.clone()
    x_last_fooled = x_adv.clone()
    x_best, grad_best = x_adv.clone(), grad.clone()
    control = _AutoAttackStepControl(steps, f, rho)
    step = torch.full((x.shape[0], *([1] * (x.ndim - 1))), 2.0 * eps, dtype=x.dtype, device=x.device)
    x_old = x_adv
    for i in range(steps):
        diff = x_adv - x_old
        x_old = x_adv
        a = momentum if i > 0 else 1.0
        direction = grad.sign() if norm == "linf" else _aa_normalize(grad, "l2")
        z = _aa_project(x_adv + step * direction, x, eps, norm)
        x_adv = _aa_project(x_adv + (z - x_adv) * a + diff * (1 - a), x, eps, norm)

        f, grad, success = evaluate(x_adv)
        fooled |= success
        x_last_fooled = torch.where(_per_sample(success, x), x_adv, x_last_fooled)
        improved, halve = control.update(i, f)
        x_best = torch.where(_per_sample(improved, x), x_adv, x_best)
        grad_best = torch.where(_per_sample(improved, x), grad, grad_best)
        if halve is not None:
            step = torch.where(_per_sample(halve, x), step / 2.0, step)
            x_adv = torch.where(_per_sample(halve, x), x_best, x_adv)
            grad = torch.where(_per_sample(halve, x), grad_best, grad)
    return fooled, x_last_fooled


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
    generator: GeneratorArg = None,
    model: nn.Module | None = None,
    compat: Compat = "paper",
) -> Tensor:
    """Auto-PGD (Croce & Hein 2020) with CE (default) or DLR loss on a classifier ``logits_fn(x) -> [B, K]``.

    Untargeted maximises ``CE(z, y)`` / ``DLR(z, y)`` (:func:`dlr_loss`); ``logits_fn`` may be any
    differentiable callable, e.g. zero-shot CLIP logits (see :class:`ZeroShotClassifier`). Each run makes
    ``steps`` updates (``steps + 1`` gradient evaluations, counting the start); ``rho`` is the oscillation
    threshold, ``momentum`` the weight ``α`` of the new step. ``model`` (default: ``logits_fn`` if it is a
    module) is held in eval mode during the attack. ``generator``: see the module docstring.

    ``compat="autoattack"`` is ``APGDAttack(norm, eps, n_iter=steps, n_restarts, loss, rho, seed).perturb(x, y)``
    of fra31/auto-attack: only clean-correct samples are attacked; start on the eps-sphere
    (:func:`_autoattack_init`); checkpoints ``max(⌊0.22N⌋, 1)``, then periods shrinking by ``max(⌊0.03N⌋, 1)``
    down to ``max(⌊0.06N⌋, 1)`` (:func:`apgd_checkpoints`); the step rule of :class:`_AutoAttackStepControl`
    (``≤ ρk`` increases, no stall test at the first checkpoint); its float32 order of operations. Each restart
    reruns the samples not yet fooled with the next random start. Returns per sample the last misclassified
    iterate of the run that fooled it (the start counts), else ``x`` unchanged (so also for samples that are
    misclassified clean). ``generator=None`` means seed 0 (AutoAttack's default); with the same seed on the CPU
    the result equals AutoAttack's bit for bit. Untargeted only; ``momentum`` is fixed at 0.75 in AutoAttack.

    ``compat="paper"`` (the default, this project's earlier variant) follows the paper's text instead: start
    ``x + eps · r · u`` with radius ``r ~ U[0, 1]`` (:func:`random_init`), checkpoints ``ceil(p_j N)``, strict
    ``< ρ (w_j - w_{j-1})``, the stall test already at the first checkpoint, increases after a restart counted
    against ``f_max``; it attacks every sample, restarts rerun the samples not yet fooled, and it returns per
    sample the strongest fooling point found, else the highest-loss point. ``targeted`` (CE only) maximises
    ``-CE(z, y)`` with ``y`` the target classes.
    """
    eps = _check_eps(eps)
    norm = _check_norm(norm)
    steps = _check_positive_int(steps, "steps")
    n_restarts = _check_positive_int(n_restarts, "n_restarts")
    compat = _check_compat(compat)
    if loss not in APGD_LOSSES:
        raise UserError(f"unknown APGD loss {loss!r}; use one of {', '.join(APGD_LOSSES)}")
    if targeted and loss != "ce":
        raise UserError("targeted APGD supports loss='ce' only")
    if targeted and compat == "autoattack":
        raise UserError("compat='autoattack' reproduces untargeted APGD only; use compat='paper' for targeted")
    if not 0 < rho <= 1:
        raise UserError(f"rho must be in (0, 1], got {rho!r}")
    if not 0 < momentum <= 1:
        raise UserError(f"momentum must be in (0, 1], got {momentum!r}")
    x = _check_images(x)
    y = _check_labels(y, x)
    if compat == "autoattack" and generator is None:
        generator = 0
    generator = _resolve_generator(generator, x.device)
    x_best = x.clone()
    if x.shape[0] == 0:
        return x_best

    with eval_mode(_module_of(logits_fn, model)):
        if compat == "autoattack":
            return _apgd_autoattack(logits_fn, x, y, eps, norm, steps, n_restarts, loss, rho, momentum, generator)
        f_best = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(n_restarts):
            idx = (~fooled).nonzero()[:, 0]
            if idx.numel() == 0:
                break
            evaluate = _objective(logits_fn, y[idx], loss, targeted)
            xr, fr, sr = _apgd_paper_run(evaluate, x[idx], eps, norm, steps, rho, momentum, generator)
            keep = sr | (fr > f_best[idx])
            x_best[idx[keep]] = xr[keep]
            f_best[idx[keep]] = fr[keep]
            fooled[idx] = sr
    return x_best.detach()


def _apgd_autoattack(
    logits_fn: LogitsFn,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    n_restarts: int,
    loss: str,
    rho: float,
    momentum: float,
    generator: torch.Generator | None,
) -> Tensor:
    """``APGDAttack.perturb``: restarts of :func:`_apgd_autoattack_run` on the clean-correct, not yet fooled
    samples; fooled samples get their last misclassified iterate, the others stay ``x``."""
    with torch.no_grad():
        robust = logits_fn(x).max(dim=1)[1] == y
    adv = x.clone()
    for _ in range(n_restarts):
        idx = robust.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        evaluate = _objective(logits_fn, y[idx], loss, False, dlr_fn=_dlr_loss_autoattack)
        fooled, x_adv = _apgd_autoattack_run(evaluate, x[idx], eps, norm, steps, rho, momentum, generator)
        adv[idx[fooled]] = x_adv[fooled]
        robust[idx[fooled]] = False
    return adv.detach()


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
        generator: GeneratorArg = None,
        compat: Compat = "paper",
    ) -> None:
        """Store the attack's settings (validated here, so bad ones fail before any image is seen)."""
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
        self.compat = _check_compat(compat)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial images for ``(x, y)`` (see :func:`apgd`)."""
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
            compat=self.compat,
        )


# ----------------------------------------------------------------------------------------------- zero-shot
class ZeroShotClassifier(nn.Module):
    """Zero-shot CLIP logits ``s · normalize(f(x)) @ normalize(T)^T`` as a differentiable classifier.

    ``image_encoder``: a module with ``encode_image(pixels in [0, 1])`` (e.g. ``ClipModel``) or a callable
    module mapping images to features; ``text_features``: ``[K, D]`` class embeddings; ``scale``: ``s``.
    """

    def __init__(self, image_encoder: nn.Module, text_features: Tensor, scale: float = 100.0) -> None:
        """Keep ``image_encoder`` and the L2-normalised ``text_features`` (a buffer, so it moves with ``.to``)."""
        super().__init__()
        if text_features.ndim != 2:
            raise UserError(f"text_features must be [K, D], got shape {tuple(text_features.shape)}")
        self.image_encoder = image_encoder
        self.register_buffer("text_features", F.normalize(text_features.detach().float(), dim=-1))
        self.scale = float(scale)

    def forward(self, pixels: Tensor) -> Tensor:
        """Logits ``[B, K]`` of ``pixels`` in [0, 1]."""
        encode = getattr(self.image_encoder, "encode_image", self.image_encoder)
        feats = F.normalize(encode(pixels).float(), dim=-1)
        return self.scale * feats @ self.text_features.T


# ---------------------------------------------------------------------------------------------- accuracy
def _batches(n: int, batch_size: int | None) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of length ``batch_size`` (one slice of everything if None)."""
    size = n if batch_size is None else _check_positive_int(batch_size, "batch_size")
    for start in range(0, n, max(size, 1)):
        yield slice(start, start + size)


@torch.no_grad()
def _correct(logits_fn: LogitsFn, x: Tensor, y: Tensor) -> Tensor:
    """``argmax logits_fn(x_i) = y_i`` per sample, without gradients."""
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
    generator: GeneratorArg = None,
    model: nn.Module | None = None,
    compat: Compat = "paper",
) -> float:
    """``mean_i 1[f(x_i) = y_i and f(A(x_i)) = y_i]`` for attack ``A`` = PGD-CE or APGD within ``S``.

    Only clean-correct samples are attacked. ``steps`` defaults to 10 (PGD) / 100 (APGD); ``step_size``
    (PGD only) to ``2.5 eps / steps``; ``n_restarts``/``loss``/``compat`` are APGD options (:func:`apgd`).
    A seed (or a generator) is one random stream over all batches, except for ``compat="autoattack"`` with a
    seed or None (seed 0), where every batch starts from that seed, as each ``APGDAttack.perturb`` call does.
    """
    if attack not in ATTACKS:
        raise UserError(f"unknown attack {attack!r}; use one of {', '.join(ATTACKS)}")
    eps = _check_eps(eps)
    norm = _check_norm(norm)
    steps = _check_positive_int((10 if attack == "pgd" else 100) if steps is None else steps, "steps")
    if step_size is not None:
        _check_step_size(step_size)
    compat = _check_compat(compat)
    x = _check_images(x)
    y = _check_labels(y, x)
    if x.shape[0] == 0:
        raise UserError("x is empty")
    per_batch_seed = attack == "apgd" and compat == "autoattack" and not isinstance(generator, _GENERATOR_TYPE)
    seed = (0 if generator is None else generator) if per_batch_seed else None
    stream = _resolve_generator(seed if per_batch_seed else generator, x.device)  # also validates the seed
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
                    """``CE(logits_fn(xi), ya)`` per sample."""
                    return F.cross_entropy(logits_fn(xi), ya, reduction="none")

                x_adv = pgd(
                    ce,
                    xa,
                    eps=eps,
                    norm=norm,
                    steps=steps,
                    step_size=step_size,
                    random_start=random_start,
                    generator=stream,
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
                    generator=seed if per_batch_seed else stream,
                    model=model,
                    compat=compat,
                )
            hits += int(_correct(logits_fn, x_adv, ya).sum())
    return hits / x.shape[0]
