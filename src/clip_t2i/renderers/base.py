"""The renderer protocol, the renderer registry and (re-exported) typed config parsing.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.utils.config import dataclass_from_dict, dataclass_to_dict

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
    import clip_t2i.renderers.strokes  # noqa: F401 - registers strokes


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
    opts = (
        options
        if dataclasses.is_dataclass(options)
        else dataclass_from_dict(cls.Options, options or {}, f"renderer {name!r} options")
    )
    return cls(size=size, options=opts)
