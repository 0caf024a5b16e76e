"""What the web app does with a request, without Gradio: validate, cap, run, and write inside the output folder.

Every check is the CLI's own (:func:`~clip_t2i.pipeline.parse_seeds`, :func:`~clip_t2i.pipeline.check_inputs`,
:mod:`clip_t2i.utils.checks`, the preset and renderer registries, the vocabulary check, the GAN's and the style
transfer's input checks), so a bad field gets the message the command line prints. On top come the app's caps
(:class:`ServeLimits`: steps, image side, images per request, upload size), set by ``clip-t2i serve``.

Outputs: each request gets a fresh folder ``OUT/<job id>/`` whose name the server makes up (time, counter, random
suffix); the files inside are named by :func:`~clip_t2i.renderers.outputs.image_stem` (a slug of the prompt), so
nothing a user types becomes a path, and :func:`JobFolders.check_inside` refuses any result outside ``OUT``.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clip_t2i.errors import UserError, one_line

GAN = "gan"  # the renderer choice that samples the CLIP-aided GAN instead of optimising
STYLE = "style"  # the renderer choice that runs CLIPStyler on a content image
DEFAULT_GAN = "shapes-scad"
DEFAULT_MODEL = "shapes-clipag"
COMPARE_MODELS = ("shapes-clip", "shapes-clipag")  # vanilla vs robust: the compare view
AUTO_PRESET = "auto"  # the preset that matches the renderer (strokes -> strokes, pyramid -> pyramid, else the default)
BUILTIN_CONTENT = ("shapes:0", "shapes:1", "shapes:2", "digits:0", "digits:7", "skimage:astronaut", "skimage:chelsea")
STYLE_DEFAULT_SIZE = 64


@dataclass(frozen=True)
class ServeLimits:
    """Per-request caps and the queue of ``clip-t2i serve`` (each a ``serve`` flag)."""

    max_steps: int = 200
    max_size: int = 256
    max_images: int = 4
    max_upload_mb: float = 5.0
    concurrency: int = 1
    max_queue: int = 16

    def validate(self) -> ServeLimits:
        from clip_t2i.utils.checks import check_float, check_int

        check_int(self.max_steps, "--max-steps", cap="steps")
        check_int(self.max_size, "--max-size", minimum=8, cap="image_size")
        check_int(self.max_images, "--max-images", cap="seeds")
        check_float(self.max_upload_mb, "--max-upload-mb", positive=True)
        check_int(self.concurrency, "--concurrency")
        check_int(self.max_queue, "--max-queue")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _over_cap(flag: str, value: int | float, cap: int | float, serve_flag: str, what: str = "") -> UserError:
    return UserError(f"{flag} {value}{what} is above this app's limit of {cap:g}; the server's {serve_flag} sets it")


@dataclass(frozen=True)
class Request:
    """One generation request as the page sends it (strings and numbers, nothing trusted)."""

    prompt: str
    model: str = DEFAULT_MODEL
    pretrained: str | None = None
    renderer: str = "pixels"
    preset: str = AUTO_PRESET
    steps: int | None = None
    seeds: str = "0"
    size: int | None = None
    content: str | None = None  # an uploaded file (style renderer), as Gradio stored it
    content_builtin: str = BUILTIN_CONTENT[0]  # used when no file is uploaded


@dataclass
class Checked:
    """A validated request: the parsed prompt list and seeds, the resolved preset and steps, warnings to show."""

    request: Request
    prompts: list[str]
    seeds: list[int]
    preset: str | None
    steps: int | None
    warnings: list[str] = field(default_factory=list)


def _as_int(value: Any, flag: str) -> int | None:
    """A whole number from a form field (Gradio numbers arrive as float); None / '' stay None."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise UserError(f"{flag} must be an integer, got {value!r}") from None
    return value


def normalise(req: Request) -> Request:
    """Trim strings and turn form numbers into ints (0 or empty size / steps mean: the default)."""
    size = _as_int(req.size, "--size")
    steps = _as_int(req.steps, "--steps")
    return replace(
        req,
        prompt=(req.prompt or "").strip(),
        model=(req.model or "").strip() or DEFAULT_MODEL,
        pretrained=(req.pretrained or "").strip() or None,
        renderer=(req.renderer or "").strip() or "pixels",
        preset=(req.preset or "").strip() or AUTO_PRESET,
        seeds=str(req.seeds if req.seeds is not None else "0").strip() or "0",
        size=None if size in (None, 0) else size,
        steps=None if steps in (None, 0) else steps,
    )


