"""Tests for clip_t2i.robust.attacks: PGD (cross-checked against torchattacks), APGD, robust accuracy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.errors import UserError
from clip_t2i.robust.attacks import (
    APGD,
    PGD,
    ZeroShotClassifier,
    apgd,
    apgd_checkpoints,
    clean_accuracy,
    dlr_loss,
    pgd,
    robust_accuracy,
)

N_CLASSES = 5
EPS = {"l2": 1.0, "linf": 0.1}  # budgets at which the toy model is partly (not fully) robust


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(8 * 4 * 4, N_CLASSES),
    )


@pytest.fixture(scope="module", autouse=True)
def _single_thread() -> Iterator[None]:
    """The tensors here are tiny: one intra-op thread is faster and immune to CPU contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, Tensor, Tensor]:
    """A small CNN trained on noisy class prototypes (3x8x8 images in [0, 1]); returned in eval mode."""
    torch.manual_seed(0)
    g = _gen(1)
    protos = torch.rand(N_CLASSES, 3, 8, 8, generator=g)

    def sample(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, N_CLASSES, (n,), generator=g)
        return (protos[y] + 0.25 * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 1), y

    x_train, y_train = sample(512)
    x_test, y_test = sample(48)
    model = _make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        idx = torch.randint(0, 512, (64,), generator=g)
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model, x_test, y_test


