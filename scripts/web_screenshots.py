"""Screenshots of the web UI for the README, taken with Playwright in Debian's headless Chromium.

Starts the app in this process (outputs in a temporary folder), then: the *Generate* tab mid-run (the drawing
streaming in), the same tab after a few results (gallery, metadata, PNG / JSON / SVG downloads), and the *Compare*
tab (vanilla vs robust CLIP, ``pag`` preset, same prompt and seed). Existing files are not replaced without
``--overwrite``.

Usage: ``OMP_NUM_THREADS=1 python scripts/web_screenshots.py [--out docs] [--overwrite]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

NAMES = ("web-streaming.png", "web-generate.png", "web-compare.png")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def _fill(page, elem_id: str, value: str) -> None:
    box = f"#{elem_id} textarea"
    page.fill(box if page.locator(box).count() else f"#{elem_id} input", value)


def _run(page, button: str = "#run", status: str = "#status") -> None:
    page.click(button)  # then wait for this run's status (the previous run's "done" may still show)
    page.wait_for_function(f"!document.querySelector('{status}').innerText.includes('done')", timeout=600_000)
    page.wait_for_function(f"document.querySelector('{status}').innerText.includes('done')", timeout=600_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    targets = [args.out / n for n in NAMES]
    clash = [str(t) for t in targets if t.exists()]
    if clash and not args.overwrite:
        sys.exit(f"error: {clash[0]} exists; pass --overwrite to replace the screenshots")
    from playwright.sync_api import sync_playwright

    from clip_t2i.web.app import background_server

    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="clip-t2i-shots-") as tmp,
        background_server(Path(tmp) / "out") as (
            url,
            _,
        ),
    ):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1180})
            page.goto(url)
            page.wait_for_selector("#prompt textarea")
            # a strokes drawing and two GAN samples first, so the gallery has something in it
            _choose(page, "renderer", "strokes")
            _fill(page, "prompt", "a yellow triangle in the center")
            _run(page)
            _choose(page, "renderer", "gan")
            _fill(page, "prompt", "a green cross on the right")
            _fill(page, "seeds", "0,1")
            _run(page)
            # the robust CLIP drawing from a dark-grey start: shot mid-run, then when done
            _choose(page, "renderer", "pixels")
            _choose(page, "model", "shapes-clipag")
            _choose(page, "preset", "pag")
            _fill(page, "prompt", "a red circle on the left")
            _fill(page, "seeds", "0")
            page.click("#run")
            page.wait_for_function(
                "/step (2[5-9]|3[0-9])\\/60/.test(document.querySelector('#status').innerText)", timeout=600_000
            )
            page.screenshot(path=str(targets[0]))
            page.wait_for_function("document.querySelector('#status').innerText.includes('done')", timeout=600_000)
            _choose(page, "renderer", "strokes")
            _choose(page, "preset", "auto")
            _fill(page, "prompt", "a blue square at the top")
            _fill(page, "steps", "0")
            _run(page)
            page.screenshot(path=str(targets[1]))
            page.get_by_role("tab", name="Compare: vanilla vs robust").click()
            _fill(page, "c-prompt", "a red circle on the left")
            _run(page, "#c-run", "#c-status")
            page.screenshot(path=str(targets[2]))
            browser.close()
    for t in targets:
        print(t)


if __name__ == "__main__":
    main()
