"""APGD with ``compat="autoattack"``: the same attack as ``APGDAttack`` of fra31/auto-attack.

Three levels: (1) the checkpoint schedule and (2) the step-size / restart decisions, each against a
re-derivation written here from AutoAttack's loop and against hand-worked trajectories; (3) whole attacks
against the original code (the ``pyautoattack`` package, fra31's ``autoattack`` folder as published on PyPI)
on a tiny model: same start, same seed, so the same adversarial images bit for bit.

No tolerance is used in (3): both sides run the same float32 operations in the same order on the same
device (same start draw, same normalisations ``t / (||t|| + 1e-12)``, same projection formulas, same
momentum expression), so every intermediate value is rounded identically and the results are equal exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.backbones import load_clip
from clip_t2i.robust.attacks import _AutoAttackStepControl, apgd, apgd_checkpoints, robust_accuracy

N_CLASSES = 5
EPS = {"l2": 1.0, "linf": 0.1}


@pytest.fixture(scope="module", autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster and immune to CPU contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -------------------------------------------------------------------------------------- (1) the schedule
def _reference_checkpoints(n: int) -> list[int]:
    """AutoAttack's loop replayed: ``counter3`` counts iterations and a check happens when it reaches ``k``.

    ``k`` starts at ``max(int(0.22 n), 1)`` and after each check becomes ``max(k - max(int(0.03 n), 1),
    max(int(0.06 n), 1))``; returns the 1-based iteration counts of the checks.
    """
    k = max(int(0.22 * n), 1)
    size_decr, n_iter_min = max(int(0.03 * n), 1), max(int(0.06 * n), 1)
    checks, counter3 = [], 0
    for i in range(n):
        counter3 += 1
        if counter3 == k:
            checks.append(i + 1)
            k = max(k - size_decr, n_iter_min)
            counter3 = 0
    return checks


def test_checkpoint_schedule_matches_autoattack() -> None:
    for n in range(1, 301):
        assert apgd_checkpoints(n, "autoattack") == _reference_checkpoints(n), n
    assert apgd_checkpoints(50, "autoattack") == [11, 21, 30, 38, 45]
    assert apgd_checkpoints(100, "autoattack") == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10, "autoattack") == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert apgd_checkpoints(50, "paper") != apgd_checkpoints(50, "autoattack")


# ------------------------------------------------------------------------------------- (2) the decisions
def _reference_decisions(start: list[float], losses: list[list[float]], rho: float) -> dict[int, list[bool]]:
    """AutoAttack's step-size rule replayed on a loss trajectory, per sample, in plain Python.

    ``losses[i][b]`` is the loss of sample ``b`` at iterate ``i + 1``; ``loss_steps`` starts as zeros and
    is indexed like a Python list (``loss_steps[-1]`` is its last row). At a check after ``k`` iterations
    (ending at index ``i``) a sample halves if ``sum_c [loss_steps[i-c] > loss_steps[i-c-1]] <= k · rho`` or
    (it did not halve at the previous check and ``best_at_last_check >= best``); before the first check every
    sample counts as having halved. Returns ``{iteration count: [halve per sample]}``.
    """
    n, b = len(losses), len(start)
    loss_steps = [[0.0] * b for _ in range(n)]
    best, best_last, reduced_last = list(start), list(start), [True] * b
    k = max(int(0.22 * n), 1)
    size_decr, n_iter_min = max(int(0.03 * n), 1), max(int(0.06 * n), 1)
    out, counter3 = {}, 0
    for i in range(n):
        loss_steps[i] = list(losses[i])
        best = [f if f > bb else bb for f, bb in zip(losses[i], best, strict=True)]
        counter3 += 1
        if counter3 == k:
            halve = []
            for s in range(b):
                increases = sum(loss_steps[i - c][s] > loss_steps[i - c - 1][s] for c in range(k))
                halve.append(increases <= k * rho or (not reduced_last[s] and best_last[s] >= best[s]))
            out[i + 1] = halve
            reduced_last, best_last = halve, list(best)
            k = max(k - size_decr, n_iter_min)
            counter3 = 0
    return out


def _our_decisions(start: list[float], losses: list[list[float]], rho: float = 0.75) -> dict[int, list[bool]]:
    """The decisions of :class:`_AutoAttackStepControl` on the same trajectory."""
    control = _AutoAttackStepControl(len(losses), torch.tensor(start), rho)
    out = {}
    for i, f in enumerate(losses):
        _, halve = control.update(i, torch.tensor(f))
        if halve is not None:
            out[i + 1] = halve.tolist()
    return out


def _trajectories(n: int, b: int, seed: int) -> Iterator[tuple[list[float], list[list[float]]]]:
    """Synthetic float32 loss trajectories (start, per-iterate losses): noise, random walks, ramps, ties."""
    g = torch.Generator().manual_seed(seed)
    walk = torch.randn(n + 1, b, generator=g).cumsum(0)
    ramp = torch.linspace(-2, 2, n + 1)[:, None].expand(n + 1, b) + 0.3 * torch.randn(n + 1, b, generator=g)
    for t in (
        torch.randn(n + 1, b, generator=g),
        walk,
        ramp,
        -ramp,
        (walk * 2).round() / 2,  # many exact ties: tests the strict > and the >= of the stall rule
        torch.ones(n + 1, b),
    ):
        t = t.float()
        yield t[0].tolist(), t[1:].tolist()


@pytest.mark.parametrize("n", [1, 4, 7, 23, 50, 100])
@pytest.mark.parametrize("rho", [0.75, 0.5])
def test_step_decisions_match_rederivation(n: int, rho: float) -> None:
    for k, (start, losses) in enumerate(_trajectories(n, 16, seed=n)):
        assert _our_decisions(start, losses, rho) == _reference_decisions(start, losses, rho), (n, k)


def test_step_decisions_hand_worked() -> None:
    """Cases worked out by hand from AutoAttack's rules (one sample each, N = 50 unless said otherwise)."""

    def decisions(start: float, losses: list[float]) -> dict[int, bool]:
        return {it: h[0] for it, h in _our_decisions([start], [[f] for f in losses]).items()}

    # constant positive loss: the first window counts f(x1) > 0 (the zero history) as its only increase
    assert decisions(1.0, [1.0] * 50) == dict.fromkeys([11, 21, 30, 38, 45], True)
    # strictly increasing loss: never halve
    assert decisions(0.0, [float(i) for i in range(1, 51)]) == dict.fromkeys([11, 21, 30, 38, 45], False)
    # no stall test at the first check: 11 increases, no improvement over the start -> keep; at 21 it stalls
    got = decisions(100.0, [float(i) for i in range(1, 51)])
    assert got[11] is False and got[21] is True
    # "<= rho k": N = 100, the check at 57 has period 16 and exactly 12 = 0.75 · 16 increases -> halve
    losses = [float(i) for i in range(1, 42)]  # up to iterate 41: only increases
    ups_downs = [+1] * 6 + [-1] * 2 + [+1] * 6 + [-1] * 2  # iterates 42..57: 12 increases, 4 decreases
    for d in ups_downs:
        losses.append(losses[-1] + (3.0 if d > 0 else -1.0))
    losses += [losses[-1] + i for i in range(1, 44)]
    got = decisions(0.0, losses)
    assert got[22] is False and got[41] is False and got[57] is True
    # after a restart the first comparison is with the loss of the iterate left behind, not with the best:
    # iterates 1..11 fall from 5 (halve at 11, best = start 10); 12..21 = 9.0 then 7 ups and 2 downs below 10.
    # Increases in the window of 21: 9.0 > f(x11) plus 7 = 8 > 7.5 -> keep (counting against best: 7 -> halve).
    tail = [9.0, 9.1, 9.2, 9.0, 9.3, 9.4, 9.2, 9.5, 9.6, 9.7]
    got = decisions(10.0, [5.0 - i for i in range(11)] + tail + [9.8] * 29)
    assert got[11] is True and got[21] is False