def resolve_preset(renderer: str, preset: str) -> str:
    """The preset a request runs: ``auto`` picks the renderer's own (strokes, pyramid) or ``DEFAULT_PRESET``."""
    from clip_t2i.renderers.presets import DEFAULT_PRESET, list_presets

    if preset != AUTO_PRESET:
        return preset
    return renderer if renderer in list_presets() else DEFAULT_PRESET


def check_request(req: Request, limits: ServeLimits, models: ModelCache | None = None) -> Checked:
    """Validate ``req`` with the CLI's checks and the app's caps; :class:`UserError` (one line) on the first fault.

    With ``models``, the model is loaded (cached) and the prompt checked against its vocabulary: a prompt it cannot
    draw is an error, unknown words come back as ``warnings`` (the CLI's warning line).
    """
    from clip_t2i.pipeline import check_inputs, parse_seeds
    from clip_t2i.renderers.base import list_renderers
    from clip_t2i.utils.checks import check_choice, check_int

    req = normalise(req)
    choices = [*list_renderers(), STYLE, GAN]
    check_choice(req.renderer, choices, "renderer")
    if not req.prompt:
        raise UserError("empty prompt: give at least one prompt")
    seeds = parse_seeds(req.seeds)
    if len(seeds) > limits.max_images:
        raise _over_cap("--seeds", len(seeds), limits.max_images, "--max-images", " images")
    steps, preset = req.steps, None
    if req.size is not None:
        check_int(req.size, "--size", minimum=8, cap="image_size")
        if req.size > limits.max_size:
            raise _over_cap("--size", req.size, limits.max_size, "--max-size")
    if req.renderer == GAN:
        from clip_t2i.gan.sample import check_prompts

        prompts = check_prompts([req.prompt])
        steps = None
    elif req.renderer == STYLE:
        from clip_t2i.guidance.prompts import parse_prompt
        from clip_t2i.renderers.style import StyleConfig

        prompts = [req.prompt]
        parse_prompt(req.prompt)
        if steps is not None:
            check_int(steps, "--steps", cap="steps")
        steps = steps if steps is not None else StyleConfig().steps
        if req.size is not None:
            replace(StyleConfig(), size=req.size).validate()
        check_content(req, limits)
    else:
        from clip_t2i.renderers.base import renderer_class
        from clip_t2i.renderers.presets import get_preset

        prompts = check_inputs([req.prompt], seeds, steps, None, False, None, req.size)
        preset = resolve_preset(req.renderer, req.preset)
        resolved = get_preset(preset)
        renderer_class(req.renderer)
        steps = steps if steps is not None else resolved.guidance.steps
    if steps is not None and steps > limits.max_steps:
        what = "" if req.steps is not None else f" (the {'style' if preset is None else preset} default)"
        raise _over_cap("--steps", steps, limits.max_steps, "--max-steps", what)
    checked = Checked(req, prompts, seeds, preset, steps)
    if models is not None:
        checked.warnings = vocabulary_warnings(checked, models)
    return checked


def check_content(req: Request, limits: ServeLimits) -> str:
    """The style content: the uploaded file (size-capped, must be an image) or one of :data:`BUILTIN_CONTENT`."""
    if req.content:
        path = Path(req.content)
        if not path.is_file():
            raise UserError("the uploaded content image is gone; upload it again")
        n = path.stat().st_size
        if n > limits.max_upload_bytes:
            raise _over_cap("content image", f"{n / 2**20:.1f}", limits.max_upload_mb, "--max-upload-mb", " MB")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise UserError(f"the uploaded content {path.name!r} is not an image (PNG, JPEG, ...)") from None
        return str(path)
    from clip_t2i.utils.checks import check_choice

    return check_choice(req.content_builtin, BUILTIN_CONTENT, "content image")


STRICT_SUFFIX = " (drop --strict to only warn)"  # how the vocabulary check's strict error ends


def vocabulary_warnings(checked: Checked, models: ModelCache) -> list[str]:
    """The vocabulary check's warning line for the request's prompts, if any (errors raise :class:`UserError`).

    Run in strict mode, where the warning becomes an error with the same text plus :data:`STRICT_SUFFIX`:
    ``warnings.catch_warnings`` is process-wide and would race with requests running in other threads.
    """
    from clip_t2i.backbones.vocabulary import check_prompts

    req = checked.request
    if req.renderer == GAN:
        clip, name = models.gan(req.model).clip, req.model
    else:
        clip, name = models.clip(req.model, req.pretrained), req.model
    try:
        check_prompts(clip, checked.prompts, name, strict=True)
    except UserError as e:
        msg = one_line(str(e))
        if not msg.endswith(STRICT_SUFFIX):
            raise
        return [msg.removesuffix(STRICT_SUFFIX)]
    return []


