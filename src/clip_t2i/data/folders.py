"""Image-text folders: images (jpg/png/webp) captioned by a table (csv / jsonl) or by sidecar ``name.txt``
files.

Caption sources, all optional and combined (a table row wins over a sidecar file for the same image):

* every ``*.csv`` directly in ``root`` with a header naming the image (``file``, ``image``, ``filename`` or
  ``path``) and the caption (``caption`` or ``text``); paths are relative to the table's folder;
* every ``*.jsonl`` directly in ``root``, one object per line with the same keys;
* ``name.txt`` next to ``name.jpg`` (anywhere below ``root``), the whole file being the caption.

Unreadable images are skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from clip_t2i.data._common import (
    IMAGE_EXTENSIONS,
    check_batch_size,
    check_rank,
    check_start_batch,
    clean_caption,
    load_image,
    stream_seed,
    worker_batch_indices,
)
from clip_t2i.errors import UserError

FILE_KEYS = ("file", "image", "filename", "path")
CAPTION_KEYS = ("caption", "text")
_EXPECTED = (
    "expected images (.jpg/.jpeg/.png/.webp) with captions from a captions.csv (columns file,caption), "
    'a *.jsonl ({"file": ..., "caption": ...} per line) or a name.txt beside each name.jpg'
)


def _pick(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for key in keys:
        if lowered.get(key) not in (None, ""):
            return lowered[key]
    return None


def _table_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            yield from csv.DictReader(fh)
        return
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exn:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exn.msg}); expected one object per line") from None
            if isinstance(obj, dict):
                yield obj


def scan_folder(root: str | Path) -> tuple[list[tuple[Path, str]], dict[str, int]]:
    """``([(image path, caption), ...], counts)`` of a folder; :class:`UserError` if nothing is captioned."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"image-text folder {str(root)!r} does not exist or is not a directory; {_EXPECTED}")
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    counts = {"images": len(images), "missing": 0, "uncaptioned": 0}
    captions: dict[Path, str] = {}
    for table in sorted([*root.glob("*.csv"), *root.glob("*.jsonl")]):
        for row in _table_rows(table):
            name, text = _pick(row, FILE_KEYS), _pick(row, CAPTION_KEYS)
            if name is None or text is None:
                continue
            path = (table.parent / str(name).strip()).resolve()
            if path.is_file():
                captions.setdefault(path, clean_caption(text))
            else:
                counts["missing"] += 1
    samples = []
    for img in images:
        text = captions.get(img.resolve())
        if text is None:
            sidecar = img.with_suffix(".txt")
            if sidecar.is_file():
                text = clean_caption(sidecar.read_text(encoding="utf-8", errors="replace"))
        if text:
            samples.append((img, text))
        else:
            counts["uncaptioned"] += 1
    if counts["missing"]:
        warnings.warn(f"{counts['missing']} caption row(s) in {root} name images that do not exist", stacklevel=2)
    if not samples:
        found = f"found {len(images)} image(s) but no captions" if images else "found no images"
        raise UserError(f"no captioned images in {str(root)!r} ({found}); {_EXPECTED}")
    return samples, counts


class ImageTextFolder(torch.utils.data.Dataset):
    """Map-style image-text folder: ``ds[i] -> {"image": [3,size,size], "caption": str}``, or ``None`` if
    unreadable.

    Images are resized (shorter side) and centre-cropped to ``size``. Unreadable images are counted in
    ``n_skipped`` (per process: DataLoader workers keep their own counts); use :func:`collate_skip_none` as
    the DataLoader's ``collate_fn`` to drop them.
    """

    def __init__(self, root: str | Path, size: int = 64):
        if not isinstance(size, int) or size < 1:
            raise UserError(f"image size must be a positive integer, got {size!r}")
        self.root, self.size = Path(root), size
        self.samples, self.counts = scan_folder(root)
        self.n_skipped = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        return self.load(index)

    def load(self, index: int, warn: bool = True) -> dict[str, Any] | None:
        """Item ``index``, or ``None`` (counted in ``n_skipped``, warned about) if the image is unreadable."""
        path, caption = self.samples[index]
        try:
            image = load_image(path, self.size)
        except Exception as exn:  # noqa: BLE001 - any decoding failure means "skip this image"
            self.n_skipped += 1
            if warn:
                warnings.warn(f"skipping unreadable image {path}: {exn}", stacklevel=2)
            return None
        return {"image": image, "caption": caption}


