"""Device placement of the attacks and of robust fine-tuning, checked without a GPU (plus a real-CUDA test).

A GPU run fails when a random start is drawn with a CPU generator for CUDA images, or when a module that
the training uses (FARE's frozen reference model) stays on the CPU. Without a GPU both situations are
simulated so that the code paths that cause them are exercised:

* generators: ``torch.Generator`` is replaced by a subclass that records every generator; one created by the
  robust package *without naming a device* reports a device other than the images' (``cuda:0`` for CPU
  images, the mirror image of a CPU generator for CUDA images). Every random draw made from the robust
  package is recorded with its generator's and its output's device, and the two must agree.
* modules: ``Accelerator.device`` is made ``meta`` and ``.to(meta)`` only records which parameters and
  buffers were placed on "the accelerator" (the data stay on the CPU, so the run still computes). Every
  ``ClipModel`` that encodes images or text during training must have all its tensors placed.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.backbones import ClipModel, load_clip
from clip_t2i.errors import UserError
from clip_t2i.robust.attacks import apgd, make_generator, pgd, random_init, robust_accuracy
from clip_t2i.robust.finetune import RobustTrainConfig, robustify

torch.set_num_threads(1)

ROBUST_PKG = str(Path("clip_t2i", "robust"))
FOREIGN = torch.device("cuda", 0)  # what a device-less generator of the robust package claims to be on
_REAL_GENERATOR = torch.Generator
_RANDOM_FUNCTIONS = ("rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson")
_RANDOM_METHODS = ("normal_", "uniform_", "random_", "bernoulli_", "exponential_", "geometric_", "cauchy_")


def _from_robust_package(depth: int = 2) -> bool:
    """Whether the code ``depth`` frames up (the caller of the patched function) is in ``clip_t2i/robust``."""
    return ROBUST_PKG in sys._getframe(depth).f_code.co_filename


class _RecordingGenerator(_REAL_GENERATOR):
    """A real CPU/CUDA generator that may report a foreign device (see the module docstring)."""

    created: list[_RecordingGenerator] = []  # reset by the fixture

    def __new__(cls, device: Any = None) -> _RecordingGenerator:
        """Create the generator; record it; give it a foreign device if the robust package named none."""
        obj = super().__new__(cls, device="cpu" if device is None else device)
        obj._claimed = FOREIGN if device is None and _from_robust_package() else None
        cls.created.append(obj)
        return obj

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        """The foreign device if one was claimed, else the real one."""
        return self._claimed if self._claimed is not None else _REAL_GENERATOR.device.__get__(self)


@dataclass
class DeviceLog:
    """What the patched torch saw: random draws and module placements."""

    draws: list[tuple[torch.device, torch.device, str]] = field(default_factory=list)  # generator, output, fn
    placed: dict[int, Tensor] = field(default_factory=dict)  # id -> tensor "on the accelerator"
    checked: list[str] = field(default_factory=list)  # ClipModel calls that were checked
    violations: list[str] = field(default_factory=list)

    def mismatched_draws(self) -> list[tuple[torch.device, torch.device, str]]:
        """Draws whose generator is not on the device of the numbers it drew."""
        return [d for d in self.draws if _key(d[0]) != _key(d[1])]


def _key(device: torch.device) -> tuple[str, int]:
    """``(type, index)`` with a missing index read as 0."""
    return device.type, 0 if device.index is None else device.index


@pytest.fixture
def device_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[DeviceLog]:
    """Patch ``torch.Generator`` and every random function/method to record generator and output devices."""
    log = DeviceLog()
    _RecordingGenerator.created = []
    monkeypatch.setattr(torch, "Generator", _RecordingGenerator)

    def record(fn_name: str, generator: Any, out: Any) -> None:
        """Log one draw made with an explicit generator."""
        if isinstance(generator, _REAL_GENERATOR) and isinstance(out, Tensor):
            log.draws.append((generator.device, out.device, fn_name))

    def wrap_function(name: str) -> Callable[..., Any]:
        """``torch.<name>`` that records its generator and output when called from the robust package."""
        real = getattr(torch, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            """Call the real function, then record."""
            out = real(*args, **kwargs)
            if _from_robust_package():
                record(name, kwargs.get("generator"), out)
            return out

        return wrapper

    def wrap_method(name: str) -> Callable[..., Any]:
        """``Tensor.<name>`` that records its generator and the tensor's device when called from the robust package."""
        real = getattr(torch.Tensor, name)

        def wrapper(self: Tensor, *args: Any, **kwargs: Any) -> Any:
            """Call the real method, then record."""
            out = real(self, *args, **kwargs)
            if _from_robust_package():
                record(name, kwargs.get("generator"), self)
            return out

        return wrapper

    for name in _RANDOM_FUNCTIONS:
        monkeypatch.setattr(torch, name, wrap_function(name))
    for name in _RANDOM_METHODS:
        monkeypatch.setattr(torch.Tensor, name, wrap_method(name))
    yield log


