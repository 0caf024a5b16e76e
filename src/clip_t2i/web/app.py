"""The Gradio page of ``clip-t2i serve`` and the server around it (imports Gradio: load only when serving).

Two tabs. *Generate*: prompt (weights and negatives pixray-style), model, renderer (every registered renderer, the
style transfer, the GAN), preset, steps, seeds, size; the drawing streams in as it forms; results collect in a
gallery with their metadata and PNG / JSON / SVG downloads. *Compare*: the vanilla and the robust CLIP draw the
same prompt from the same seed side by side.

All work runs through :mod:`clip_t2i.web.jobs` (the CLI's checks, the app's caps, job folders inside the output
folder). Gradio's queue holds at most ``max_queue`` waiting requests and runs ``concurrency`` at a time (one
``concurrency_id`` for every generating event); a semaphore around the work enforces the same limit even when a
client leaves mid-run. ``GET /healthz`` answers at once with the counters (:class:`~clip_t2i.web.jobs.Stats`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from clip_t2i.errors import UserError, one_line
from clip_t2i.web.jobs import (
    AUTO_PRESET,
    BUILTIN_CONTENT,
    COMPARE_MODELS,
    DEFAULT_GAN,
    DEFAULT_MODEL,
    GAN,
    STYLE,
    Cancelled,
    Item,
    JobFolders,
    ModelCache,
    Request,
    ServeLimits,
    Stats,
    check_request,
    describe_limits,
    run_compare,
    run_request,
)

CSS = """
.pixelated img { image-rendering: pixelated; }
#live img, #c-left img, #c-right img { width: 100%; height: 100%; object-fit: contain; }
#status, #c-status { min-height: 2.5em; }
"""
PREVIEW_EVERY_S = 0.2  # at most this often a new preview frame is sent to the page
CONCURRENCY_ID = "generation"
CACHE_DIR = ".gradio"  # Gradio's copies of served and uploaded files, inside the output folder


@dataclass
class AppState:
    """What the server shares between requests."""

    out: Path
    limits: ServeLimits
    folders: JobFolders = field(init=False)
    models: ModelCache = field(default_factory=ModelCache)
    stats: Stats = field(default_factory=Stats)
    slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.folders = JobFolders(self.out)
        self.slots = threading.BoundedSemaphore(self.limits.concurrency)


def _clip_choices() -> list[str]:
    from clip_t2i import zoo

    return [n for n in zoo.list_zoo() if "judge" not in n and n != DEFAULT_GAN] + [DEFAULT_GAN]


def _renderer_choices() -> list[str]:
    from clip_t2i.renderers import list_renderers

    return [*list_renderers(), STYLE, GAN]


def _preset_choices() -> list[str]:
    from clip_t2i.renderers import list_presets

    return [AUTO_PRESET, *list_presets()]


def _to_uint8(images: Any) -> Any:
    """The first image of a batch ``[B, 3, H, W]`` (or one ``[3, H, W]``) as an ``[H, W, 3]`` uint8 array (a copy)."""
    from clip_t2i.renderers.outputs import to_uint8

    return to_uint8(images[0] if images.ndim == 4 else images)


def _error(e: BaseException) -> gr.Error:
    """A one-line page error: a user error's message, or the kind of an unexpected failure."""
    msg = str(e) if isinstance(e, UserError) else f"generation failed: {type(e).__name__}: {e}"
    return gr.Error(one_line(msg), print_exception=not isinstance(e, UserError))


def _stream(
    state: AppState, work: Callable[[Callable[[str, int, int, Any], None]], Any]
) -> Iterator[tuple[str, Any, int, int] | tuple[str, Any]]:
    """Run ``work(preview)`` in a worker thread holding a slot; yield ``("frame", label, step, total, image)`` at
    most every :data:`PREVIEW_EVERY_S`, then ``("done", result)``; re-raise the worker's exception."""
    frames: queue.Queue = queue.Queue()
    box: dict[str, Any] = {}
    last = [0.0]
    cancel = threading.Event()

    def preview(label: str, step: int, total: int, images: Any) -> None:
        if cancel.is_set():
            raise Cancelled
        now = time.monotonic()
        if step < total and now - last[0] < PREVIEW_EVERY_S:
            return
        last[0] = now
        frames.put(("frame", label, step, total, _to_uint8(images)))

    def run() -> None:
        with state.slots:
            state.stats.start()
            try:
                box["result"] = work(preview)
                state.stats.end("completed")
            except Cancelled:
                state.stats.end("cancelled")
            except BaseException as e:  # noqa: BLE001 - handed to the page as one line
                box["error"] = e
                state.stats.end("refused" if isinstance(e, UserError) else "failed")
            finally:
                frames.put(None)

    threading.Thread(target=run, name="clip-t2i-job", daemon=True).start()
    try:
        while True:
            msg = frames.get()
            if msg is None:
                break
            while True:  # skip to the newest frame
                try:
                    nxt = frames.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    frames.put(None)
                    break
                msg = nxt
            yield msg
    finally:  # the page went away (Gradio closed this generator): stop the work at its next step
        cancel.set()
    if "error" in box:
        raise box["error"]
    yield ("done", box["result"])


