"""Writing and reading generated images: PNG text chunks + JSON sidecars, GIF / MP4 animations, grids.

Every file is written to a temporary name beside its target and renamed when complete, so an interrupted or
failed run never leaves a partial file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.utils.io import atomic_write, atomic_write_text

RECORD_KEY = "clip_t2i"
TEXT_KEYS = ("prompt", "seed", "model", "renderer", "preset", "settings")


def slugify(text: str, max_len: int = 40) -> str:
    """A file-name-safe short form of a prompt."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:max_len].rstrip("-")) or "prompt"


def image_stem(prompt_index: int, prompt: str, seed: int) -> str:
    """The one file-name scheme of every image-writing command: ``{prompt index:03d}-{slug}-seed{seed:04d}``.

    Zero-padded so that a listing sorts by prompt, then seed (seed0010 after seed0009, not after seed0001).
    """
    return f"{prompt_index:03d}-{slugify(prompt)}-seed{seed:04d}"


def image_file_names(
    prompts: Sequence[str], seeds: Sequence[int], exts: Sequence[str] = (".png", ".json")
) -> list[str]:
    """Every file name written for ``prompts`` x ``seeds`` (prompt index = order of first appearance)."""
    index: dict[str, int] = {}
    for p in prompts:
        index.setdefault(p, len(index))
    return [image_stem(index[p], p, s) + e for p in prompts for s in seeds for e in exts]


def to_uint8(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] -> ``[H, W, 3]`` uint8."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def save_png(path: str | Path, image: Tensor, record: dict[str, Any], sidecar: bool = True) -> Path:
    """Write ``image`` as PNG with ``record`` in text chunks (``prompt``, ``seed``, ``model``, ``renderer``,
    ``preset``, ``settings`` and the whole record as JSON under ``clip_t2i``) and, if ``sidecar``, as
    ``<name>.json`` beside it."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    info = PngInfo()
    for key in TEXT_KEYS:
        if key in record:
            value = record[key]
            info.add_itxt(key, value if isinstance(value, str) else json.dumps(value))
    info.add_itxt(RECORD_KEY, json.dumps(record))
    with atomic_write(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG", pnginfo=info)
    if sidecar:
        atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return path


def save_svg(path: str | Path, text: str) -> Path:
    """Write an SVG document (vector renderers) atomically."""
    path = Path(path)
    atomic_write_text(path, text)
    return path


def read_image_record(path: str | Path) -> tuple[dict[str, Any] | None, Tensor]:
    """``(record or None, image [3, H, W] in [0, 1])`` of a PNG: the ``clip_t2i`` text chunk, else the other
    text chunks, else the ``<name>.json`` sidecar."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as img:
            text = dict(getattr(img, "text", {}) or {})
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
        raise UserError(f"cannot read image {path}: {type(e).__name__}") from None
    image = torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0
    record: dict[str, Any] | None = None
    if RECORD_KEY in text:
        try:
            record = json.loads(text[RECORD_KEY])
        except json.JSONDecodeError:
            record = None
    if record is None and "prompt" in text:
        record = {k: text[k] for k in TEXT_KEYS if k in text}
    side = path.with_suffix(".json")
    if record is None and side.is_file():
        try:
            data = json.loads(side.read_text())
            record = data if isinstance(data, dict) else None
        except (OSError, json.JSONDecodeError):
            record = None
    return record, image


def _upscale(frames: Tensor, min_side: int) -> Tensor:
    side = frames.shape[-1]
    factor = max(1, -(-min_side // side))
    return frames if factor == 1 else F.interpolate(frames, scale_factor=factor, mode="nearest")


def save_gif(path: str | Path, frames: Sequence[Tensor], duration_ms: int = 100, min_side: int = 256) -> Path:
    """An animated GIF of ``frames`` (each ``[3, H, W]``), upscaled by an integer factor to ``min_side``."""
    from PIL import Image

    big = _upscale(torch.stack(list(frames)), min_side)
    images = [Image.fromarray(to_uint8(f)) for f in big]
    path = Path(path)
    with atomic_write(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def find_ffmpeg() -> str | None:
    """An ffmpeg executable: on PATH, or the one bundled by the ``imageio-ffmpeg`` package."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - not installed or no binary for this platform
        return None


def require_mp4_encoder() -> str:
    """The ffmpeg executable, or a one-line :class:`UserError` saying how to get one."""
    exe = find_ffmpeg()
    if exe is None:
        raise UserError("--mp4 needs an H.264 encoder: install ffmpeg or `pip install imageio-ffmpeg`, or use --gif")
    return exe


def save_mp4(path: str | Path, frames: Sequence[Tensor], fps: int = 10, min_side: int = 256) -> Path:
    """An H.264 MP4 of ``frames`` through ffmpeg (raw RGB frames on stdin)."""
    exe = require_mp4_encoder()
    big = _upscale(torch.stack(list(frames)), min_side)
    h, w = big.shape[-2:]
    h2, w2 = h - h % 2, w - w % 2
    data = b"".join(to_uint8(f)[:h2, :w2].tobytes() for f in big)
    path = Path(path)
    with atomic_write(path) as tmp:
        cmd = [
            exe,
            "-y",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{w2}x{h2}",
            "-r",
            str(fps),
            "-i",
            "-",
            "-an",
            "-vcodec",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mp4",
            str(tmp),
        ]
        proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(f"ffmpeg failed to write {path.name}: {msg[-1] if msg else proc.returncode}")
    return path


def make_grid(
    images: Tensor, ncol: int, pad: int = 2, min_side: int = 128, labels: Sequence[str] | None = None
) -> Tensor:
    """Tile ``[N, 3, H, W]`` into one ``[3, H', W']`` image (nearest upscale to ``min_side`` per tile); with
    ``labels``, each tile gets its text (wrapped, dark on white) in a strip below it."""
    images = _upscale(images.detach().float().cpu(), min_side)
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    strip = _LABEL_LINES * _LABEL_LINE_PX + 4 if labels is not None else 0
    grid = torch.ones(c, nrow * (h + strip + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, ncol)
        y0, x0 = pad + r * (h + strip + pad), pad + col * (w + pad)
        grid[:, y0 : y0 + h, x0 : x0 + w] = images[i]
    if labels is None:
        return grid
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    import textwrap

    from PIL import Image, ImageDraw

    canvas = Image.fromarray(to_uint8(grid))
    draw = ImageDraw.Draw(canvas)
    chars = max(8, w // 6)  # PIL's default bitmap font is about 6 px per character
    for i, text in enumerate(labels):
        r, col = divmod(i, ncol)
        y0, x0 = pad + r * (h + strip + pad) + h + 2, pad + col * (w + pad) + 2
        for k, line in enumerate(textwrap.wrap(text, chars)[:_LABEL_LINES]):
            draw.text((x0, y0 + k * _LABEL_LINE_PX), line, fill=(20, 20, 20))
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


_LABEL_LINES, _LABEL_LINE_PX = 3, 11
