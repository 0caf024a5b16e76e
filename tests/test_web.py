"""The web UI without a browser: request checks (the CLI's messages, the app's caps), job folders, running every
kind of request, the streaming hook, start-up lightness, and (slow) the no-loss / caps properties under load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from clip_t2i.errors import UserError
from clip_t2i.web.jobs import (
    BUILTIN_CONTENT,
    GAN,
    STYLE,
    JobFolders,
    ModelCache,
    Request,
    ServeLimits,
    check_request,
    run_compare,
    run_request,
)

LIMITS = ServeLimits(
    max_steps=80,  # the default preset (draw) takes 60
    max_size=128,
    max_images=2,
    max_upload_mb=0.01,
)


@pytest.fixture(scope="module")
def models() -> ModelCache:
    return ModelCache()


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(UserError) as e:
        fn(*args, **kwargs)
    return str(e.value)


@pytest.mark.parametrize(
    ("field", "value", "cli_call"),
    [
        ("seeds", "3-1", ("parse_seeds", "3-1")),
        ("seeds", "a-b", ("parse_seeds", "a-b")),
        ("seeds", "-1", ("parse_seeds", "-1")),
        ("prompt", "a red circle:abc", ("parse_prompt", "a red circle:abc")),
    ],
)
def test_bad_fields_get_the_cli_message(field: str, value: str, cli_call: tuple[str, str]) -> None:
    from clip_t2i.guidance.prompts import parse_prompt
    from clip_t2i.pipeline import parse_seeds

    fn = {"parse_seeds": parse_seeds, "parse_prompt": parse_prompt}[cli_call[0]]
    expected = _message(fn, cli_call[1])
    req = replace(Request("a red circle"), **{field: value})
    assert _message(check_request, req, LIMITS) == expected


def test_steps_and_size_use_the_cli_checks_first() -> None:
    from clip_t2i.utils.checks import check_int

    assert _message(check_request, Request("a red circle", steps=-3), LIMITS) == _message(
        check_int, -3, "--steps", cap="steps"
    )
    assert _message(check_request, Request("a red circle", size=4), LIMITS) == _message(
        check_int, 4, "--size", minimum=8, cap="image_size"
    )
    assert "--steps must be an integer" in _message(check_request, Request("a red circle", steps="ten"), LIMITS)


@pytest.mark.parametrize(
    ("req", "needle"),
    [
        (Request("a red circle", steps=81), "--steps 81 is above this app's limit of 80; the server's --max-steps"),
        (Request("a red circle", preset="clipag"), "--steps 100 (the clipag default) is above this app's limit"),
        (Request("a red circle", size=256), "--size 256 is above this app's limit of 128"),
        (Request("a red circle", seeds="0-2"), "--seeds 3 images is above this app's limit of 2"),
        (Request("a red circle", renderer=STYLE, steps=90), "--steps 90 is above"),
        (Request("a red circle", renderer=GAN, seeds="0,1,2"), "--max-images"),
    ],
)
def test_app_caps_name_the_serve_flag(req: Request, needle: str) -> None:
    assert needle in _message(check_request, req, LIMITS)


@pytest.mark.parametrize(
    ("req", "needle"),
    [
        (Request("   "), "empty prompt"),
        (Request("a red circle", renderer="nosuch"), "renderer must be one of"),
        (Request("a red circle", preset="nosuch"), "preset"),
        (Request("a red circle", renderer=STYLE, content_builtin="/etc/passwd"), "content image must be one of"),
        (Request("a red circle", renderer=STYLE, content="/nonexistent/upload.png"), "upload it again"),
        (Request("a red circle", renderer=STYLE, size=20), "multiple of 8"),
        (Request("a red circle", model="nosuch-model"), "unknown model"),
        (Request("a cat wearing sunglasses"), "knows no content word"),
        (Request("a cat", renderer=GAN, model="shapes-scad"), "knows no content word"),
    ],
)
def test_bad_requests_are_one_line_errors(req: Request, needle: str, models: ModelCache) -> None:
    msg = _message(check_request, req, LIMITS, models)
    assert needle in msg and "\n" not in msg


def test_uploads_are_capped_and_must_be_images(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 20_000)
    assert "MB is above this app's limit of 0.01" in _message(
        check_request, Request("purple", renderer=STYLE, content=str(big)), LIMITS
    )
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    assert "is not an image" in _message(check_request, Request("purple", renderer=STYLE, content=str(fake)), LIMITS)


def test_vocabulary_warnings_are_returned(models: ModelCache) -> None:
    from clip_t2i.backbones.vocabulary import check_prompts

    checked = check_request(Request("a purple star at the bottom", model="shapes-clip"), LIMITS, models)
    with pytest.warns(UserWarning) as cli_warning:
        check_prompts(models.clip("shapes-clip"), ["a purple star at the bottom"], "shapes-clip")
    assert checked.warnings == [str(cli_warning[0].message)] and "does not know: star" in checked.warnings[0]
    assert check_request(Request("a red circle", model="shapes-clip"), LIMITS, models).warnings == []


def test_limits_are_validated() -> None:
    assert "--max-steps must be >= 1" in _message(ServeLimits(max_steps=0).validate)
    assert "--max-upload-mb must be > 0" in _message(ServeLimits(max_upload_mb=0).validate)
    assert "limit" in _message(ServeLimits(max_size=10**6).validate)


def test_job_folders_are_new_and_results_must_lie_inside(tmp_path: Path) -> None:
    folders = JobFolders(tmp_path / "out")
    a, b = folders.new(), folders.new()
    assert a != b and a.parent == b.parent == (tmp_path / "out").resolve() and not any(a.iterdir())
    assert folders.check_inside(a / "x.png") == (a / "x.png").resolve()
    with pytest.raises(RuntimeError):
        folders.check_inside(tmp_path / "elsewhere.png")
    with pytest.raises(RuntimeError):
        folders.check_inside(a / ".." / ".." / "escape.png")


def _all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_typed_text_never_becomes_a_path(tmp_path: Path, models: ModelCache) -> None:
    out = tmp_path / "out"
    (tmp_path / "user.txt").write_text("mine")
    req = Request("../../user.txt a red circle /etc/passwd", model="shapes-clip", renderer="strokes", steps=2)
    checked = check_request(req, LIMITS, models)
    assert "does not know: user, txt, etc, passwd" in checked.warnings[0]
    with pytest.warns(UserWarning, match="does not know"):  # generate warns too (the server's log)
        items = run_request(checked, JobFolders(out), models)
    files = _all_files(tmp_path)
    assert (tmp_path / "user.txt").read_text() == "mine"
    assert all(f.resolve().is_relative_to(out.resolve()) for f in files - {tmp_path / "user.txt"})
    assert {f.suffix for f in _all_files(out)} == {".png", ".json", ".svg"}
    assert items[0].png.parent.parent == out.resolve() and "/" not in items[0].png.name


def test_generate_strokes_records_and_files(tmp_path: Path, models: ModelCache) -> None:
    from clip_t2i.renderers.outputs import read_image_record

    seen: list[tuple[str, int, int]] = []
    req = Request("a red circle on the left", model="shapes-clip", renderer="strokes", steps=3, seeds="4,7")
    items = run_request(
        check_request(req, LIMITS, models),
        JobFolders(tmp_path),
        models,
        preview=lambda label, step, total, images: seen.append((label, step, total)),
    )
    assert [it.record["seed"] for it in items] == [4, 7]
    assert seen == [("shapes-clip", s, 3) for s in (1, 2, 3)]
    for it in items:
        record, image = read_image_record(it.png)
        assert record["prompt"] == "a red circle on the left" and record["model"] == "shapes-clip"
        assert record["renderer"] == "strokes" and record["steps"] == 3 and image.shape[-1] == 64
        assert json.loads(it.sidecar.read_text()) == record
        assert it.svg is not None and it.svg.read_text().lstrip().startswith("<svg")


def test_style_and_gan_requests(tmp_path: Path, models: ModelCache) -> None:
    from PIL import Image

    from clip_t2i.renderers.outputs import read_image_record

    upload = tmp_path / "upload" / "content.png"
    upload.parent.mkdir()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(upload)
    limits = replace(LIMITS, max_upload_mb=1)
    folders = JobFolders(tmp_path / "out")
    style = Request("purple", model="shapes-clip", renderer=STYLE, steps=2, content=str(upload), size=32)
    [item] = run_request(check_request(style, limits, models), folders, models)
    record, image = read_image_record(item.png)
    assert record["content"] == "content.png" and record["model"] == "shapes-clip" and image.shape[-1] == 32
    builtin = replace(style, content=None, content_builtin=BUILTIN_CONTENT[0], seeds="1")
    [item] = run_request(check_request(builtin, limits, models), folders, models)
    assert read_image_record(item.png)[0]["content"] == BUILTIN_CONTENT[0]
    gan = Request("a red circle on the left", model="shapes-scad", renderer=GAN, seeds="3,5")
    items = run_request(check_request(gan, limits, models), folders, models)
    assert [read_image_record(it.png)[0]["seed"] for it in items] == [3, 5]
    assert all(read_image_record(it.png)[0]["renderer"] == "gan" for it in items)


def test_compare_runs_vanilla_and_robust_on_the_same_seed(tmp_path: Path, models: ModelCache) -> None:
    req = Request("a blue square at the top", preset="pag", steps=2, seeds="3")
    result = run_compare(check_request(req, LIMITS, models), JobFolders(tmp_path), models)
    assert list(result) == ["shapes-clip", "shapes-clipag"]
    recs = [result[m][0].record for m in result]
    assert [r["model"] for r in recs] == ["shapes-clip", "shapes-clipag"]
    same = {(r["prompt"], r["seed"], r["preset"], r["steps"]) for r in recs}
    assert same == {("a blue square at the top", 3, "pag", 2)}
    assert result["shapes-clip"][0].png.parent.name == "shapes-clip"


def test_generate_preview_sees_every_step() -> None:
    from clip_t2i.pipeline import generate

    frames: list[tuple[int, int, tuple[int, ...]]] = []
    generate(
        "a red circle",
        model="shapes-clip",
        preset="strokes",
        steps=3,
        seeds="0,1",
        preview=lambda s, t, im: frames.append((s, t, tuple(im.shape))),
    )
    assert frames == [(s, 3, (2, 3, 64, 64)) for s in (1, 2, 3)]


def test_cli_start_up_does_not_import_gradio() -> None:
    code = (
        "import sys, clip_t2i, clip_t2i.cli, clip_t2i.web.commands, clip_t2i.web.jobs; "
        "print('gradio' in sys.modules, 'torch' in sys.modules)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert res.stdout.split() == ["False", "False"]


def test_serve_without_gradio_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from clip_t2i.web import commands

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert _message(commands.require_gradio) == "the web UI needs Gradio: pip install 'clip-t2i[web]'"


@pytest.mark.slow
def test_load_no_request_lost_and_caps_hold(tmp_path: Path) -> None:
    """A small load: 15 concurrent requests at one-at-a-time with 4 waiting at most."""
    pytest.importorskip("gradio")
    from clip_t2i.web.app import background_server
    from clip_t2i.web.load import load_test

    limits = ServeLimits(max_steps=10, max_size=96, max_images=2, concurrency=1, max_queue=4)
    out = tmp_path / "out"
    with background_server(out, limits) as (url, _):
        report = load_test(url, out, limits, n=15, steps=2)
    assert report["completed"] + report["rejected"] == 15 and report["lost"] == 0
    assert report["rejected_without_message"] == 0 and report["invalid_completed"] == []
    assert set(report["rejected_by_reason"]) <= {"queue full", "over a cap", "bad input"}
    assert set(report["valid_not_completed"]) <= {"queue full"}
    assert report["rejected_by_reason"].get("queue full", 0) > 0  # 15 at once cannot all wait in a queue of 4
    assert report["outputs"]["over_caps"] == [] and report["outputs"]["images"] == report["completed"]
    assert report["server"]["max_running"] == 1 and report["server"]["running"] == 0
    assert report["probe_healthz_ms"]["errors"] == 0 and report["probe_healthz_ms"]["n"] > 10
    assert report["probe_healthz_ms"]["p95"] < 1000


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    from cli_runner import run_cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_cli("serve", "--port", str(port), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and res.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert "choose another --port" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_cancelled_request_stops_and_leaves_no_folder(tmp_path: Path, models: ModelCache) -> None:
    from clip_t2i.web.jobs import Cancelled

    def stop(label: str, step: int, total: int, images) -> None:
        if step == 2:
            raise Cancelled

    req = Request("a red circle", model="shapes-clip", renderer="strokes", steps=10)
    with pytest.raises(Cancelled):
        run_request(check_request(req, LIMITS, models), JobFolders(tmp_path / "out"), models, preview=stop)
    assert list((tmp_path / "out").iterdir()) == []


def test_closing_the_page_stream_cancels_the_work(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    import time

    import torch

    from clip_t2i.web.app import AppState, _stream

    state = AppState(tmp_path, ServeLimits())
    steps: list[int] = []

    def work(preview) -> None:
        for i in range(500):
            steps.append(i)
            preview("m", i + 1, 500, torch.zeros(1, 3, 8, 8))
            time.sleep(0.01)

    stream = _stream(state, work)
    assert next(stream)[0] == "frame"
    stream.close()
    deadline = time.monotonic() + 10
    while state.stats.as_dict()["cancelled"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = state.stats.as_dict()
    assert stats["cancelled"] == 1 and stats["running"] == 0 and len(steps) < 500
    assert state.slots.acquire(blocking=False)  # the slot was given back


def test_renderers_are_listed_dynamically() -> None:
    pytest.importorskip("gradio")
    from clip_t2i.renderers import list_renderers
    from clip_t2i.web.app import _renderer_choices

    assert _renderer_choices() == [*list_renderers(), STYLE, GAN]


def test_a_local_model_file_is_read_not_written(tmp_path: Path, models: ModelCache) -> None:
    from clip_t2i import zoo

    path = zoo.zoo_dir() / "shapes-clip.safetensors"
    before = path.stat().st_mtime_ns
    req = Request("a red circle", model=str(path), renderer="strokes", steps=2)
    [item] = run_request(check_request(req, LIMITS, models), JobFolders(tmp_path), models)
    assert item.record["model"] == str(path) and path.stat().st_mtime_ns == before


def test_the_vqgan_renderer_runs_from_the_app_when_bundled(tmp_path: Path, models: ModelCache) -> None:
    from clip_t2i import zoo
    from clip_t2i.renderers import list_renderers

    if "vqgan" not in list_renderers() or "shapes-vqgan" not in zoo.list_zoo():
        pytest.skip("the vqgan renderer or the zoo's shapes-vqgan is not there")
    req = Request("a red circle on the left", renderer="vqgan", steps=2)
    checked = check_request(req, LIMITS, models)
    assert checked.preset == "vqgan"  # `auto` picks the renderer's own preset
    [item] = run_request(checked, JobFolders(tmp_path), models)
    assert item.record["renderer"] == "vqgan" and item.record["steps"] == 2 and item.png.is_file()
