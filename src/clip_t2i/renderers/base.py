"""The renderer protocol, the renderer registry and strict dataclass-from-JSON validation.

A renderer turns parameters (a list of tensors whose leading dimension is the image) into images in [0, 1]:

* ``init(batch, generator, context) -> params``: starting parameters; ``generator`` is one
  ``torch.Generator`` per image (or one for all), ``context`` gives the CLIP and prompt targets to
  initialisations that need them;
* ``render(params) -> [B, 3, H, W]`` in [0, 1], differentiable;
* ``project(params, projection)``: after each step, in place, so that the rendered image equals
  ``projection(render(params))`` (clamp or dynamic thresholding);
* ``param_groups(params)``: optimiser groups, each optionally with an ``lr_scale``.

Renderers register by name (:func:`register_renderer`); :func:`build_renderer` makes one from its
options (a dict validated against the renderer's ``Options`` dataclass).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from clip_t2i.errors import UserError


@dataclass
class InitContext:
    """What an initialisation may use: the guiding CLIP and the prompt targets (one row per image)."""

    clip: Any = None
    targets: Any = None  # clip_t2i.guidance.prompts.PromptTargets


@runtime_checkable
class Renderer(Protocol):
    """Anything that maps parameters to images; see the module docstring."""

    name: ClassVar[str]
    size: int

    def init(self, batch: int, generator: torch.Generator | Sequence[torch.Generator],
             context: InitContext | None = None) -> list[Tensor]: ...

    def render(self, params: list[Tensor]) -> Tensor: ...

    def project(self, params: list[Tensor], projection: Callable[[Tensor], Tensor]) -> None: ...

    def param_groups(self, params: list[Tensor]) -> list[dict[str, Any]]: ...


def per_image_generators(batch: int, generator: torch.Generator | Sequence[torch.Generator]) -> list[torch.Generator]:
    """A list of ``batch`` generators: the given list, or the single generator repeated."""
    if isinstance(generator, torch.Generator):
        return [generator] * batch
    gens = list(generator)
    if len(gens) != batch:
        raise ValueError(f"need one generator per image: batch {batch}, {len(gens)} generators")
    return gens


# ------------------------------------------------------------------------------------------------ registry
_RENDERERS: dict[str, type] = {}


def register_renderer(cls: type) -> type:
    """Class decorator: register a renderer under ``cls.name`` (its ``Options`` dataclass validates options)."""
    name = getattr(cls, "name", None)
    if not name or not dataclasses.is_dataclass(getattr(cls, "Options", None)):
        raise TypeError(f"{cls.__name__} needs a `name` and an `Options` dataclass to be registered")
    _RENDERERS[name] = cls
    return cls


def _ensure_builtin() -> None:
    import clip_t2i.renderers.pixels  # noqa: F401 - registers pixels and pyramid


def list_renderers() -> list[str]:
    """Names of the registered renderers."""
    _ensure_builtin()
    return sorted(_RENDERERS)


def renderer_class(name: str) -> type:
    """The registered class of ``name``; :class:`UserError` listing valid names otherwise."""
    _ensure_builtin()
    if name not in _RENDERERS:
        raise UserError(f"unknown renderer {name!r}; choose one of {', '.join(sorted(_RENDERERS))}")
    return _RENDERERS[name]


def build_renderer(name: str, size: int, options: dict[str, Any] | Any | None = None) -> Renderer:
    """A renderer instance for images of ``size`` x ``size`` with validated ``options``."""
    cls = renderer_class(name)
    opts = options if dataclasses.is_dataclass(options) else dataclass_from_dict(
        cls.Options, options or {}, f"renderer {name!r} options")
    return cls(size=size, options=opts)


# ---------------------------------------------------------------------------------------------- validation
def _check_value(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise UserError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise UserError(f"{where} must have {len(args)} entries, got {value!r}")
        return tuple(_check_value(v, a, where) for v, a in zip(value, args, strict=True))
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"{where} must be a string, got {value!r}")
        return value
    return value


def dataclass_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``data``: unknown keys and wrongly typed values raise :class:`UserError`
    naming the key and the valid keys; missing keys take the defaults."""
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(names)}")
    values = {k: _check_value(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**values)


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a dataclass (tuples become lists)."""
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return {f.name: conv(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