# ----------------------------------------------------------------------------- (3) against the original
@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, Tensor, Tensor]:
    """A small CNN trained on noisy class prototypes (3x8x8 images in [0, 1]), in eval mode, frozen."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    protos = torch.rand(N_CLASSES, 3, 8, 8, generator=g)

    def sample(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, N_CLASSES, (n,), generator=g)
        return (protos[y] + 0.25 * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 1), y

    x_train, y_train = sample(256)
    x_test, y_test = sample(40)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, N_CLASSES)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(model(x_train), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().requires_grad_(False)
    return model, x_test, y_test


def _original(model: nn.Module, x: Tensor, y: Tensor, norm: str, loss: str, steps: int, restarts: int, seed: int):
    """``APGDAttack(...).perturb(x, y)`` of the AutoAttack code (its global-RNG seeding is undone afterwards)."""
    autopgd = pytest.importorskip("pyautoattack.autopgd_base")
    attack = autopgd.APGDAttack(
        model,
        n_iter=steps,
        norm={"l2": "L2", "linf": "Linf"}[norm],
        n_restarts=restarts,
        eps=EPS[norm],
        seed=seed,
        loss=loss,
        device="cpu",
    )
    with torch.random.fork_rng(devices=[]):
        return attack.perturb(x.clone(), y.clone())


def _fooled(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    """Per-sample misclassification."""
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize(("steps", "restarts"), [(50, 1), (23, 3)])
def test_apgd_equals_original_autoattack(setup, norm: str, loss: str, steps: int, restarts: int) -> None:
    model, x, y = setup
    ref = _original(model, x, y, norm, loss, steps, restarts, seed=3)
    ours = apgd(
        model,
        x,
        y,
        eps=EPS[norm],
        norm=norm,
        steps=steps,
        n_restarts=restarts,
        loss=loss,
        compat="autoattack",
        generator=3,
    )
    fooled = _fooled(model, ref, y)
    assert 0 < int(fooled.sum()) < len(y)  # partly robust: both returned branches are exercised
    assert torch.equal(ours, ref)
    assert torch.equal(_fooled(model, ours, y), fooled)
    # the earlier variant is a different attack (start, schedule, returned points)
    paper = apgd(model, x, y, eps=EPS[norm], norm=norm, steps=steps, n_restarts=restarts, loss=loss, generator=3)
    assert not torch.equal(paper, ref)


def test_apgd_default_seed_and_robust_accuracy_equal_original(setup) -> None:
    """``generator=None`` is AutoAttack's default seed 0; robust accuracy reseeds every batch like ``perturb``."""
    model, x, y = setup
    ref = _original(model, x, y, "linf", "ce", 50, 1, seed=0)
    assert torch.equal(apgd(model, x, y, eps=EPS["linf"], norm="linf", steps=50, compat="autoattack"), ref)
    batch = 16
    robust = 0
    for s in range(0, len(y), batch):
        xb, yb = x[s : s + batch], y[s : s + batch]
        ok = ~_fooled(model, xb, yb)
        robust += int((~_fooled(model, _original(model, xb[ok], yb[ok], "linf", "ce", 50, 1, seed=0), yb[ok])).sum())
    got = robust_accuracy(
        model, x, y, eps=EPS["linf"], norm="linf", steps=50, batch_size=batch, compat="autoattack", generator=0
    )
    assert got == robust / len(y)


