"""WebDataset tar shards in the img2dataset layout: ``key.jpg`` (or png/webp) + ``key.txt`` and/or
``key.json``.

Shards (not samples) are split across ranks and DataLoader workers: every epoch all ranks shuffle the shard
list with the same seed, rank ``r`` takes shards ``r, r + world_size, ...`` and each worker every
``num_workers``-th of those, so each sample is read by exactly one rank/worker per epoch. Give at least
``world_size x num_workers`` shards of similar size so that all ranks get data (ranks can receive different
numbers of batches).

Corrupt images, samples without image or caption, unreadable or truncated tar files are skipped with a warning
and counted in ``stream.stats``. The counters live in the process that iterates: exact in a single-process
run; with DataLoader workers each worker counts in its own copy and the main process's ``stats`` stay at zero.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import braceexpand
import numpy as np
import torch
import webdataset as wds
from PIL import Image

from clip_t2i.data._common import (
    IMAGE_EXTENSIONS,
    batch_samples,
    check_batch_size,
    check_rank,
    check_start_batch,
    clean_caption,
    load_image,
    stream_seed,
    worker_info,
)
from clip_t2i.errors import UserError

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


def expand_urls(urls: str | Iterable[str]) -> list[str]:
    """Shard URLs/paths from a brace pattern (``/x/{000..009}.tar``), a ``::``-separated string or a list."""
    if isinstance(urls, str | Path):
        out: list[str] = []
        for part in str(urls).split("::"):
            out.extend(braceexpand.braceexpand(part))
        return out
    out = []
    for u in urls:
        out.extend(expand_urls(u))
    return out


class _RankSplitter:
    """Picklable ``nodesplitter``: shards ``rank, rank + world_size, ...``."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def __call__(self, src: Iterable[Any]) -> Iterator[Any]:
        yield from itertools.islice(src, self.rank, None, self.world_size)


class WdsStream(torch.utils.data.IterableDataset):
    """Batches ``{"image": [B,3,size,size], "caption": [B]}`` from WebDataset shards (see the module
    docstring).

    ``epochs=None`` repeats forever with a new shard order (same on all ranks) each epoch; ``shuffle_buffer``
    mixes samples within a rank/worker; ``return_keys`` adds the samples' ``"key"`` list to each batch.
    ``start_batch`` resumes approximately: each worker skips, undecoded, the raw samples of its batches
    before it (corrupt samples skipped earlier can shift batch boundaries by a few samples).
    """

    def __init__(
        self,
        urls: str | Iterable[str],
        size: int = 64,
        batch_size: int = 64,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        epochs: int | None = None,
        shuffle_shards: bool = True,
        drop_last: bool = False,
        return_keys: bool = False,
        start_batch: int = 0,
    ):
        super().__init__()
        check_batch_size(batch_size)
        check_rank(rank, world_size)
        check_start_batch(start_batch)
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise UserError(f"epochs must be a positive integer or None (forever), got {epochs!r}")
        if not isinstance(size, int) or size < 1:
            raise UserError(f"image size must be a positive integer, got {size!r}")
        self.urls = expand_urls(urls)
        if not self.urls:
            raise UserError(
                f"no shards in {urls!r}; expected a .tar path, a pattern like /x/{{000..009}}.tar or a list"
            )
        if len(self.urls) < world_size:
            raise UserError(
                f"{len(self.urls)} shard(s) cannot feed {world_size} ranks; write at least one shard per rank"
            )
        self.size, self.batch_size, self.rank, self.world_size = size, batch_size, rank, world_size
        self.seed, self.shuffle_buffer, self.epochs = seed, shuffle_buffer, epochs
        self.shuffle_shards, self.drop_last, self.return_keys = shuffle_shards, drop_last, return_keys
        self.start_batch = start_batch
        self.stats = {"samples": 0, "bad_images": 0, "incomplete": 0, "errors": 0}

    def _handler(self, exn: BaseException) -> bool:
        """webdataset exception handler: count, warn, continue."""
        self.stats["errors"] += 1
        warnings.warn(f"skipping unreadable shard data: {exn!r}"[:500], stacklevel=2)
        for arg in getattr(exn, "args", ()):  # webdataset leaves the failed shard's file open
            if hasattr(arg, "read") and hasattr(arg, "close"):
                try:
                    arg.close()
                except Exception:  # noqa: BLE001, S110 - best effort
                    pass
        return True

    def _epoch_dataset(self, epoch: int) -> wds.WebDataset:
        urls = list(self.urls)
        if self.shuffle_shards:
            random.Random(stream_seed(self.seed, epoch, 0x7A5)).shuffle(urls)  # identical on every rank
        ds = wds.WebDataset(
            urls,
            handler=self._handler,
            shardshuffle=False,
            nodesplitter=_RankSplitter(self.rank, self.world_size),
            workersplitter=wds.split_by_worker,
            empty_check=False,
            seed=self.seed,
        )
        if self.shuffle_buffer > 1:
            worker, _ = worker_info()
            rng = random.Random(stream_seed(self.seed, self.rank, worker, epoch, 0x5B))
            ds = ds.shuffle(self.shuffle_buffer, initial=min(self.shuffle_buffer, 100), rng=rng)
        return ds

    def _decode(self, sample: dict[str, Any]) -> dict[str, Any] | None:
        key = sample.get("__key__", "?")
        image_key = next((k for k in IMAGE_KEYS if k in sample), None)
        caption = None
        if "txt" in sample:
            caption = clean_caption(sample["txt"].decode("utf-8", errors="replace"))
        if not caption and "json" in sample:
            try:
                meta = json.loads(sample["json"])
                caption = clean_caption(meta.get("caption") or meta.get("text") or "") if isinstance(meta, dict) else ""
            except (ValueError, UnicodeDecodeError):
                caption = None
        if image_key is None or not caption:
            self.stats["incomplete"] += 1
            warnings.warn(
                f"skipping sample {key!r} without {'image' if image_key is None else 'caption'}", stacklevel=2
            )
            return None
        try:
            image = load_image(sample[image_key], self.size)
        except Exception as exn:  # noqa: BLE001 - any decoding failure means "skip this image"
            self.stats["bad_images"] += 1
            warnings.warn(f"skipping undecodable image {key!r}: {exn}", stacklevel=2)
            return None
        self.stats["samples"] += 1
        return {"image": image, "caption": caption, "key": key}

    def samples(self) -> Iterator[dict[str, Any]]:
        """Decoded single samples ``{"image", "caption", "key"}`` of this rank/worker, epoch after epoch."""
        worker, num_workers = worker_info()
        if not self.urls[self.rank :: self.world_size][worker::num_workers]:
            return  # more DataLoader workers than shards for this rank: this worker has nothing to read
        # Resuming: skip (without decoding) the raw samples of this worker's batches before start_batch.
        to_skip = len(range(worker, self.start_batch, num_workers)) * self.batch_size
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            produced = 0
            for raw in self._epoch_dataset(epoch):
                if to_skip:
                    to_skip -= 1
                    produced += 1
                    continue
                sample = self._decode(raw)
                if sample is not None:
                    produced += 1
                    yield sample
            if not produced and self.epochs is None:
                raise UserError(
                    f"rank {self.rank} (worker {worker}) read no usable sample from its shards in a whole "
                    f"epoch; check the shard files ({self.stats})"
                )
            epoch += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return batch_samples(self.samples(), self.batch_size, self.drop_last, ("key",) if self.return_keys else ())