# ------------------------------------------------------------------------------------------------ attacks
def _toy() -> tuple[nn.Module, Tensor, Tensor]:
    """A tiny 4-class classifier on 3x6x6 images and a batch it partly classifies correctly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 16), nn.Tanh(), nn.Linear(16, 4)).eval()
    x = torch.rand(10, 3, 6, 6, generator=_REAL_GENERATOR().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _run_every_attack(model: nn.Module, x: Tensor, y: Tensor, generator: Callable[[], Any]) -> list[Tensor]:
    """random_init, PGD, APGD (both variants, CE and DLR) and robust accuracy, each with ``generator()``."""

    def ce(xa: Tensor) -> Tensor:
        """CE of the toy model per sample."""
        return F.cross_entropy(model(xa), y, reduction="none")

    outs = []
    for norm, eps in (("l2", 0.5), ("linf", 0.03)):
        outs.append(random_init(x, eps, norm, generator()))
        outs.append(pgd(ce, x, eps=eps, norm=norm, steps=2, generator=generator()))
        for compat, loss in itertools.product(("paper", "autoattack"), ("ce", "dlr")):
            outs.append(apgd(model, x, y, eps=eps, norm=norm, steps=3, loss=loss, compat=compat, generator=generator()))
        for attack in ("pgd", "apgd"):
            robust_accuracy(
                model, x, y, eps=eps, norm=norm, attack=attack, steps=2, batch_size=4, generator=generator()
            )
    return outs


@pytest.mark.parametrize("kind", ["seed", "generator on the device"])
def test_attack_draws_use_a_generator_on_the_input_device(device_log: DeviceLog, kind: str) -> None:
    model, x, y = _toy()
    make = (lambda: 5) if kind == "seed" else (lambda: make_generator(5, x.device))
    outs = _run_every_attack(model, x, y, make)
    assert all(o.device == x.device for o in outs)
    assert len(device_log.draws) >= 14  # every call above drew its random start
    assert {d[1] for d in device_log.draws} == {x.device}
    assert device_log.mismatched_draws() == []
    assert _RecordingGenerator.created and all(g._claimed is None for g in _RecordingGenerator.created)


def test_attacks_refuse_a_generator_on_another_device(device_log: DeviceLog) -> None:
    """A generator on a device other than the images' (here the simulated foreign one) is a UserError."""
    model, x, y = _toy()

    def foreign() -> torch.Generator:
        """A generator created by the robust package without a device, i.e. on the foreign device."""
        gen = _RecordingGenerator()
        gen._claimed = FOREIGN
        return gen

    assert foreign().device == FOREIGN
    with pytest.raises(UserError, match="generator is on cuda:0"):
        random_init(x, 0.5, "l2", foreign())
    with pytest.raises(UserError, match="generator is on"):
        pgd(lambda xa: model(xa).sum(1), x, eps=0.5, steps=1, generator=foreign())
    for compat in ("paper", "autoattack"):
        with pytest.raises(UserError, match="generator is on"):
            apgd(model, x, y, eps=0.5, steps=1, compat=compat, generator=foreign())
    assert device_log.mismatched_draws() == []


def test_seed_equals_cpu_generator() -> None:
    """On the CPU an int seed draws exactly what ``torch.Generator().manual_seed(seed)`` draws."""
    _, x, _ = _toy()
    for norm in ("l2", "linf"):
        assert torch.equal(random_init(x, 0.5, norm, 7), random_init(x, 0.5, norm, _REAL_GENERATOR().manual_seed(7)))


# ------------------------------------------------------------------------------------------ fine-tuning
@pytest.fixture(scope="module")
def start_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny CLIP saved to disk (the tiny runs start from it)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("devices") / "start.safetensors"
    load_clip("vit-t32").save(path)
    return path


def _tiny_cfg(out: Path, model: Path, objective: str, **kw: Any) -> RobustTrainConfig:
    """Two optimizer steps of PGD-1 fine-tuning on 4 shapes images at 32 px."""
    base: dict[str, Any] = dict(
        data="shapes",
        model=str(model),
        out=str(out),
        objective=objective,
        attack="pgd",
        attack_steps=1,
        steps=2,
        batch_size=4,
        warmup_steps=1,
        ckpt_every=0,
        log_every=1,
        progress=False,
        lr=1e-3,
        eps=3.0,
    )
    base.update(kw)
    return RobustTrainConfig(**base)