class ModelCache:
    """Loaded CLIPs and GANs by (name, weights), each with a lock: a model serves one request at a time
    (the guidance loop switches its parameters' ``requires_grad`` while it runs)."""

    def __init__(self, max_models: int = 4) -> None:
        self.max_models = max_models
        self._models: dict[tuple[str, str, str | None], Any] = {}
        self._locks: dict[tuple[str, str, str | None], threading.Lock] = {}
        self._lock = threading.Lock()

    def _get(self, key: tuple[str, str, str | None], load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._models:
                self._models[key] = self._models.pop(key)  # most recently used last
                return self._models[key]
        model = load()
        with self._lock:
            self._models.setdefault(key, model)
            self._locks.setdefault(key, threading.Lock())
            while len(self._models) > self.max_models:
                old = next(iter(self._models))
                if not self._locks[old].locked():
                    self._models.pop(old)
                    self._locks.pop(old)
                else:
                    break
            return self._models[key]

    def lock(self, kind: str, name: str, pretrained: str | None = None) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault((kind, name, pretrained), threading.Lock())

    def clip(self, name: str, pretrained: str | None = None) -> Any:
        from clip_t2i.pipeline import load_guide

        return self._get(("clip", name, pretrained), lambda: load_guide(name, "cpu", pretrained))

    def gan(self, name: str) -> Any:
        from clip_t2i.gan.model import load_gan

        return self._get(("gan", name, None), lambda: load_gan(name))


class JobFolders:
    """Fresh, server-named folders inside the app's output folder; nothing is ever written outside it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self._count = itertools.count(1)

    def new(self) -> Path:
        """A new empty folder ``ROOT/<YYYYmmdd-HHMMSS>-<n>-<random>`` (created; never an existing one)."""
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._count):04d}-{secrets.token_hex(3)}"
            path = self.root / name
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path

    def discard_if_empty(self, path: Path) -> None:
        """Remove a job folder (and its sub-folders) that holds no file: a request that failed or was cancelled
        before writing leaves nothing behind. A folder with any file is kept as it is."""
        path = self.check_inside(path)
        if path == self.root or any(p.is_file() for p in path.rglob("*")):
            return
        for d in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            d.rmdir()
        path.rmdir()

    def check_inside(self, path: str | Path) -> Path:
        """``path`` resolved, if it lies inside the root (else :class:`RuntimeError`: a bug, not a user error)."""
        p = Path(path).resolve()
        if not p.is_relative_to(self.root):
            raise RuntimeError(f"refusing a result outside the output folder: {p}")
        return p


@dataclass
class Item:
    """One result image: its PNG, JSON sidecar, SVG (strokes) and the metadata record."""

    png: Path
    record: dict[str, Any]
    svg: Path | None = None
    label: str = ""

    @property
    def sidecar(self) -> Path:
        return self.png.with_suffix(".json")

    def files(self) -> list[Path]:
        return [self.png, *([self.sidecar] if self.sidecar.is_file() else []), *([self.svg] if self.svg else [])]


Preview = Callable[[str, int, int, Any], None]  # (label, step, total, images [B, 3, H, W])


class Cancelled(Exception):
    """Raised from a preview callback to stop a request whose page has gone away."""


@dataclass
class Stats:
    """Counters the server exposes at ``/healthz``: requests running now, the most ever running at once, and
    how many were accepted, finished, refused (bad input or caps), failed or cancelled (the page went away)."""

    running: int = 0
    max_running: int = 0
    accepted: int = 0
    completed: int = 0
    refused: int = 0
    failed: int = 0
    cancelled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> None:
        with self._lock:
            self.accepted += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)

    def end(self, outcome: str) -> None:
        with self._lock:
            self.running -= 1
            setattr(self, outcome, getattr(self, outcome) + 1)

    def refuse(self) -> None:
        with self._lock:
            self.refused += 1

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def run_request(
    checked: Checked, folders: JobFolders, models: ModelCache, preview: Preview | None = None
) -> list[Item]:
    """Run a validated request into a new job folder; returns its items (PNG + sidecar, SVG for strokes)."""
    req = checked.request
    out = folders.new()
    try:
        if req.renderer == GAN:
            items = _run_gan(checked, out, models)
        elif req.renderer == STYLE:
            items = _run_style(checked, out, models, preview)
        else:
            items = _run_generate(checked, out, models, req.model, preview, label=req.model)
    except BaseException:
        folders.discard_if_empty(out)
        raise
    for it in items:
        for f in it.files():
            folders.check_inside(f)
    return items


def _run_generate(
    checked: Checked, out: Path, models: ModelCache, model: str, preview: Preview | None, label: str
) -> list[Item]:
    from clip_t2i.pipeline import generate

    req = checked.request
    pretrained = req.pretrained if model == req.model else None
    clip = models.clip(model, pretrained)
    on_step = None if preview is None else (lambda step, total, images: preview(label, step, total, images))
    with models.lock("clip", model, pretrained):  # the vocabulary warning also goes to the server's log
        res = generate(
            checked.prompts,
            model=clip,
            seeds=checked.seeds,
            steps=checked.steps,
            preset=checked.preset or resolve_preset(req.renderer, AUTO_PRESET),
            renderer=req.renderer,
            size=req.size,
            out=out,
            preview=on_step,
        )
    items = []
    for rec in res.records:
        rec["model"] = model  # the name the user chose (a loaded model's own name may differ)
        svg = out / rec["svg"] if "svg" in rec else None
        items.append(Item(out / rec["file"], rec, svg, label=f"{model} · seed {rec['seed']}"))
    _rewrite_records(items)
    return items


def _rewrite_records(items: list[Item]) -> None:
    """Re-save PNG text chunks and sidecars after a record changed (same image, same file names)."""
    from clip_t2i.renderers.outputs import read_image_record, save_png

    for it in items:
        _, image = read_image_record(it.png)
        save_png(it.png, image, it.record)


def _run_style(checked: Checked, out: Path, models: ModelCache, preview: Preview | None) -> list[Item]:
    from clip_t2i.renderers.style import stylize

    req = checked.request
    content = req.content if req.content else req.content_builtin
    clip = models.clip(req.model, req.pretrained)
    items = []
    for i, seed in enumerate(checked.seeds):
        with models.lock("clip", req.model, req.pretrained):
            res = stylize(
                content,
                req.prompt,
                model=clip,
                seed=seed,
                steps=checked.steps,
                size=req.size or STYLE_DEFAULT_SIZE,
                out=out,
                name=f"{i:03d}-style-seed{seed:04d}",
            )
        res.record["model"] = req.model
        res.record["content"] = Path(content).name if req.content else content  # not the server's temp path
        item = Item(out / res.record["file"], res.record, label=f"{req.model} · style · seed {seed}")
        _rewrite_records([item])
        items.append(item)
        if preview is not None:
            preview(req.model, i + 1, len(checked.seeds), res.image)
    return items


def _run_gan(checked: Checked, out: Path, models: ModelCache) -> list[Item]:
    from clip_t2i.gan.sample import sample

    req = checked.request
    gan = models.gan(req.model)
    items = []
    for seed in checked.seeds:  # seeds may be any list; sample() takes a first seed and a count
        with models.lock("gan", req.model):
            res = sample(gan, checked.prompts, n=1, seed=seed, out=out)
        for path, rec in zip(res.paths, res.records(), strict=True):
            from clip_t2i.renderers.outputs import read_image_record

            record, _ = read_image_record(path)
            items.append(Item(Path(path), record or rec, label=f"{req.model} · GAN · seed {rec['seed']}"))
    return items


def run_compare(
    checked: Checked, folders: JobFolders, models: ModelCache, preview: Preview | None = None
) -> dict[str, list[Item]]:
    """The same prompt, seeds and preset drawn by the vanilla and the robust CLIP (:data:`COMPARE_MODELS`), each
    into its own sub-folder of one new job folder."""
    out = folders.new()
    result = {}
    try:
        for model in COMPARE_MODELS:
            sub = out / model
            sub.mkdir()
            result[model] = _run_generate(checked, sub, models, model, preview, label=model)
            for it in result[model]:
                for f in it.files():
                    folders.check_inside(f)
    except BaseException:
        folders.discard_if_empty(out)
        raise
    return result


def describe_limits(limits: ServeLimits) -> str:
    """One line for the page: the caps a request must fit in."""
    return (
        f"Limits: ≤ {limits.max_steps} steps, side ≤ {limits.max_size} px, ≤ {limits.max_images} images per request, "
        f"uploads ≤ {limits.max_upload_mb:g} MB; {limits.concurrency} request(s) at a time, "
        f"{limits.max_queue} waiting at most."
    )
