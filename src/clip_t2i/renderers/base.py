"""The renderer protocol, the renderer registry and (re-exported) typed config parsing.

A renderer turns parameters (a list of tensors whose leading dimension is the image) into images in [0, 1]:

* ``init(batch, generator, context) -> params``: starting parameters; ``generator`` is one
  ``torch.Generator`` per image (or one for all), ``context`` gives the CLIP and prompt targets to
  initialisations that need them;
* ``render(params) -> [B, 3, H, W]`` in [0, 1], differentiable;
* ``project(params, projection)``: after each step, in place, so that the rendered image equals
  ``projection(render(params))`` (clamp or dynamic thresholding);
* ``param_groups(params)``: optimiser groups, each optionally with an ``lr_scale``;
* optionally ``regularizer(params) -> [B] | None``: the renderer's own prior on its parameters, added to the
  guidance loss (the strokes' opacity sparsity, say); not part of keep-best's score.

Renderers register by name (:func:`register_renderer`); :func:`build_renderer` makes one from its
options (a dict validated against the renderer's ``Options`` dataclass).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from clip_t2i.errors import UserError
from clip_t2i.utils.config import dataclass_from_dict, dataclass_to_dict

if TYPE_CHECKING:  # this module stays torch-free: presets and `list_renderers` are read at start-up
    import torch
    from torch import Tensor

__all__ = [
    "InitContext",
    "Renderer",
    "build_renderer",
    "dataclass_from_dict",
    "dataclass_to_dict",
    "list_renderers",
    "per_image_generators",
    "register_renderer",
    "renderer_class",
    "renderer_options_class",
]


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

    def init(
        self, batch: int, generator: torch.Generator | Sequence[torch.Generator], context: InitContext | None = None
    ) -> list[Tensor]: ...

    def render(self, params: list[Tensor]) -> Tensor: ...

    def project(self, params: list[Tensor], projection: Callable[[Tensor], Tensor]) -> None: ...

    def param_groups(self, params: list[Tensor]) -> list[dict[str, Any]]: ...


def per_image_generators(batch: int, generator: torch.Generator | Sequence[torch.Generator]) -> list[torch.Generator]:
    """A list of ``batch`` generators: the given list, or the single generator repeated."""
    import torch

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


# built-in renderers: name -> (module that registers it, its Options class in the torch-free options module)
_BUILTIN: dict[str, tuple[str, str]] = {
    "pixels": ("clip_t2i.renderers.pixels", "PixelOptions"),
    "pyramid": ("clip_t2i.renderers.pixels", "PyramidOptions"),
    "strokes": ("clip_t2i.renderers.strokes", "StrokeOptions"),
    "vqgan": ("clip_t2i.renderers.vqgan.renderer", "VQGANOptions"),
}


def _unknown(name: str) -> UserError:
    return UserError(f"unknown renderer {name!r}; choose one of {', '.join(list_renderers())}")


def list_renderers() -> list[str]:
    """Names of the built-in and registered renderers (imports no renderer module)."""
    return sorted({*_BUILTIN, *_RENDERERS})


def renderer_class(name: str) -> type:
    """The registered class of ``name`` (a built-in one is imported on first use); :class:`UserError` otherwise."""
    if name not in _RENDERERS and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name][0])
    if name not in _RENDERERS:
        raise _unknown(name)
    return _RENDERERS[name]


def renderer_options_class(name: str) -> type:
    """The ``Options`` dataclass of renderer ``name``; for built-ins without importing the renderer (or torch)."""
    if name in _RENDERERS:
        return _RENDERERS[name].Options
    if name in _BUILTIN:
        from clip_t2i.renderers import options

        return getattr(options, _BUILTIN[name][1])
    raise _unknown(name)


def build_renderer(name: str, size: int, options: dict[str, Any] | Any | None = None) -> Renderer:
    """A renderer instance for images of ``size`` x ``size`` with validated ``options``."""
    cls = renderer_class(name)
    opts = (
        options
        if dataclasses.is_dataclass(options)
        else dataclass_from_dict(cls.Options, options or {}, f"renderer {name!r} options")
    )
    return cls(size=size, options=opts)
