"""The one typed config parser: dataclasses built from JSON-like dicts with strict validation.

Every config family (backbone configs, generation presets, renderer options, GAN variants, training
configs) goes through :func:`dataclass_from_dict`: unknown keys and wrongly typed values raise a
:class:`~clip_t2i.errors.UserError` naming the key and what it must be; missing keys take the dataclass
defaults. Types are read from the annotations (``int``, ``float``, ``bool``, ``str``, ``X | None``,
``tuple[int, ...]``, ``tuple[float, float]``, nested dataclasses); floats must be finite.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from clip_t2i.errors import UserError


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
        if not math.isfinite(value):
            raise UserError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else dataclass_from_dict(hint, value, where)
    if hint is dict or typing.get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where} must be an object, got {value!r}")
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
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in data
    ]
    if required:
        raise UserError(f"{where}: missing key(s) {required}")
    values = {k: _check_value(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**values)


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a dataclass (tuples become lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return {f.name: conv(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def check_finite_fields(cfg: Any, flag: typing.Callable[[str], str] | None = None) -> None:
    """Every float (and float in a tuple) of dataclass ``cfg`` is finite; NaN / ±inf name the option."""
    name_of = flag or (lambda n: "--" + n.replace("_", "-"))
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        values = v if isinstance(v, tuple) else (v,)
        for x in values:
            if isinstance(x, float) and not math.isfinite(x):
                raise UserError(f"{name_of(f.name)} must be a finite number, got {x}")
