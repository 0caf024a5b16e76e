"""Tests of image-text folders, WebDataset shards and the make_stream factory."""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clip_t2i.data import (
    DigitsStream,
    FolderStream,
    ImageTextFolder,
    ShapesStream,
    WdsStream,
    collate_skip_none,
    make_stream,
    wds_stream,
    write_shards,
)
from clip_t2i.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:skipping")


@pytest.fixture(autouse=True)
def _single_thread():
    """Small tensor ops: one torch thread is as fast, and robust when other processes load the CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (24, 24)) -> Image.Image:
    return Image.new("RGB", size, colour)


def make_folder(root: Path) -> Path:
    """Captions from a csv, a jsonl and sidecar txt files; one corrupt jpg; one uncaptioned image."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir()
    solid((255, 0, 0)).save(root / "red.png")
    solid((0, 255, 0)).save(root / "sub" / "green.jpg")
    solid((0, 0, 255)).save(root / "blue.webp")
    solid((255, 255, 0)).save(root / "yellow.jpg")
    solid((9, 9, 9)).save(root / "nocaption.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (root / "captions.csv").write_text(
        "file,caption\nred.png,a red image\nsub/green.jpg,a green image\nmissing.jpg,gone\n"
    )
    (root / "more.jsonl").write_text(json.dumps({"image": "blue.webp", "text": "a blue image"}) + "\n\n")
    (root / "yellow.txt").write_text("a yellow\nimage\n")
    (root / "broken.txt").write_text("a broken image")
    return root


def test_folder_captions_from_all_sources(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="do not exist"):
        ds = ImageTextFolder(make_folder(tmp_path / "f"), size=16)
    captions = sorted(c for _, c in ds.samples)
    assert captions == ["a blue image", "a broken image", "a green image", "a red image", "a yellow image"]
    assert ds.counts == {"images": 6, "missing": 1, "uncaptioned": 1}
    items = [ds[i] for i in range(len(ds))]
    assert sum(item is None for item in items) == 1 and ds.n_skipped == 1
    expected = {
        "a red image": (1, 0, 0),
        "a green image": (0, 1, 0),
        "a blue image": (0, 0, 1),
        "a yellow image": (1, 1, 0),
    }
    for item in items:
        if item is None:
            continue
        assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
        colour = item["image"].mean((1, 2))
        assert (colour - torch.tensor(expected[item["caption"]], dtype=torch.float32)).abs().max() < 0.05
    loader = torch.utils.data.DataLoader(ds, batch_size=5, collate_fn=collate_skip_none)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 16, 16) and len(batch["caption"]) == 4
    assert collate_skip_none([None, None]) is None


def test_resize_shorter_side_and_centre_crop(tmp_path: Path) -> None:
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :20, 0] = 255
    arr[:, 20:40, 1] = 255
    arr[:, 40:, 2] = 255
    Image.fromarray(arr).save(tmp_path / "bands.png")
    (tmp_path / "bands.txt").write_text("three bands")
    image = ImageTextFolder(tmp_path, size=10)[0]["image"]
    assert image.shape == (3, 10, 10)
    assert image[1].mean() > 0.95 and image[0].max() < 0.1 and image[2].max() < 0.1  # only the middle band


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        ImageTextFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="found no images"):
        ImageTextFolder(tmp_path / "empty")
    (tmp_path / "uncaptioned").mkdir()
    solid((1, 2, 3)).save(tmp_path / "uncaptioned" / "x.png")
    with pytest.raises(UserError, match="no captions"):
        ImageTextFolder(tmp_path / "uncaptioned")
    (tmp_path / "badjson").mkdir()
    solid((1, 2, 3)).save(tmp_path / "badjson" / "x.png")
    (tmp_path / "badjson" / "c.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="JSON"):
        ImageTextFolder(tmp_path / "badjson")


@pytest.mark.filterwarnings("ignore:1 caption row")
def test_folder_stream_splits_ranks_and_counts_skips(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f")
    seen, skipped = [], 0
    for rank in range(2):
        stream = FolderStream(root, size=8, batch_size=2, seed=3, rank=rank, world_size=2, epochs=1)
        batches = list(stream)
        seen += [c for b in batches for c in b["caption"]]
        assert all(b["image"].shape[1:] == (3, 8, 8) for b in batches)
        assert stream.stats["samples"] == sum(len(b["caption"]) for b in batches)
        skipped += stream.stats["skipped"]
    assert sorted(seen) == ["a blue image", "a green image", "a red image", "a yellow image"] and skipped == 1
    one = FolderStream(root, size=8, batch_size=3, seed=3, epochs=2)
    assert sum(len(b["caption"]) for b in one) == 8 and one.stats == {"samples": 8, "skipped": 2}


@pytest.mark.filterwarnings("ignore:1 caption row")
def test_folder_stream_resume_and_workers(tmp_path: Path) -> None:
    root = tmp_path / "f"
    root.mkdir()
    for i in range(10):
        solid((20 * i, 0, 0)).save(root / f"{i}.png")
        (root / f"{i}.txt").write_text(f"image {i}")

    def captions(workers: int = 0, n: int = 8, **kw) -> list[list[str]]:
        stream = FolderStream(root, size=8, batch_size=3, seed=1, **kw)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
        return [b["caption"] for _, b in zip(range(n), loader, strict=False)]

    single = captions()
    first_ten = [c for batch in single[:3] for c in batch] + single[3][:1]
    assert sorted(first_ten) == sorted(f"image {i}" for i in range(10))  # one epoch, no repeats
    assert captions(workers=2) == single  # same sequence whatever the number of workers
    assert captions(start_batch=5, n=3) == single[5:]  # exact resume
    finite = FolderStream(root, size=8, batch_size=3, seed=1, epochs=2, drop_last=True)
    assert [len(b["caption"]) for b in finite] == [3] * 6


# ------------------------------------------------------------------------------------------------ shards
def shard_samples(n: int, prefix: str = "s") -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.rand(3, 12, 12, generator=g),
            "caption": f"caption number {i}",
            "key": f"{prefix}{i:04d}",
        }
        for i in range(n)
    ]