@pytest.fixture
def virtual_accelerator(monkeypatch: pytest.MonkeyPatch, device_log: DeviceLog) -> DeviceLog:
    """``Accelerator.device`` is ``meta``; ``.to(meta)`` records placements; ClipModel calls are checked."""
    from accelerate import Accelerator

    target = torch.device("meta")
    real_module_to, real_tensor_to = nn.Module.to, torch.Tensor.to
    real_prepare = Accelerator.prepare
    real_encode_image, real_encode_text = ClipModel.encode_image, ClipModel.encode_text
    state = {"prepared": False}

    def to_target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether a ``.to(...)`` call moves to the accelerator's (meta) device."""
        try:
            device = torch._C._nn._parse_to(*args, **kwargs)[0]
        except (TypeError, RuntimeError):
            return False
        return device is not None and device.type == target.type

    def module_to(self: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        """Record every parameter and buffer as placed instead of moving them to meta."""
        if not to_target(args, kwargs):
            return real_module_to(self, *args, **kwargs)
        for t in itertools.chain(self.parameters(), self.buffers()):
            device_log.placed[id(t)] = t
        return self

    def tensor_to(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Keep data tensors where they are (they are "on the accelerator" for this test)."""
        return self if to_target(args, kwargs) else real_tensor_to(self, *args, **kwargs)

    def prepare(self: Any, *args: Any, **kwargs: Any) -> Any:
        """accelerate's prepare (which moves the trained model); placements are checked from then on."""
        out = real_prepare(self, *args, **kwargs)
        state["prepared"] = True
        return out

    def check(clip: ClipModel, what: str) -> None:
        """Every parameter and buffer of ``clip`` must have been placed on the accelerator."""
        if not state["prepared"]:
            return  # set-up before device placement (e.g. the text-tower freeze probe)
        device_log.checked.append(what)
        named = itertools.chain(clip.named_parameters(), clip.named_buffers())
        missing = [n for n, t in named if id(t) not in device_log.placed]
        if missing:
            device_log.violations.append(f"{what}: {len(missing)} tensors not on the accelerator, e.g. {missing[0]}")

    def encode_image(self: ClipModel, *args: Any, **kwargs: Any) -> Tensor:
        """Checked ``ClipModel.encode_image``."""
        check(self, "encode_image")
        return real_encode_image(self, *args, **kwargs)

    def encode_text(self: ClipModel, *args: Any, **kwargs: Any) -> Tensor:
        """Checked ``ClipModel.encode_text``."""
        check(self, "encode_text")
        return real_encode_text(self, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "device", property(lambda self: target))
    monkeypatch.setattr(Accelerator, "prepare", prepare)
    monkeypatch.setattr(nn.Module, "to", module_to)
    monkeypatch.setattr(torch.Tensor, "to", tensor_to)
    monkeypatch.setattr(ClipModel, "encode_image", encode_image)
    monkeypatch.setattr(ClipModel, "encode_text", encode_text)
    return device_log


@pytest.mark.parametrize("objective", ["clipag", "tecoa", "fare"])
def test_robustify_puts_every_module_and_generator_on_the_device(
    tmp_path: Path, start_model: Path, virtual_accelerator: DeviceLog, objective: str
) -> None:
    log = virtual_accelerator
    eval_every = 2 if objective == "clipag" else 0  # one run also covers the quick robust evaluation
    robustify(_tiny_cfg(tmp_path / objective, start_model, objective, eval_every=eval_every), echo=None)
    assert log.violations == []
    assert log.checked.count("encode_image") >= 2  # attack, training step (and FARE's reference)
    assert len(log.draws) >= 2  # one random start per step
    assert log.mismatched_draws() == []
    assert all(g._claimed is None for g in _RecordingGenerator.created)  # none made without naming a device


# ------------------------------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_attacks_and_robustify_on_cuda(tmp_path: Path, start_model: Path) -> None:
    model, x_cpu, y_cpu = _toy()
    model, x, y = model.cuda(), x_cpu.cuda(), y_cpu.cuda()
    for make in (lambda: 3, lambda: torch.Generator(device=x.device).manual_seed(3), lambda: None):
        for out in _run_every_attack(model, x, y, make):
            assert out.device == x.device
    with pytest.raises(UserError, match="generator is on cpu"):
        apgd(model, x, y, eps=0.5, steps=1, generator=torch.Generator().manual_seed(0))
    for objective in ("clipag", "tecoa", "fare"):
        final = robustify(_tiny_cfg(tmp_path / objective, start_model, objective, eval_every=2), echo=None)
        weights = load_clip(final).model.state_dict()
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