# --------------------------------------------------------------------------------------------- eval-robust
def test_eval_robust_is_autoattack_compatible_by_default(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from clip_t2i.cli import main

    with pytest.raises(SystemExit) as done:
        main(["eval-robust", "--help"])
    assert done.value.code == 0
    assert "autoattack" in capsys.readouterr().out.replace("\n", " ")

    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    load_clip("vit-t32").save(path)
    base = ["eval-robust", "--model", str(path), "--n", "4", "--eps", "1.5", "--pgd-steps", "1", "--apgd-steps", "2"]
    for extra, label in (([], "autoattack-compatible"), (["--apgd-compat", "paper"], "paper")):
        with pytest.raises(SystemExit) as done:
            main([*base, *extra, "--json"])
        assert done.value.code == 0
        assert json.loads(capsys.readouterr().out)["apgd"] == label
    with pytest.raises(SystemExit) as done:
        main(base)
    assert "APGD-CE (2 steps): autoattack-compatible" in capsys.readouterr().out
    bad = [["--apgd-compat", "robustbench"], ["--device", "tpu9"]]
    if not torch.cuda.is_available():
        bad.append(["--device", "cuda"])
    for extra in bad:
        with pytest.raises(SystemExit) as done:
            main([*base, *extra])
        assert done.value.code == 2, extra