def keys_of(stream: WdsStream) -> list[str]:
    return [s["key"] for s in stream.samples()]


def test_write_shards_layout(tmp_path: Path) -> None:
    paths = write_shards(shard_samples(10), tmp_path, per_shard=4)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    with tarfile.open(paths[0]) as tar:
        names = tar.getnames()
        assert sorted(names[:3]) == ["s0000.jpg", "s0000.json", "s0000.txt"] and len(names) == 12
        assert json.loads(tar.extractfile("s0000.json").read())["caption"] == "caption number 0"
    with pytest.raises(UserError):
        write_shards([], tmp_path, per_shard=0)


def test_shards_split_across_ranks_without_duplicates(tmp_path: Path) -> None:
    write_shards(shard_samples(30), tmp_path, per_shard=5)
    pattern = str(tmp_path / "shard-{000000..000005}.tar")
    all_keys = {f"s{i:04d}" for i in range(30)}
    for epoch_seed in (0, 1):
        per_rank = [
            keys_of(WdsStream(pattern, size=8, rank=r, world_size=2, seed=epoch_seed, epochs=1)) for r in range(2)
        ]
        assert not set(per_rank[0]) & set(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == sorted(all_keys)
    # deterministic order per seed; batches carry images and captions only
    a = list(wds_stream(pattern, size=8, batch_size=7, seed=5, epochs=1))
    b = list(wds_stream(pattern, size=8, batch_size=7, seed=5, epochs=1))
    assert [x["caption"] for x in a] == [x["caption"] for x in b]
    assert set(a[0]) == {"image", "caption"} and a[0]["image"].shape == (7, 3, 8, 8)
    assert sum(len(x["caption"]) for x in a) == 30
    with pytest.raises(UserError):
        WdsStream(pattern, world_size=7, rank=0)


def test_shards_split_across_dataloader_workers(tmp_path: Path) -> None:
    write_shards(shard_samples(40), tmp_path, per_shard=5)
    seen: list[str] = []
    for rank in range(2):
        stream = WdsStream(
            sorted(str(p) for p in tmp_path.glob("*.tar")),
            size=8,
            batch_size=3,
            rank=rank,
            world_size=2,
            epochs=1,
            return_keys=True,
        )
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        seen += [k for batch in loader for k in batch["key"]]
    assert len(seen) == 40 and set(seen) == {f"s{i:04d}" for i in range(40)}


def test_corrupt_image_and_truncated_tar_are_skipped_and_counted(tmp_path: Path) -> None:
    samples = shard_samples(8)
    samples[3]["image"] = b"\xff\xd8\xff\xe0 not a jpeg at all"
    good = write_shards(samples, tmp_path / "a", per_shard=8)[0]
    victim = write_shards(shard_samples(8, prefix="t"), tmp_path / "b", per_shard=8)[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2 + 100])  # cut in the middle of a member
    no_caption = tmp_path / "c.tar"
    with tarfile.open(no_caption, "w") as tar:
        buf = io.BytesIO()
        solid((5, 5, 5), (8, 8)).save(buf, format="PNG")
        info = tarfile.TarInfo("lonely.png")
        info.size = len(buf.getvalue())
        tar.addfile(info, io.BytesIO(buf.getvalue()))
    stream = WdsStream([str(good), str(victim), str(no_caption)], size=8, batch_size=4, epochs=1, shuffle_shards=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keys = keys_of(stream)
    assert {f"s{i:04d}" for i in range(8)} - set(keys) == {"s0003"}
    assert stream.stats["bad_images"] == 1 and stream.stats["errors"] >= 1 and stream.stats["incomplete"] >= 1
    assert 0 < sum(k.startswith("t") for k in keys) < 8  # samples before the cut survive
    assert stream.stats["samples"] == len(keys)


def test_json_only_captions(tmp_path: Path) -> None:
    path = write_shards(shard_samples(3), tmp_path, per_shard=3)[0]
    stripped = tmp_path / "json-only.tar"
    with tarfile.open(path) as src, tarfile.open(stripped, "w") as dst:
        for member in src.getmembers():
            if not member.name.endswith(".txt"):
                dst.addfile(member, src.extractfile(member))
    batch = next(iter(wds_stream(str(stripped), size=8, batch_size=8, epochs=1)))
    assert sorted(batch["caption"]) == [f"caption number {i}" for i in range(3)]


# ------------------------------------------------------------------------------------------------ factory
def test_make_stream_sources(tmp_path: Path) -> None:
    shapes = make_stream("shapes", size=32, batch_size=4)
    assert isinstance(shapes, ShapesStream) and shapes.world.level == "one"
    assert make_stream("shapes2", size=32, batch_size=4).world.level == "two"
    assert isinstance(make_stream("digits", batch_size=4), DigitsStream)
    batch = next(iter(make_stream("shapes2", size=32, batch_size=4)))
    assert set(batch) == {"image", "caption", "label"} and batch["image"].shape == (4, 3, 32, 32)
    root = make_folder(tmp_path / "f")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = make_stream(str(root), size=8, batch_size=2, epochs=1)
        assert isinstance(folder, FolderStream) and sum(len(b["caption"]) for b in folder) == 4
    write_shards(shard_samples(6), tmp_path / "shards", per_shard=2)
    by_dir = make_stream(str(tmp_path / "shards"), size=8, batch_size=4, epochs=1)
    by_pattern = make_stream(str(tmp_path / "shards" / "shard-{000000..000002}.tar"), size=8, batch_size=4, epochs=1)
    by_file = make_stream(str(tmp_path / "shards" / "shard-000000.tar"), size=8, batch_size=4, epochs=1)
    assert [sum(len(b["caption"]) for b in s) for s in (by_dir, by_pattern, by_file)] == [6, 6, 2]


def test_make_stream_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="shapes, shapes2, digits"):
        make_stream("imagenet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither .tar shards nor images"):
        make_stream(str(tmp_path / "empty"))
    (tmp_path / "uncaptioned").mkdir()
    solid((1, 2, 3)).save(tmp_path / "uncaptioned" / "x.png")
    with pytest.raises(UserError, match="no captions"):
        make_stream(str(tmp_path / "uncaptioned"))
    with pytest.raises(UserError, match="no shard files"):
        make_stream(str(tmp_path / "x-{000..003}.tar"))
    with pytest.raises(UserError, match="valid options"):
        make_stream("shapes", colour="red")
    with pytest.raises(UserError):
        make_stream("shapes2", level="one")
    with pytest.raises(UserError):
        make_stream("")


