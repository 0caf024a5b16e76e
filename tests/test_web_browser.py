"""The web UI in a real browser: Debian's headless Chromium driven by Playwright's Python client (no browser
download). Type a prompt, run, watch the image stream in, download the PNG, JSON and SVG and read their metadata
back, open the compare view, upload a style content image, see bad input refused with the CLI's one-line message.

Marked ``browser`` (outside ``make test``; ``.ci/run`` installs chromium and runs ``-m browser``). Without
``/usr/bin/chromium`` or Playwright the tests skip, unless ``$CLIP_T2I_REQUIRE_BROWSER`` is set (CI), then they fail.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# the server's generate() also logs the vocabulary warning the page shows
pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:.*does not know:UserWarning")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000
# every status text and live-image source the page shows, recorded as it changes
WATCH = """() => {
  window.__seen = {status: [], live: []};
  const rec = () => {
    const s = document.querySelector('#status'); const i = document.querySelector('#live img');
    const st = s ? s.innerText : ''; const src = i ? i.getAttribute('src') : null;
    if (st && window.__seen.status.at(-1) !== st) window.__seen.status.push(st);
    if (src && window.__seen.live.at(-1) !== src) window.__seen.live.push(src);
  };
  new MutationObserver(rec).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                    characterData: true});
}"""


def _need(what: str) -> None:
    if os.environ.get("CLIP_T2I_REQUIRE_BROWSER"):
        pytest.fail(f"browser tests need {what}")
    pytest.skip(f"needs {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Path]]:
    try:
        import gradio  # noqa: F401
    except ImportError:
        _need("gradio (pip install 'clip-t2i[web]')")
    from clip_t2i.web.app import background_server
    from clip_t2i.web.jobs import ServeLimits

    out = tmp_path_factory.mktemp("web") / "out"
    with background_server(out, ServeLimits(max_steps=20, max_size=128, max_images=2, max_upload_mb=1)) as (url, st):
        yield url, st, out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        _need(f"{CHROMIUM} (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any, server: tuple[str, Any, Path]) -> Iterator[Any]:
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(server[0])
    pg.wait_for_selector("#prompt textarea")
    yield pg
    ctx.close()


def _choose(page: Any, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def _fill(page: Any, **fields: str) -> None:
    for elem_id, value in fields.items():
        sel = f"#{elem_id.replace('_', '-')}"
        page.fill(f"{sel} textarea" if page.locator(f"{sel} textarea").count() else f"{sel} input", value)


def _wait_done(page: Any, status: str = "#status") -> str:
    page.wait_for_function(f"document.querySelector('{status}').innerText.includes('done')")
    return page.inner_text(status)


def _download(page: Any, button: str, folder: Path) -> Path:
    with page.expect_download() as info:
        page.click(button)
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def _json_text(page: Any, selector: str) -> str:
    """A JSON panel's text with the line breaks between its tokens removed: ``"seed":2``."""
    return re.sub(r"\s*\n\s*", "", page.inner_text(selector))


def _toast(page: Any) -> str:
    page.wait_for_selector(".toast-body")
    return page.locator(".toast-body").first.inner_text()


