"""Training and evaluation data: the procedural shapes world, sklearn digits, image-text folders, WebDataset
shards.

Every stream yields batches ``{"image": float [B,3,H,W] in [0,1], "caption": list[str]}`` plus ``"label"``
(LongTensor ``[B]``) for the closed-world sources (shapes, digits). :func:`make_stream` builds one by name.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from clip_t2i.data._common import IMAGE_EXTENSIONS
from clip_t2i.data.digits import (
    DIGIT_WORDS,
    DigitsDataset,
    DigitsStream,
    canonical_caption,
)
from clip_t2i.data.folders import FolderStream, ImageTextFolder, collate_skip_none
from clip_t2i.data.shapes import (
    COLOUR_RGB,
    COLOURS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    Scenes,
    ShapesStream,
    ShapesWorld,
    shapes_eval_set,
)
from clip_t2i.data.wds import WdsStream, expand_urls, wds_stream, write_shards
from clip_t2i.errors import UserError

STREAM_CHOICES = (
    "shapes",
    "shapes2",
    "digits",
    "<image-text folder>",
    "<shard pattern, .tar file or folder of .tar>",
)
_REMOTE = ("http://", "https://", "pipe:", "s3://", "gs://", "file:")


def _build(cls: Any, name: str, kwargs: dict[str, Any], **fixed: Any) -> Any:
    params = inspect.signature(cls).parameters
    clash = sorted(set(kwargs) & set(fixed))
    if clash:
        raise UserError(f"data source {name!r} sets {clash} itself; do not pass them")
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = [p for p in params if p not in fixed and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
        raise UserError(f"data source {name!r} does not take {unknown}; valid options: {valid}")
    return cls(**fixed, **kwargs)


def _is_shard_spec(name: str) -> bool:
    return name.startswith(_REMOTE) or ("{" in name and ".." in name) or "::" in name or name.endswith(".tar")


def make_stream(name: str, **kwargs: Any) -> Any:
    """A batched iterable (an ``IterableDataset``) of ``{"image", "caption"[, "label"]}`` batches.

    ``name``: ``"shapes"`` (one object), ``"shapes2"`` (two objects), ``"digits"``, a folder of captioned
    images, a shard pattern/URL (``/x/{000..009}.tar``), a ``.tar`` file or a folder of ``.tar`` shards.
    ``kwargs`` go to :class:`ShapesStream`, :class:`DigitsStream`, :class:`FolderStream` or :class:`WdsStream`
    (common ones: ``size``, ``batch_size``, ``seed``, ``rank``, ``world_size``).
    """
    if not isinstance(name, str | Path) or not str(name).strip():
        raise UserError(f"data source must be one of {list(STREAM_CHOICES)}, got {name!r}")
    name = str(name).strip()
    if name == "shapes":
        kwargs.setdefault("level", "one")
        return _build(ShapesStream, name, kwargs)
    if name == "shapes2":
        if kwargs.get("level", "two") != "two":
            raise UserError("'shapes2' is the two-object shapes world; use 'shapes' for one object")
        kwargs.pop("level", None)
        return _build(ShapesStream, name, kwargs, level="two")
    if name == "digits":
        return _build(DigitsStream, name, kwargs)
    split = kwargs.pop("split", None)  # folders and shards have no splits: accept only "train"/"all"
    if split not in (None, "train", "all"):
        raise UserError(f"{name!r} has no {split!r} split; folders and shards are used whole (split='train')")
    if _is_shard_spec(name):
        if not name.startswith(_REMOTE):
            name = os.path.expanduser(name)
            urls = expand_urls(name)
            missing = [u for u in urls if not Path(u).is_file()]
            if len(missing) == len(urls):
                raise UserError(f"no shard files found for {name!r} (e.g. {missing[0]!r} does not exist)")
            if missing:
                raise UserError(f"{len(missing)} of {len(urls)} shards of {name!r} are missing, e.g. {missing[0]!r}")
        return _build(WdsStream, name, kwargs, urls=name)
    path = Path(name).expanduser()
    if path.is_dir():
        tars = sorted(str(p) for p in path.glob("*.tar"))
        if tars:
            return _build(WdsStream, name, kwargs, urls=tars)
        if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.rglob("*")):
            raise UserError(
                f"{name!r} holds neither .tar shards nor images; expected a folder of WebDataset shards or "
                "of images (.jpg/.png/.webp) with captions (captions.csv, *.jsonl or name.txt files)"
            )
        return _build(FolderStream, name, kwargs, root=path)  # UserError if no image is captioned
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        raise UserError(f"{name!r} is a single image; give the folder that contains the images and captions")
    raise UserError(f"unknown data source {name!r}; valid choices: {', '.join(STREAM_CHOICES)}")


__all__ = [
    "COLOURS",
    "COLOUR_RGB",
    "SHAPES",
    "SIZES",
    "POSITIONS",
    "RELATIONS",
    "Scenes",
    "ShapesWorld",
    "ShapesStream",
    "shapes_eval_set",
    "DIGIT_WORDS",
    "DigitsDataset",
    "DigitsStream",
    "canonical_caption",
    "ImageTextFolder",
    "FolderStream",
    "collate_skip_none",
    "WdsStream",
    "wds_stream",
    "write_shards",
    "expand_urls",
    "make_stream",
    "STREAM_CHOICES",
]