def collate_skip_none(batch: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Collate ``{"image", "caption"}`` samples, dropping ``None`` (failed) ones; ``None`` if all failed."""
    kept = [b for b in batch if b is not None]
    if not kept:
        return None
    return {"image": torch.stack([b["image"] for b in kept]), "caption": [b["caption"] for b in kept]}


class FolderStream(torch.utils.data.IterableDataset):
    """Batched stream over an :class:`ImageTextFolder`: ``{"image": [B,3,H,W], "caption": [B]}``.

    Every epoch all ranks draw the same seeded permutation and rank ``r`` takes every ``world_size``-th item,
    so each image goes to exactly one rank per epoch. A rank's items, epoch after epoch, form one sequence;
    batch ``b`` is its ``b``-th slice of ``batch_size`` items, DataLoader workers split the batch indices, so
    each image is read by one worker, the result does not depend on the number of workers and
    ``start_batch`` resumes exactly. ``epochs=None`` repeats forever. Unreadable images are skipped (their
    batch is smaller) and counted in ``stats`` (per process).
    """

    def __init__(
        self,
        root: str | Path,
        size: int = 64,
        batch_size: int = 64,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        epochs: int | None = None,
        drop_last: bool = False,
        start_batch: int = 0,
    ):
        super().__init__()
        check_batch_size(batch_size)
        check_rank(rank, world_size)
        check_start_batch(start_batch)
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise UserError(f"epochs must be a positive integer or None (forever), got {epochs!r}")
        self.dataset = ImageTextFolder(root, size=size)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.shuffle, self.epochs, self.drop_last, self.start_batch = shuffle, epochs, drop_last, start_batch
        self.per_epoch = len(range(len(self.dataset))[rank::world_size])
        self.stats = {"samples": 0, "skipped": 0}
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        """Number of images in the folder (all ranks together)."""
        return len(self.dataset)

    def _rank_order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            if len(self._orders) > 4:
                self._orders.pop(min(self._orders))
            order = list(range(len(self.dataset)))
            if self.shuffle:
                random.Random(stream_seed(self.seed, epoch, 0xF01D)).shuffle(order)  # same on every rank
            self._orders[epoch] = order[self.rank :: self.world_size]
        return self._orders[epoch]

    def indices(self, index: int) -> list[int] | None:
        """Dataset indices of batch number ``index`` (``None`` past the last epoch)."""
        L, B = self.per_epoch, self.batch_size
        total = None if self.epochs is None else self.epochs * L
        first, last = index * B, (index + 1) * B
        if total is not None:
            if first >= total or (self.drop_last and last > total):
                return None
            last = min(last, total)
        out: list[int] = []
        for epoch in range(first // L, (last - 1) // L + 1):
            out += self._rank_order(epoch)[max(first - epoch * L, 0) : min(last - epoch * L, L)]
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.per_epoch:
            return  # fewer images than ranks: nothing for this one
        failed_in_a_row = 0
        for index in worker_batch_indices(self.start_batch):
            items = self.indices(index)
            if items is None:
                return
            samples = []
            for i in items:
                sample = self.dataset.load(i, warn=False)
                if sample is None:
                    self.stats["skipped"] += 1
                    failed_in_a_row += 1
                    warnings.warn(f"skipping unreadable image {self.dataset.samples[i][0]}", stacklevel=2)
                    continue
                failed_in_a_row = 0
                self.stats["samples"] += 1
                samples.append(sample)
            if self.epochs is None and failed_in_a_row >= self.per_epoch:
                raise UserError(f"every image of rank {self.rank} in {self.dataset.root} is unreadable")
            if samples:
                yield {
                    "image": torch.stack([s["image"] for s in samples]),
                    "caption": [s["caption"] for s in samples],
                }