def test_infinite_streams_fail_loudly_when_nothing_is_readable(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    for name in ("a", "b"):
        (tmp_path / "f" / f"{name}.jpg").write_bytes(b"garbage")
        (tmp_path / "f" / f"{name}.txt").write_text("a caption")
    with pytest.raises(UserError, match="unreadable"):
        next(iter(FolderStream(tmp_path / "f", size=8, batch_size=2)))
    samples = shard_samples(2)
    for s in samples:
        s["image"] = b"not an image"
    write_shards(samples, tmp_path / "s", per_shard=2)
    with pytest.raises(UserError, match="no usable sample"):
        next(iter(WdsStream(str(tmp_path / "s" / "shard-000000.tar"), size=8, batch_size=2)))


def test_more_workers_than_shards(tmp_path: Path) -> None:
    path = write_shards(shard_samples(5), tmp_path, per_shard=5)[0]
    stream = WdsStream(str(path), size=8, batch_size=2, epochs=1, return_keys=True)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    assert sorted(k for b in loader for k in b["key"]) == [f"s{i:04d}" for i in range(5)]


@pytest.mark.filterwarnings("ignore:1 caption row")
def test_make_stream_accepts_the_training_loop_arguments(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f")
    write_shards(shard_samples(8), tmp_path / "shards", per_shard=2)
    common = {
        "size": 16,
        "batch_size": 2,
        "seed": 0,
        "rank": 1,
        "world_size": 2,
        "start_batch": 1,
        "split": "train",
    }
    for name in ("shapes", "shapes2", "digits", str(root), str(tmp_path / "shards")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = next(iter(make_stream(name, **common)))
        assert batch["image"].shape[1:] == (3, 16, 16) and len(batch["caption"]) == batch["image"].shape[0]
    with pytest.raises(UserError, match="no 'test' split"):
        make_stream(str(root), split="test")


def test_shard_stream_resume(tmp_path: Path) -> None:
    write_shards(shard_samples(20), tmp_path, per_shard=5)
    urls = sorted(str(p) for p in tmp_path.glob("*.tar"))

    def keys(**kw) -> list[list[str]]:
        stream = WdsStream(urls, size=8, batch_size=3, seed=2, epochs=2, return_keys=True, **kw)
        return [b["key"] for b in stream]

    full = keys()
    assert sum(len(k) for k in full) == 40 and keys(start_batch=4) == full[4:]