def test_generate_streams_then_downloads_png_svg_json(page: Any, server: tuple[str, Any, Path], tmp_path: Path) -> None:
    from clip_t2i.renderers.outputs import read_image_record

    page.evaluate(WATCH)
    _fill(page, prompt="a red circle on the left", steps="12", seeds="5")
    _choose(page, "renderer", "strokes")
    page.click("#run")
    status = _wait_done(page)
    assert "done: 1 image" in status and "sim" in status
    seen = page.evaluate("window.__seen")
    assert any("step" in s and "/12" in s for s in seen["status"]), seen["status"]  # progress was shown live
    assert len(seen["live"]) >= 2, "the image should stream in before the final one"
    assert page.locator("#gallery img").count() >= 1

    png = _download(page, "#dl-png", tmp_path)
    svg = _download(page, "#dl-svg", tmp_path)
    side = _download(page, "#dl-json", tmp_path)
    assert png.name == "000-a-red-circle-on-the-left-seed0005.png" and svg.suffix == ".svg"
    record, image = read_image_record(png)
    assert record is not None
    expected = {"prompt": "a red circle on the left", "seed": 5, "model": "shapes-clipag", "renderer": "strokes"}
    assert {k: record[k] for k in expected} == expected and record["steps"] == 12
    assert tuple(image.shape) == (3, record["size"], record["size"])
    assert json.loads(side.read_text()) == record
    root = ET.fromstring(svg.read_text())
    assert root.tag.endswith("svg") and len([e for e in root.iter() if e.tag.endswith("path")]) > 0
    assert f"0 0 {record['size']} {record['size']}" in (root.get("viewBox") or "")
    # the served file is the one written inside the app's output folder
    job = server[2].resolve() / status.split(" in ")[1].split()[0]
    assert (job / png.name).read_bytes() == png.read_bytes()


def test_compare_view_same_prompt_and_seed(page: Any) -> None:
    page.get_by_role("tab", name="Compare: vanilla vs robust").click()
    _fill(page, c_prompt="a blue square at the top", c_seed="2", c_steps="3")
    page.click("#c-run")
    status = _wait_done(page, "#c-status")
    assert "shapes-clip: sim" in status and "shapes-clipag: sim" in status
    for side in ("#c-left img", "#c-right img"):
        assert page.locator(side).get_attribute("src")
    meta = _json_text(page, "#c-meta")
    assert meta.count('"prompt":"a blue square at the top"') == 2 and meta.count('"seed":2,') == 2
    assert '"shapes-clip":{' in meta and '"shapes-clipag":{' in meta


def test_bad_input_is_refused_with_the_cli_message(page: Any) -> None:
    _fill(page, prompt="a cat wearing sunglasses", steps="2")
    page.click("#run")
    msg = _toast(page)
    assert "shapes-clipag knows no content word of 'a cat wearing sunglasses'" in msg
    _fill(page, prompt="a red circle", steps="500")
    page.click("#run")
    page.wait_for_function(
        "[...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes(\"this app's limit\"))"
    )


def test_vocabulary_warning_is_shown(page: Any) -> None:
    _fill(page, prompt="a purple star at the bottom", steps="2")
    page.click("#run")
    status = _wait_done(page)
    assert "warning: shapes-clipag does not know: star" in status


def test_style_with_an_uploaded_content_image(page: Any, tmp_path: Path) -> None:
    from PIL import Image

    content = tmp_path / "my-content.png"
    Image.new("RGB", (48, 48), (30, 160, 40)).save(content)
    _choose(page, "renderer", "style")
    page.wait_for_selector("#content-upload", state="visible")
    page.set_input_files("#content-upload input[type=file]", str(content))
    page.wait_for_selector("#content-upload img")
    _fill(page, prompt="purple", steps="2", size="32")
    page.click("#run")
    _wait_done(page)
    meta = _json_text(page, "#meta")
    assert '"content":"my-content.png"' in meta and '"renderer":"stylenet"' in meta


def test_gan_and_gallery_metadata(page: Any) -> None:
    _choose(page, "renderer", "gan")
    page.wait_for_function("document.querySelector('#model input').value === 'shapes-scad'")  # set by the page
    _fill(page, prompt="a green cross on the right", seeds="3,4")
    page.click("#run")
    status = _wait_done(page)
    assert "done: 2 images" in status
    thumbs = page.locator("#gallery img")
    assert thumbs.count() >= 2
    thumbs.nth(1).click()
    page.wait_for_function("document.querySelector('#meta').innerText.replace(/\\s+/g, '').includes('\"seed\":3,')")
    assert '"renderer":"gan"' in _json_text(page, "#meta")
