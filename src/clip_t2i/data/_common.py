"""Shared helpers for the data package: stream seeding, worker info, image decoding, batching."""

from __future__ import annotations

import io
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from clip_t2i.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def check_rank(rank: int, world_size: int) -> None:
    """Raise :class:`UserError` unless ``0 <= rank < world_size``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise UserError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")


def check_batch_size(batch_size: int) -> None:
    """Raise :class:`UserError` unless ``batch_size`` is a positive integer."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")


def worker_info() -> tuple[int, int]:
    """``(worker_id, num_workers)`` of the current DataLoader worker, ``(0, 1)`` in the main process."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def check_start_batch(start_batch: int) -> None:
    """Raise :class:`UserError` unless ``start_batch`` is a non-negative integer."""
    if not isinstance(start_batch, int) or start_batch < 0:
        raise UserError(f"start_batch must be a non-negative integer, got {start_batch!r}")


def worker_batch_indices(start_batch: int = 0) -> Iterator[int]:
    """Global batch indices this DataLoader worker produces: ``start_batch + worker + k * num_workers``.

    A DataLoader collects batches from its workers round-robin, so the consumer sees ``start_batch,
    start_batch + 1, ...`` whatever the number of workers; a stream that derives each batch from its index
    alone is therefore identical with 0, 1 or 8 workers and resumes exactly at ``start_batch``.
    """
    worker, num_workers = worker_info()
    return itertools.count(start_batch + worker, num_workers)


def stream_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, rank, worker, ...); distinct inputs -> independent."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts] + [len(parts)]).generate_state(2)
    return ((int(state[0]) << 32) | int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def stream_generator(*parts: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`stream_seed` of ``parts``."""
    return torch.Generator().manual_seed(stream_seed(*parts))


def load_image(source: str | os.PathLike[str] | bytes, size: int) -> torch.Tensor:
    """Decode an image file or bytes, resize its shorter side to ``size``, centre-crop: float
    ``[3,size,size]`` in [0,1].

    Raises whatever PIL raises for unreadable data (callers count and skip).
    """
    fp: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    with Image.open(fp) as img:
        img.draft("RGB", (size, size))  # fast JPEG downscale at decode time (no-op for other formats)
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=None)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def batch_samples(
    samples: Iterable[dict[str, Any]], batch_size: int, drop_last: bool = False, extra: tuple[str, ...] = ()
) -> Iterator[dict]:
    """Group ``{"image": [3,H,W], "caption": str}`` samples into ``{"image": [B,3,H,W], "caption": [...]}``
    batches.

    Keys in ``extra`` are carried along as lists.
    """
    images: list[torch.Tensor] = []
    lists: dict[str, list[Any]] = {k: [] for k in ("caption", *extra)}
    for sample in samples:
        images.append(sample["image"])
        for k, v in lists.items():
            v.append(sample[k])
        if len(images) == batch_size:
            yield {"image": torch.stack(images), **lists}
            images, lists = [], {k: [] for k in lists}
    if images and not drop_last:
        yield {"image": torch.stack(images), **lists}


def clean_caption(text: str) -> str:
    """Collapse whitespace (newlines, tabs) of a caption into single spaces."""
    return " ".join(str(text).split())


def _storage_use_count(t: torch.Tensor) -> int | None:
    """Strong references to ``t``'s storage (tensors and views sharing it), or None if torch cannot tell."""
    counter = getattr(torch._C, "_storage_Use_Count", None)
    if counter is None:
        return None
    try:
        return int(counter(t.untyped_storage()._cdata)) - 1  # minus the temporary storage object made here
    except Exception:  # noqa: BLE001 - private API; any failure simply disables reuse
        return None


class BufferPool:
    """Hands out CPU output tensors, reusing one only once nobody else references it (no tensor, view or
    storage).

    Fresh memory is expensive to fault in (tens of microseconds per 64x64 image on some VMs), so an infinite
    stream that renders into released buffers runs much faster. Shared-memory tensors (DataLoader workers) are
    never reused.
    """

    def __init__(self, capacity: int = 3) -> None:
        self.capacity = capacity
        self._bufs: list[torch.Tensor] = []
        self.reused = 0
        self.allocated = 0

    def _is_free(self, i: int) -> bool:
        # Referenced only by this list, `buf` and getrefcount's argument, and only one tensor on the storage.
        buf = self._bufs[i]
        return sys.getrefcount(buf) == 3 and not buf.is_shared() and _storage_use_count(buf) == 1

    def get(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A contiguous tensor of ``shape`` (contents undefined)."""
        for i in range(len(self._bufs)):
            if tuple(self._bufs[i].shape) == tuple(shape) and self._bufs[i].dtype == dtype and self._is_free(i):
                self.reused += 1
                return self._bufs[i]
        self.allocated += 1
        self._bufs.append(torch.empty(shape, dtype=dtype))
        if len(self._bufs) > self.capacity:
            self._bufs.pop(0)
        return self._bufs[-1]