def _ce(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def _acc(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _norms(delta: Tensor, norm: str) -> Tensor:
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


def _assert_feasible(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> None:
    assert x_adv.shape == x.shape
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (_norms(x_adv - x, norm) <= eps + 1e-5).all()


# ------------------------------------------------------------------------------ (a) torchattacks agreement
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_l2_matches_torchattacks(setup, random_start: bool) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = setup
    eps, alpha, steps = 1.0, 0.25, 10
    torch.manual_seed(123)  # torchattacks draws its random start from the global RNG
    ref = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)(x, y)
    ours = PGD(model, eps, "l2", steps, alpha, random_start=random_start, generator=_gen(123))(x, y)
    ce_ref, ce_ours, ce_clean = _ce(model, ref, y).mean(), _ce(model, ours, y).mean(), _ce(model, x, y).mean()
    assert ce_ours > 2 * ce_clean  # the attack does something
    assert torch.isclose(ce_ours, ce_ref, rtol=0.02)
    # Same start convention (u ~ N(0, I), r ~ U[0, 1], drawn in that order) and same steps -> same images.
    assert torch.allclose(ours, ref, atol=1e-5)


def test_pgd_linf_matches_torchattacks(setup) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = setup
    eps, steps = 0.1, 10
    for random_start in (False, True):
        torch.manual_seed(7)
        ref = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=random_start)(x, y)
        ours = PGD(model, eps, "linf", steps, eps / 4, random_start=random_start, generator=_gen(7))(x, y)
        assert torch.allclose(ours, ref, atol=1e-6)


def test_pgd_generic_loss_equals_class(setup) -> None:
    model, x, y = setup
    ours = pgd(
        lambda xa: F.cross_entropy(model(xa), y, reduction="none"),
        x,
        eps=1.0,
        norm="l2",
        steps=5,
        step_size=0.3,
        generator=_gen(3),
    )
    via_class = PGD(model, 1.0, "l2", 5, 0.3, generator=_gen(3))(x, y)
    assert torch.equal(ours, via_class)


# ---------------------------------------------------------------------------------------- (b) constraints
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_constraints(setup, norm: str) -> None:
    model, x, y = setup
    x = x.clone()
    x[:, :, :2] = 0.0  # pixels on the box boundary exercise the [0, 1] clip
    x[:, :, -2:] = 1.0
    eps = EPS[norm]
    _assert_feasible(PGD(model, eps, norm, 8, eps / 2, generator=_gen(0))(x, y), x, eps, norm)
    _assert_feasible(PGD(model, eps, norm, 8, 3 * eps, generator=_gen(0))(x, y), x, eps, norm)  # huge steps
    _assert_feasible(PGD(model, eps, norm, 8, eps / 2, targeted=True)(x, (y + 1) % N_CLASSES), x, eps, norm)
    for compat in ("paper", "autoattack"):
        _assert_feasible(apgd(model, x, y, eps=eps, norm=norm, steps=10, compat=compat, generator=0), x, eps, norm)
        x_dlr = apgd(model, x, y, eps=eps, norm=norm, steps=10, loss="dlr", n_restarts=2, compat=compat, generator=0)
        _assert_feasible(x_dlr, x, eps, norm)


# ----------------------------------------------------------------------------------------- (c) targeted
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_targeted_lowers_target_loss(setup, norm: str) -> None:
    model, x, y = setup
    target = (y + 1) % N_CLASSES
    eps = 2 * EPS[norm]
    before = _ce(model, x, target)
    x_pgd = PGD(model, eps, norm, 10, eps / 4, targeted=True, generator=_gen(0))(x, target)
    x_apgd = apgd(model, x, target, eps=eps, norm=norm, steps=10, targeted=True, generator=_gen(0))
    for x_adv in (x_pgd, x_apgd):
        after = _ce(model, x_adv, target)
        assert after.mean() < 0.5 * before.mean()
        assert (after < before).float().mean() > 0.9
        assert _acc(model, x_adv, target) > 0.0  # some images now classified as the target
        _assert_feasible(x_adv, x, eps, norm)


# ---------------------------------------------------------------------------- (d) model mode, gradients
def test_mode_restored_and_no_param_grads(setup) -> None:
    model, x, y = setup
    model.train()
    model[5].eval()  # a submodule in its own mode must keep it
    bn_stats = model[1].running_mean.clone()
    x_in = x.clone().requires_grad_(True)
    try:
        outs = [
            PGD(model, 1.0, "l2", 3, 0.3)(x_in, y),
            APGD(model, 1.0, "l2", 5)(x_in, y),
        ]
        with torch.no_grad():  # works inside no_grad as well
            outs.append(PGD(model, 0.1, "linf", 2, 0.05)(x, y))
            robust_accuracy(model, x, y, eps=1.0, attack="apgd", steps=3)
        assert model.training and model[0].training and model[1].training and not model[5].training
        assert torch.equal(model[1].running_mean, bn_stats)  # BatchNorm ran in eval mode
        assert all(p.grad is None for p in model.parameters())
        assert x_in.grad is None
        for out in outs:
            assert not out.requires_grad and out.grad_fn is None
    finally:
        model.eval()


def test_reproducible_with_generator(setup) -> None:
    model, x, y = setup
    a = apgd(model, x, y, eps=1.0, steps=5, generator=_gen(11))
    b = apgd(model, x, y, eps=1.0, steps=5, generator=_gen(11))
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------- (e) APGD
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_apgd_at_least_as_strong_as_pgd(setup, norm: str) -> None:
    """Same number of steps; averaged over three random starts; one-sample slack on accuracy."""
    model, x, y = setup
    eps, steps, seeds = EPS[norm], 20, (0, 1, 2)
    acc_pgd = acc_apgd = ce_pgd = ce_apgd = 0.0
    for seed in seeds:
        x_pgd = PGD(model, eps, norm, steps, generator=_gen(seed))(x, y)  # default step 2.5 eps / steps
        x_apgd = apgd(model, x, y, eps=eps, norm=norm, steps=steps, generator=_gen(seed))
        _assert_feasible(x_apgd, x, eps, norm)
        acc_pgd += _acc(model, x_pgd, y) / len(seeds)
        acc_apgd += _acc(model, x_apgd, y) / len(seeds)
        ce_pgd += _ce(model, x_pgd, y).mean().item() / len(seeds)
        ce_apgd += _ce(model, x_apgd, y).mean().item() / len(seeds)
    one = 1 / len(y)
    assert ce_apgd >= ce_pgd
    assert acc_apgd <= acc_pgd + one
    rob_pgd = robust_accuracy(model, x, y, eps=eps, norm=norm, attack="pgd", steps=steps, generator=_gen(0))
    rob_apgd = robust_accuracy(model, x, y, eps=eps, norm=norm, attack="apgd", steps=steps, generator=_gen(0))
    assert clean_accuracy(model, x, y) > 0.9
    assert rob_apgd <= rob_pgd + one


# ---------------------------------------------------------------- known robust accuracy of a linear model
def _linear_model_and_points(norm: str, eps: float) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    """Logits ``z = (0, w·x + b, -100)`` on 3x8x8 images with ``w = ±1`` per pixel and points at known distances.

    A sample of class 0 at ``w·x + b = -m`` is fooled within the ball iff ``m / ||w||_* < eps`` (``||w||_* =
    ||w||_2`` for L2, ``||w||_1`` for Linf): the worst perturbation is ``eps · w / ||w||_2`` resp.
    ``eps · sign(w)``, and the box [0, 1] does not bind because every pixel stays within 0.5 ± 0.35. The
    third logit (always last) only makes the DLR loss defined. Returns ``(model, x, y, distance / eps)``.
    """
    d = 3 * 8 * 8
    g = _gen(4)
    w = torch.randint(0, 2, (d,), generator=g).float() * 2 - 1
    dual = w.norm(p=2) if norm == "l2" else w.abs().sum()
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[1] = w
        model[1].bias.copy_(torch.tensor([0.0, -0.5 * float(w.sum()), -100.0]))
    ratio = torch.tensor([0.25, 0.5, 0.75, 1.25, 1.5, 2.0]).repeat(2)  # distance / eps
    base = 0.5 + 0.05 * (2 * torch.rand(len(ratio), d, generator=g) - 1)
    s_base = base @ w - 0.5 * w.sum()  # w·base + b
    x = base + ((-ratio * eps * dual - s_base) / (w @ w))[:, None] * w  # now w·x + b = -ratio · eps · ||w||_*
    return model.eval(), x.view(-1, 3, 8, 8), torch.zeros(len(ratio), dtype=torch.long), ratio


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize(
    ("attack", "compat", "loss"),
    [
        ("pgd", "paper", "ce"),
        ("apgd", "paper", "ce"),
        ("apgd", "paper", "dlr"),
        ("apgd", "autoattack", "ce"),
        ("apgd", "autoattack", "dlr"),
    ],
)
def test_robust_accuracy_known_value_on_linear_model(norm: str, attack: str, compat: str, loss: str) -> None:
    """Exactly the samples closer than eps to the decision boundary are flipped.

    Float32 margin: ``w·x + b`` sums 192 terms of size <= 1, so its rounding error is below 192 · 2^-24 · 192
    ≈ 2e-3 in logit units, i.e. < 2e-4 (L2, ||w||_2 ≈ 13.9) or < 1.2e-5 (Linf, ||w||_1 = 192) in distance,
    far below the 0.25 eps gap between the closest points on either side (0.75 eps and 1.25 eps).
    """
    eps = EPS[norm]
    model, x, y, ratio = _linear_model_and_points(norm, eps)
    assert x.min() >= 0.1 and x.max() <= 0.9
    assert clean_accuracy(model, x, y) == 1.0
    kw = dict(eps=eps, norm=norm, steps=20, generator=0)
    if attack == "pgd":
        x_adv = PGD(model, eps, norm, 20, generator=0)(x, y)
    else:
        x_adv = apgd(model, x, y, loss=loss, compat=compat, **kw)
    _assert_feasible(x_adv, x, eps, norm)
    with torch.no_grad():
        flipped = model(x_adv).argmax(1) != y
    assert torch.equal(flipped, ratio < 1)
    expected = float((ratio > 1).float().mean())  # = 0.5
    assert robust_accuracy(model, x, y, attack=attack, loss=loss, compat=compat, **kw) == expected


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_apgd_step_halving_converges(norm: str) -> None:
    """On a concave objective -||x - c||^2 with c inside S, step halving lets APGD converge to c; PGD with a
    fixed step keeps oscillating."""
    g = _gen(0)
    x = 0.25 + 0.5 * torch.rand(4, 3, 8, 8, generator=g)
    eps = EPS[norm]
    d = torch.randn(x.shape, generator=g)
    d = 0.6 * eps * (d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) if norm == "l2" else d.clamp(-1, 1))
    c = x + d

    def objective(xa: Tensor) -> Tensor:
        return -((xa - c) ** 2).flatten(1).sum(1)

    def logits(xa: Tensor) -> Tensor:  # CE(z, 0) = softplus(f) is increasing in f; never "fooled"
        f = objective(xa)
        return torch.stack([torch.zeros_like(f), f], dim=1)

    x_apgd = apgd(logits, x, torch.zeros(4, dtype=torch.long), eps=eps, norm=norm, steps=100, generator=g)
    x_pgd = pgd(objective, x, eps=eps, norm=norm, steps=100, generator=g)
    dist_apgd, dist_pgd = _norms(x_apgd - c, "l2"), _norms(x_pgd - c, "l2")
    assert dist_apgd.max() < 0.01
    assert (dist_apgd < dist_pgd).all()


