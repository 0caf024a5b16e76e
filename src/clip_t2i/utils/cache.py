"""A small on-disk tensor cache: content-keyed safetensors files, written atomically, read without pickle.

Location: ``$CLIP_T2I_CACHE`` if set (``off``, ``0`` or an empty value switch the cache off), else
``~/.cache/clip_t2i``. An entry is ``<kind>/<key>.safetensors``; the key is a SHA-256 over everything the value
depends on (see :func:`digest`), so a changed input simply misses. An unreadable entry counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clip_t2i.utils.io import atomic_write

if TYPE_CHECKING:
    from torch import Tensor

ENV = "CLIP_T2I_CACHE"
_OFF = ("", "0", "off", "false", "no")


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is switched off."""
    value = os.environ.get(ENV)
    if value is None:
        return Path.home() / ".cache" / "clip_t2i"
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser()


def digest(*parts: Any) -> str:
    """SHA-256 (hex) over ``parts``: bytes are hashed as they are, anything else as its JSON (sorted keys)."""
    h = hashlib.sha256()
    for p in parts:
        data = bytes(p) if isinstance(p, bytes | bytearray) else json.dumps(p, sort_keys=True, default=str).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 (hex) over names, dtypes, shapes and bytes of ``tensors`` (e.g. a model's state dict)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _path(kind: str, key: str) -> Path | None:
    root = cache_dir()
    return None if root is None else root / kind / f"{key}.safetensors"


def load(kind: str, key: str) -> dict[str, Tensor] | None:
    """The tensors stored under ``(kind, key)``, or None (miss, cache off or unreadable entry)."""
    path = _path(kind, key)
    if path is None or not path.is_file():
        return None
    try:
        from safetensors.torch import load_file

        return load_file(str(path))
    except Exception:  # noqa: BLE001 - a truncated / foreign file is a miss, never an error
        return None


def save(kind: str, key: str, tensors: dict[str, Tensor]) -> Path | None:
    """Store ``tensors`` under ``(kind, key)`` atomically; None if the cache is off or not writable."""
    path = _path(kind, key)
    if path is None:
        return None
    try:
        from safetensors.torch import save_file

        with atomic_write(path) as tmp:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp))
    except OSError:  # a read-only or full disk only costs the speed-up
        return None
    return path
