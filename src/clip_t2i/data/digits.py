"""scikit-learn's 8x8 handwritten digits, upscaled, with captions; a map-style dataset and an infinite stream.

The train/test split is fixed: stratified 80/20 with ``random_state=0`` (1437 train / 360 test images), the
same every time regardless of any seed argument. Images are white-ish digits on black, 3 identical channels in
[0,1].
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.data._common import (
    check_batch_size,
    check_rank,
    check_start_batch,
    stream_generator,
    worker_batch_indices,
)
from clip_t2i.errors import UserError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_SPLITS = ("train", "test")
SPLIT_SEED = 0
TEST_FRACTION = 0.2

# {w} digit word, {n} numeral.
_TEMPLATES = (
    "a handwritten digit {w}",
    "the digit {w} written by hand",
    "a photo of the number {n}",
    "a handwritten {w}",
    "a scan of a handwritten {w}",
    "the number {w}, handwritten",
    "a picture of the handwritten numeral {w}",
    "a drawing of the digit {n}",
    "a grayscale image of a handwritten {w}",
    "{w} written by hand",
    "the handwritten number {n}",
    "a scanned digit {w}",
)


def caption_vocabulary() -> dict[str, frozenset[str]]:
    """The words training captions use, by role: ``digit`` (the content words) and ``other``."""
    import re

    words = {w for t in _TEMPLATES for w in re.findall(r"[a-z]+", t.replace("{w}", "").replace("{n}", ""))}
    return {"digit": frozenset(DIGIT_WORDS) | frozenset("0123456789"), "other": frozenset(words)}


def canonical_caption(label: int) -> str:
    """The canonical caption of a digit class: ``"a handwritten digit {word}"``."""
    if not 0 <= int(label) <= 9:
        raise UserError(f"digit label must lie in 0..9, got {label}")
    return f"a handwritten digit {DIGIT_WORDS[int(label)]}"


def canonical_caption_list() -> list[str]:
    """Canonical captions of the ten classes, in label order."""
    return [canonical_caption(i) for i in range(10)]


def random_caption(label: int, rng: random.Random) -> str:
    """One random caption of a digit class from several templates."""
    return rng.choice(_TEMPLATES).format(w=DIGIT_WORDS[label], n=label)


@lru_cache(maxsize=8)
def _load(split: str, size: int) -> tuple[Tensor, Tensor]:
    """``(images [N,1,size,size] in [0,1], labels [N])`` of one split (cached: treat as read-only)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    idx = torch.arange(len(data.target)).numpy()
    train_idx, test_idx = train_test_split(
        idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=data.target, shuffle=True
    )
    chosen = sorted(train_idx if split == "train" else test_idx)
    images = torch.as_tensor(data.images[chosen], dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(data.target[chosen], dtype=torch.long)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
    return images.contiguous(), labels


def _check(split: str, size: int) -> None:
    if split not in DIGIT_SPLITS:
        raise UserError(f"unknown digits split {split!r}; choose one of {list(DIGIT_SPLITS)}")
    if not isinstance(size, int) or size < 8:
        raise UserError(f"digits image size must be an integer >= 8, got {size!r}")


class DigitsDataset(torch.utils.data.Dataset):
    """Map-style digits: ``ds[i] -> {"image": [3,H,W], "caption": str, "label": int}``.

    All images live in one in-memory tensor (``self.images``, ``[N,1,H,W]``; channels are expanded on access).
    The caption of item ``i`` is random but deterministic per ``(seed, epoch, i)``; call :meth:`set_epoch` to
    vary it.
    """

    def __init__(self, split: str = "train", size: int = 32, seed: int = 0):
        _check(split, size)
        self.split, self.size, self.seed, self.epoch = split, size, seed, 0
        self.images, self.labels = _load(split, size)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def set_epoch(self, epoch: int) -> None:
        """Choose a new set of random captions (like ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} digits")
        label = int(self.labels[index])
        rng = random.Random(hash((self.seed, self.epoch, int(index) % len(self))))
        return {
            "image": self.images[index].expand(3, -1, -1),
            "caption": random_caption(label, rng),
            "label": label,
        }


def _augment(images: Tensor, g: torch.Generator, max_shift: float = 0.08, max_scale: float = 0.1) -> Tensor:
    """Random scale (1 +- max_scale) and shift (+- max_shift of the side), batched via grid_sample."""
    n = images.shape[0]
    u = torch.rand(n, 3, generator=g) * 2 - 1
    zoom = 1 + u[:, 0] * max_scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1 / zoom
    theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = u[:, 1:] * (2 * max_shift)  # normalised coords span 2 per side
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0.0, 1.0)


class DigitsStream(torch.utils.data.IterableDataset):
    """Infinite stream of digit batches ``{"image": [B,3,H,W], "caption": [B], "label": [B]}``.

    Each (seed, rank) walks its own sequence of random permutations of the split (every image once per
    epoch); batch ``b`` takes the next ``B`` items of that sequence, with random captions and (by default for
    ``train``) light augmentation (scale +-10 %, shift +-8 % of the side) seeded by (seed, rank, b). As with
    :class:`~clip_t2i.data.shapes.ShapesStream`, DataLoader workers split the batch indices, the result does
    not depend on the number of workers, and ``start_batch`` resumes exactly.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        batch_size: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        augment: bool | None = None,
        start_batch: int = 0,
    ):
        super().__init__()
        _check(split, size)
        check_batch_size(batch_size)
        check_rank(rank, world_size)
        check_start_batch(start_batch)
        self.split, self.size, self.batch_size = split, size, batch_size
        self.seed, self.rank, self.world_size, self.start_batch = seed, rank, world_size, start_batch
        self.augment = (split == "train") if augment is None else augment
        self.images, self.labels = _load(split, size)
        self._perms: dict[int, Tensor] = {}

    def _permutation(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            g = stream_generator(self.seed, self.rank, epoch, 0xD1617)
            self._perms[epoch] = torch.randperm(self.labels.shape[0], generator=g)
        return self._perms[epoch]

    def indices(self, index: int) -> Tensor:
        """Dataset indices of batch number ``index``."""
        n, B = self.labels.shape[0], self.batch_size
        first, last = index * B, (index + 1) * B
        parts = [
            self._permutation(e)[max(first - e * n, 0) : min(last - e * n, n)]
            for e in range(first // n, (last - 1) // n + 1)
        ]
        return torch.cat(parts)

    def batch(self, index: int) -> dict[str, Any]:
        """Batch number ``index`` of this rank's stream."""
        idx = self.indices(index)
        g = stream_generator(self.seed, self.rank, index, 0xCA9)
        images = self.images[idx]
        if self.augment:
            images = _augment(images, g)
        labels = self.labels[idx]
        rng = random.Random(int(torch.randint(0, 1 << 62, (1,), generator=g)))
        return {
            "image": images.expand(-1, 3, -1, -1).contiguous(),
            "caption": [random_caption(int(lab), rng) for lab in labels.tolist()],
            "label": labels,
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in worker_batch_indices(self.start_batch):
            yield self.batch(index)