def _gallery(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(h["png"], h["label"]) for h in history]


def _entry(item: Item) -> dict[str, Any]:
    return {
        "png": str(item.png),
        "json": str(item.sidecar) if item.sidecar.is_file() else None,
        "svg": str(item.svg) if item.svg else None,
        "label": item.label,
        "record": item.record,
    }


def _downloads(entry: dict[str, Any] | None) -> tuple[Any, Any, Any]:
    if entry is None:
        return (gr.DownloadButton(value=None, visible=False),) * 3
    return (
        gr.DownloadButton(value=entry["png"], visible=True),
        gr.DownloadButton(value=entry["json"], visible=entry["json"] is not None),
        gr.DownloadButton(value=entry["svg"], visible=entry["svg"] is not None),
    )


def _status(text: str, warnings: list[str]) -> str:
    lines = [f"⚠️ warning: {w}" for w in warnings] + [text]
    return "\n\n".join(lines)


def build_blocks(state: AppState) -> gr.Blocks:
    """The page (no queue set up, no server): see the module docstring."""
    limits = state.limits
    with gr.Blocks(title="clip-t2i") as demo:
        gr.Markdown(
            "# clip-t2i\nText to image with CLIP alone (robust CLIP / CLIPAG) or a small CLIP-aided GAN. "
            "Prompts take weights and negatives: `a red circle:1 | blurry:-0.5`.\n\n" + describe_limits(limits)
        )
        history = gr.State([])
        with gr.Tab("Generate", id="generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    prompt = gr.Textbox(label="Prompt", value="a red circle on the left", elem_id="prompt", max_lines=3)
                    with gr.Row():
                        model = gr.Dropdown(
                            _clip_choices(),
                            value=DEFAULT_MODEL,
                            allow_custom_value=True,
                            label="Model",
                            info="zoo name, a local .safetensors, or an open_clip name",
                            elem_id="model",
                        )
                        pretrained = gr.Textbox(
                            label="Pretrained (open_clip tag or weights file)", elem_id="pretrained"
                        )
                    with gr.Row():
                        renderer = gr.Dropdown(
                            _renderer_choices(), value="pixels", label="Renderer", elem_id="renderer"
                        )
                        preset = gr.Dropdown(_preset_choices(), value=AUTO_PRESET, label="Preset", elem_id="preset")
                    with gr.Row():
                        steps = gr.Number(label="Steps (0: the preset's)", value=0, precision=0, elem_id="steps")
                        seeds = gr.Textbox(label="Seeds (0-3, 1,5 or 7)", value="0", elem_id="seeds")
                        size = gr.Number(label="Size (0: the model's)", value=0, precision=0, elem_id="size")
                    with gr.Row(visible=False) as content_row:
                        upload = gr.Image(
                            label="Content image (upload)",
                            type="filepath",
                            sources=["upload"],
                            elem_id="content-upload",
                        )
                        builtin = gr.Dropdown(
                            list(BUILTIN_CONTENT), value=BUILTIN_CONTENT[0], label="or a built-in", elem_id="content"
                        )
                    run = gr.Button("Generate", variant="primary", elem_id="run")
                    status = gr.Markdown(elem_id="status")
                with gr.Column(scale=1):
                    live = gr.Image(
                        label="Current image",
                        interactive=False,
                        format="png",
                        height=320,
                        elem_id="live",
                        elem_classes=["pixelated"],
                    )
                    with gr.Row():
                        png_btn = gr.DownloadButton("Download PNG", visible=False, elem_id="dl-png", size="sm")
                        json_btn = gr.DownloadButton("Download JSON", visible=False, elem_id="dl-json", size="sm")
                        svg_btn = gr.DownloadButton("Download SVG", visible=False, elem_id="dl-svg", size="sm")
            gallery = gr.Gallery(
                label="Results (newest first; click one for its metadata and files)",
                columns=8,
                height=240,
                fit_columns=False,
                object_fit="contain",
                format="png",
                elem_id="gallery",
                elem_classes=["pixelated"],
            )
            meta = gr.JSON(label="Metadata (PNG text chunks and sidecar)", elem_id="meta", max_height=320)

        with gr.Tab("Compare: vanilla vs robust", id="compare"):
            gr.Markdown(
                f"The same prompt, seed, preset and start drawn by the vanilla **{COMPARE_MODELS[0]}** and the "
                f"robust **{COMPARE_MODELS[1]}**: with the `pag` preset the image starts dark grey, so what appears "
                "is what each CLIP's gradients draw."
            )
            with gr.Row():
                c_prompt = gr.Textbox(label="Prompt", value="a red circle on the left", elem_id="c-prompt", scale=3)
                c_seed = gr.Number(label="Seed", value=0, precision=0, elem_id="c-seed", minimum=0)
                c_preset = gr.Dropdown(_preset_choices(), value="pag", label="Preset", elem_id="c-preset")
                c_steps = gr.Number(label="Steps (0: the preset's)", value=0, precision=0, elem_id="c-steps")
            c_run = gr.Button("Compare", variant="primary", elem_id="c-run")
            c_status = gr.Markdown(elem_id="c-status")
            with gr.Row():
                c_left = gr.Image(
                    label=f"vanilla: {COMPARE_MODELS[0]}",
                    interactive=False,
                    format="png",
                    height=300,
                    elem_id="c-left",
                    elem_classes=["pixelated"],
                )
                c_right = gr.Image(
                    label=f"robust: {COMPARE_MODELS[1]}",
                    interactive=False,
                    format="png",
                    height=300,
                    elem_id="c-right",
                    elem_classes=["pixelated"],
                )
            c_meta = gr.JSON(label="Metadata of both", elem_id="c-meta", max_height=320)

        def on_renderer(r: str, current: str) -> tuple[Any, Any, Any]:
            if r == GAN:
                m = DEFAULT_GAN
            elif current == DEFAULT_GAN:
                m = DEFAULT_MODEL
            else:
                m = current
            return gr.Dropdown(value=m), gr.Row(visible=r == STYLE), gr.Dropdown(interactive=r not in (GAN, STYLE))

        renderer.change(on_renderer, [renderer, model], [model, content_row, preset], queue=False)

        def on_generate(
            p: str,
            m: str,
            pre: str,
            r: str,
            ps: str,
            st: Any,
            sd: str,
            sz: Any,
            up: str | None,
            bi: str,
            hist: list[dict[str, Any]],
        ) -> Iterator[tuple[Any, ...]]:
            skip = gr.skip()
            req = Request(p, m, pre, r, ps, st, sd, sz, up or None, bi)
            try:
                checked = check_request(req, limits, state.models)
            except UserError as e:
                state.stats.refuse()
                raise _error(e) from None
            warns = checked.warnings
            n = len(checked.seeds)
            yield (skip, _status(f"running {n} image{'s' * (n != 1)}…", warns), skip, skip, skip, skip, skip, skip)
            try:
                for msg in _stream(state, lambda pv: run_request(checked, state.folders, state.models, pv)):
                    if msg[0] == "frame":
                        _, label, step, total, image = msg
                        what = f"step {step}/{total}" if r not in (GAN, STYLE) else f"image {step}/{total}"
                        yield (image, _status(f"{label}: {what}", warns), skip, skip, skip, skip, skip, skip)
                    else:
                        items: list[Item] = msg[1]
            except BaseException as e:
                raise _error(e) from None
            entries = [_entry(it) for it in items]
            hist = entries[::-1] + list(hist)
            last = entries[-1]
            sims = ", ".join(
                f"seed {e['record'].get('seed')}: sim {e['record']['similarity']:.3f}"
                for e in entries
                if "similarity" in e["record"]
            )
            done = f"done: {len(entries)} image{'s' * (len(entries) != 1)} in {Path(last['png']).parent.name}"
            yield (
                last["png"],
                _status(done + (f" ({sims})" if sims else ""), warns),
                _gallery(hist),
                last["record"],
                *_downloads(last),
                hist,
            )

        run.click(
            on_generate,
            [prompt, model, pretrained, renderer, preset, steps, seeds, size, upload, builtin, history],
            [live, status, gallery, meta, png_btn, json_btn, svg_btn, history],
            api_name="generate",
            concurrency_id=CONCURRENCY_ID,
            concurrency_limit=limits.concurrency,
            show_progress="minimal",
        )
        prompt.submit(
            on_generate,
            [prompt, model, pretrained, renderer, preset, steps, seeds, size, upload, builtin, history],
            [live, status, gallery, meta, png_btn, json_btn, svg_btn, history],
            api_visibility="private",
            concurrency_id=CONCURRENCY_ID,
            concurrency_limit=limits.concurrency,
            show_progress="minimal",
        )

        def on_select(hist: list[dict[str, Any]], evt: gr.SelectData) -> tuple[Any, ...]:
            entry = hist[evt.index] if 0 <= evt.index < len(hist) else None
            return (entry["record"] if entry else None, *_downloads(entry))

        gallery.select(on_select, [history], [meta, png_btn, json_btn, svg_btn], queue=False)

        def on_compare(p: str, seed: Any, ps: str, st: Any, hist: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
            skip = gr.skip()
            req = Request(p, COMPARE_MODELS[1], None, "pixels", ps, st, str(seed if seed is not None else 0))
            try:
                checked = check_request(req, limits, state.models)
                for m in COMPARE_MODELS[:1]:  # the robust one was checked above; the vanilla one may warn too
                    from dataclasses import replace

                    checked.warnings += check_request(replace(req, model=m), limits, state.models).warnings
            except UserError as e:
                state.stats.refuse()
                raise _error(e) from None
            warns = list(dict.fromkeys(checked.warnings))
            yield (skip, skip, _status("running both models…", warns), skip, skip, skip)
            frames = {m: skip for m in COMPARE_MODELS}
            try:
                for msg in _stream(state, lambda pv: run_compare(checked, state.folders, state.models, pv)):
                    if msg[0] == "frame":
                        _, label, step, total, image = msg
                        frames = {m: (image if m == label else skip) for m in COMPARE_MODELS}
                        yield (*frames.values(), _status(f"{label}: step {step}/{total}", warns), skip, skip, skip)
                    else:
                        result: dict[str, list[Item]] = msg[1]
            except BaseException as e:
                raise _error(e) from None
            entries = {m: _entry(result[m][0]) for m in COMPARE_MODELS}
            sims = "; ".join(f"{m}: sim {e['record']['similarity']:.3f}" for m, e in entries.items())
            hist = list(entries.values())[::-1] + list(hist)
            yield (
                entries[COMPARE_MODELS[0]]["png"],
                entries[COMPARE_MODELS[1]]["png"],
                _status(f"done ({sims})", warns),
                {m: e["record"] for m, e in entries.items()},
                _gallery(hist),
                hist,
            )

        c_run.click(
            on_compare,
            [c_prompt, c_seed, c_preset, c_steps, history],
            [c_left, c_right, c_status, c_meta, gallery, history],
            api_name="compare",
            concurrency_id=CONCURRENCY_ID,
            concurrency_limit=limits.concurrency,
            show_progress="minimal",
        )
    return demo


def build_server(
    out: str | Path, limits: ServeLimits | None = None, cache_dir: str | Path | None = None
) -> tuple[Any, AppState]:
    """The FastAPI app (Gradio page at ``/``, ``GET /healthz``) and its shared state; Gradio's file cache goes to
    ``cache_dir`` (default ``OUT/.gradio``; sets ``$GRADIO_TEMP_DIR`` for the process)."""
    import os

    from fastapi import FastAPI

    limits = (limits or ServeLimits()).validate()
    state = AppState(Path(out), limits)
    # Gradio copies every served or uploaded file into its cache: by default inside the output folder too
    os.environ["GRADIO_TEMP_DIR"] = str(Path(cache_dir) if cache_dir else state.folders.root / CACHE_DIR)
    demo = build_blocks(state)
    demo.queue(max_size=limits.max_queue, default_concurrency_limit=limits.concurrency)
    api = FastAPI(title="clip-t2i")

    @api.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, **state.stats.as_dict()}

    app = gr.mount_gradio_app(
        api,
        demo,
        path="",
        allowed_paths=[str(state.folders.root)],
        max_file_size=limits.max_upload_bytes,
        footer_links=[],
        css=CSS,
        ssr_mode=False,
    )
    return app, state


@contextlib.contextmanager
def background_server(
    out: str | Path, limits: ServeLimits | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[tuple[str, AppState]]:
    """Run the app in a thread of this process (tests, benchmarks): yields ``(base URL, state)``, stops on exit.
    ``port`` 0 picks a free one."""
    import socket

    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    app, state = build_server(out, limits)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="clip-t2i-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the web app did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}/", state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