def test_apgd_checkpoints() -> None:
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9]
    assert apgd_checkpoints(1) == []
    assert apgd_checkpoints(50, "paper") == [11, 21, 29, 35, 40, 44, 47]
    assert apgd_checkpoints(50, "autoattack") == [11, 21, 30, 38, 45]  # differs from ceil(p_j N) at N = 50
    assert apgd_checkpoints(100, "autoattack") == apgd_checkpoints(100, "paper")


def test_dlr_loss_value() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 4.0, 2.0, 1.0]])
    y = torch.tensor([0, 0])
    # sample 0: -(3 - 1) / (3 - 0); sample 1: -(0 - 4) / (4 - 1)
    assert torch.allclose(dlr_loss(logits, y), torch.tensor([-2 / 3, 4 / 3]))


def test_zero_shot_clip_logits() -> None:
    """APGD/robust accuracy on zero-shot logits s · normalize(f(x)) @ normalize(T)^T."""

    class TinyImageTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.Tanh(), nn.Linear(16, 8))

        def encode_image(self, pixels: Tensor) -> Tensor:
            return self.net(pixels)

    torch.manual_seed(0)
    tower = TinyImageTower()
    x = torch.rand(16, 3, 8, 8, generator=_gen(2))
    with torch.no_grad():
        text = tower.encode_image(torch.rand(4, 3, 8, 8, generator=_gen(3)))  # "class prompts"
    clf = ZeroShotClassifier(tower, text, scale=100.0)
    with torch.no_grad():
        y = clf(x).argmax(1)  # clean predictions are the labels -> clean accuracy 1
    assert clean_accuracy(clf, x, y) == 1.0
    assert robust_accuracy(clf, x, y, eps=0.1, norm="linf", steps=10, generator=_gen(0)) < 1.0
    # a plain function works too (no module to switch modes)
    x_adv = apgd(lambda xa: clf(xa), x, y, eps=1.0, norm="l2", steps=10, generator=_gen(0))
    _assert_feasible(x_adv, x, 1.0, "l2")
    assert _acc(clf, x_adv, y) < 1.0
    assert all(p.grad is None for p in tower.parameters())