def wds_stream(
    urls: str | Iterable[str],
    size: int = 64,
    batch_size: int = 64,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    shuffle_buffer: int = 1000,
    epochs: int | None = None,
    **kwargs: Any,
) -> WdsStream:
    """A batched :class:`WdsStream`; ``epochs=None`` repeats forever with a new shard order per epoch."""
    return WdsStream(
        urls,
        size=size,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        epochs=epochs,
        **kwargs,
    )


def _encode_image(image: Any, image_format: str) -> tuple[bytes, str]:
    """``(bytes, extension)`` of a PIL image, ``[3,H,W]``/``[H,W,3]`` tensor/array in [0,1], path or bytes."""
    if isinstance(image, bytes | bytearray):
        return bytes(image), image_format
    if isinstance(image, str | Path):
        path = Path(image)
        ext = path.suffix.lower().lstrip(".")
        if "." + ext not in IMAGE_EXTENSIONS:
            raise UserError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})")
        return path.read_bytes(), ext
    if isinstance(image, torch.Tensor):
        arr = image.detach().cpu().float()
        if arr.dim() == 3 and arr.shape[0] in (1, 3):
            arr = arr.permute(1, 2, 0)
        image = Image.fromarray((arr.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8).squeeze())
    elif isinstance(image, np.ndarray):
        arr = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        image = Image.fromarray(arr)
    if not isinstance(image, Image.Image):
        raise UserError(
            f"cannot write an image of type {type(image).__name__}; give a PIL image, tensor, path or bytes"
        )
    buf = io.BytesIO()
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[image_format]
    image.convert("RGB").save(buf, format=pil_format, **({"quality": 95} if pil_format == "JPEG" else {}))
    return buf.getvalue(), image_format


def write_shards(
    samples: Iterable[dict[str, Any]],
    out_dir: str | Path,
    per_shard: int = 1000,
    prefix: str = "shard",
    image_format: str = "jpg",
    write_json: bool = True,
) -> list[Path]:
    """Write ``{"image": ..., "caption": str, "key"?: str}`` samples into ``out_dir/{prefix}-000000.tar``, ...

    Each sample becomes ``key.<ext>`` + ``key.txt`` (+ ``key.json`` with the caption); image files and raw
    bytes are stored as they are, PIL images and tensors/arrays in [0,1] are encoded as ``image_format``.
    Returns the shard paths.
    """
    if image_format not in IMAGE_KEYS:
        raise UserError(f"unknown image format {image_format!r}; choose one of {list(IMAGE_KEYS)}")
    if not isinstance(per_shard, int) or per_shard < 1:
        raise UserError(f"per_shard must be a positive integer, got {per_shard!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    writer: wds.TarWriter | None = None
    count = 0
    try:
        for i, sample in enumerate(samples):
            if count % per_shard == 0:
                if writer is not None:
                    writer.close()
                paths.append(out / f"{prefix}-{len(paths):06d}.tar")
                writer = wds.TarWriter(str(paths[-1]))
            data, ext = _encode_image(sample["image"], image_format)
            caption = clean_caption(sample["caption"])
            key = str(sample.get("key", f"{i:09d}"))
            record: dict[str, Any] = {"__key__": key, ext: data, "txt": caption}
            if write_json:
                record["json"] = json.dumps({"caption": caption, "key": key}).encode()
            assert writer is not None
            writer.write(record)
            count += 1
    finally:
        if writer is not None:
            writer.close()
    return paths
