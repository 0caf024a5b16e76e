"""Tests of the sklearn digits data (clip_t2i.data.digits)."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.backbones.tokenizer import read_vocab
from clip_t2i.data.digits import (
    DIGIT_WORDS,
    DigitsDataset,
    DigitsStream,
    canonical_caption,
    canonical_caption_list,
)
from clip_t2i.errors import UserError

WORD_RE = re.compile(r"[a-z]+|[0-9]")


@pytest.fixture(autouse=True)
def _single_thread():
    """Small tensor ops: one torch thread is as fast, and robust when other processes load the CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_split_sizes_stratified_and_disjoint() -> None:
    train, test = DigitsDataset("train"), DigitsDataset("test")
    assert (len(train), len(test)) == (1437, 360)
    tr, te = Counter(train.labels.tolist()), Counter(test.labels.tolist())
    for digit in range(10):
        assert abs(te[digit] / (tr[digit] + te[digit]) - 0.2) < 0.02
    # the same fixed split every time, whatever the seed
    assert torch.equal(DigitsDataset("train", seed=5).images, train.images)
    # no test image appears in train
    flat_train = {tuple(x) for x in train.images.flatten(1).mul(1000).round().int().tolist()}
    assert not any(tuple(x) in flat_train for x in test.images.flatten(1).mul(1000).round().int().tolist())


@pytest.mark.parametrize("size", [32, 64])
def test_items(size: int) -> None:
    ds = DigitsDataset("test", size=size)
    item = ds[3]
    image = item["image"]
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert torch.equal(image[0], ds.images[3, 0])
    # content, not a range the code clamps to: every image, area-averaged back to sklearn's 8×8 grid, is nearest
    # (among all 1797 sklearn digits, values /16) to a digit of its own label (the source digit is among them)
    from sklearn.datasets import load_digits

    sk = load_digits()
    source = torch.as_tensor(sk.images, dtype=torch.float32).flatten(1) / 16
    pooled = F.adaptive_avg_pool2d(ds.images, 8).flatten(1)
    nearest = torch.cdist(pooled, source, compute_mode="donot_use_mm_for_euclid_dist").argmin(1)
    assert torch.equal(torch.as_tensor(sk.target)[nearest], ds.labels)
    assert isinstance(item["label"], int) and isinstance(item["caption"], str)
    corners = ds.images[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.mean() < 0.05  # black background
    assert ds.images.amax((1, 2, 3)).min() > 0.6  # white-ish strokes
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_captions_name_the_digit_and_use_vocab() -> None:
    vocab = set(read_vocab("builtin-words"))
    ds = DigitsDataset("train", seed=1)
    captions = Counter()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(0, len(ds), 7):
            item = ds[i]
            words = WORD_RE.findall(item["caption"])
            assert DIGIT_WORDS[item["label"]] in words or str(item["label"]) in words, item["caption"]
            assert sum(w in DIGIT_WORDS or w.isdigit() for w in words) == 1, item["caption"]
            assert set(words) <= vocab, item["caption"]
            captions[item["caption"]] += 1
    assert len({re.sub(r"\b(" + "|".join(DIGIT_WORDS) + r"|[0-9])\b", "#", c) for c in captions}) >= 8
    assert canonical_caption(7) == "a handwritten digit seven"
    assert canonical_caption_list()[0] == "a handwritten digit zero"
    with pytest.raises(UserError):
        canonical_caption(10)


def test_captions_deterministic_per_seed_and_epoch() -> None:
    a, b = DigitsDataset("test", seed=2), DigitsDataset("test", seed=2)
    assert [a[i]["caption"] for i in range(50)] == [b[i]["caption"] for i in range(50)]
    b.set_epoch(1)
    assert [a[i]["caption"] for i in range(50)] != [b[i]["caption"] for i in range(50)]


def test_stream() -> None:
    def first(**kw) -> dict:
        return next(iter(DigitsStream(batch_size=32, **kw)))

    a, b = first(seed=1), first(seed=1)
    assert a["image"].shape == (32, 3, 32, 32) and a["label"].shape == (32,) and len(a["caption"]) == 32
    assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"]
    assert not torch.equal(a["label"], first(seed=1, rank=1, world_size=2)["label"])
    for caption, label in zip(a["caption"], a["label"].tolist(), strict=True):
        words = WORD_RE.findall(caption)
        assert DIGIT_WORDS[label] in words or str(label) in words
    # test split: no augmentation, images are exact dataset images
    ds = DigitsDataset("test")
    stream = DigitsStream("test", batch_size=len(ds), seed=0)
    batch = next(iter(stream))
    assert sorted(batch["label"].tolist()) == sorted(ds.labels.tolist())  # one epoch = a permutation
    nearest = (
        torch.cdist(
            batch["image"][:, 0].flatten(1),
            ds.images[:, 0].flatten(1),
            compute_mode="donot_use_mm_for_euclid_dist",
        )
        .min(1)
        .values
    )
    assert nearest.max() < 1e-5
    # train split augments by default
    aug = next(iter(DigitsStream("train", batch_size=64, seed=0)))
    train = DigitsDataset("train")
    assert (
        torch.cdist(
            aug["image"][:, 0].flatten(1),
            train.images[:, 0].flatten(1),
            compute_mode="donot_use_mm_for_euclid_dist",
        )
        .min(1)
        .values.max()
        > 1e-2
    )


def test_stream_epochs_resume_and_workers() -> None:
    stream = DigitsStream("test", batch_size=50, seed=4, augment=False)
    first_epoch = torch.cat([stream.indices(b) for b in range(360 // 50)] + [stream.indices(7)[:10]])
    assert sorted(first_epoch.tolist()) == list(range(360))  # every image once per epoch
    assert stream.indices(7).shape == (50,)  # batches run on into the next epoch
    loader = torch.utils.data.DataLoader(DigitsStream("train", batch_size=16, seed=4), batch_size=None, num_workers=2)
    with_workers = [b for _, b in zip(range(3), loader, strict=False)]
    single = DigitsStream("train", batch_size=16, seed=4)
    for i, batch in enumerate(with_workers):
        expected = single.batch(i)
        assert torch.equal(batch["image"], expected["image"]) and batch["caption"] == expected["caption"]
    resumed = next(iter(DigitsStream("train", batch_size=16, seed=4, start_batch=2)))
    assert torch.equal(resumed["image"], with_workers[2]["image"])


def test_bad_arguments() -> None:
    with pytest.raises(UserError):
        DigitsDataset("validation")
    with pytest.raises(UserError):
        DigitsStream(size=4)
    with pytest.raises(UserError):
        DigitsStream(rank=1)