# ------------------------------------------------------------------------------------ (f) bad parameters
@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": 0.0},
        {"eps": -1.0},
        {"eps": float("nan")},
        {"steps": 0},
        {"norm": "l1"},
        {"step_size": 0.0},
        {"step_size": -0.1},
    ],
)
def test_bad_parameters_raise_user_error(setup, kwargs: dict) -> None:
    model, x, y = setup
    base = {"eps": 1.0, "norm": "l2", "steps": 2, "step_size": 0.1}
    args = {**base, **kwargs}
    with pytest.raises(UserError):
        pgd(lambda xa: F.cross_entropy(model(xa), y, reduction="none"), x, **args)
    with pytest.raises(UserError):
        PGD(model, args["eps"], args["norm"], args["steps"], args["step_size"])
    with pytest.raises(UserError):
        robust_accuracy(model, x, y, attack="pgd", **args)
    if "step_size" not in kwargs:
        apgd_args = {k: v for k, v in args.items() if k != "step_size"}
        with pytest.raises(UserError):
            apgd(model, x, y, **apgd_args)
        with pytest.raises(UserError):
            APGD(model, apgd_args["eps"], apgd_args["norm"], apgd_args["steps"])


def test_other_bad_inputs_raise_user_error(setup) -> None:
    model, x, y = setup
    with pytest.raises(UserError, match="attack"):
        robust_accuracy(model, x, y, eps=1.0, attack="fgsm")
    with pytest.raises(UserError, match="n_restarts"):
        apgd(model, x, y, eps=1.0, n_restarts=0)
    with pytest.raises(UserError, match="loss"):
        apgd(model, x, y, eps=1.0, loss="hinge")
    with pytest.raises(UserError, match="compat"):
        apgd(model, x, y, eps=1.0, compat="robustbench")
    with pytest.raises(UserError, match="compat"):
        robust_accuracy(model, x, y, eps=1.0, compat="robustbench")
    with pytest.raises(UserError, match="untargeted"):
        apgd(model, x, y, eps=1.0, targeted=True, compat="autoattack")
    with pytest.raises(UserError, match="generator"):
        apgd(model, x, y, eps=1.0, generator="seed")  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        PGD(model, 1.0, "l2", 2, 0.1)(x * 2 - 0.5, y)
    with pytest.raises(UserError, match="shape"):
        pgd(lambda xa: model(xa).sum(), x, eps=1.0, steps=1, step_size=0.1)  # scalar, not per-sample
    with pytest.raises(UserError, match="y must"):
        PGD(model, 1.0, "l2", 2, 0.1)(x, y[:-1])
