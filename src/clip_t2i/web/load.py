"""Load test of the web app: many concurrent requests through Gradio's queue, on loopback.

:func:`load_test` fires ``n`` requests at once at ``/generate`` (a mix of small valid ones and ones over the caps)
with Gradio's own client while a prober times ``GET /healthz`` (a trivial request) every few milliseconds. Every
request must end either completed or refused with a message (bad input, over a cap, queue full); none may be lost;
nothing written may exceed the caps; the prober says how responsive the server stayed. Used by
``benchmarks/serve_load.py`` and the ``slow`` test in ``tests/test_web.py``.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from clip_t2i.web.jobs import ServeLimits


def _requests(n: int, limits: ServeLimits, steps: int) -> list[tuple[str, list[Any]]]:
    """``n`` (kind, /generate arguments): mostly small valid requests, every fifth one over a cap."""
    prompts = ["a red circle on the left", "a blue square at the top", "a green cross on the right"]
    over = [
        ("over-steps", {"steps": limits.max_steps * 10}),
        ("over-size", {"size": limits.max_size * 4}),
        ("over-images", {"seeds": f"0-{limits.max_images * 5}"}),
        ("bad-prompt", {"prompt": ""}),
    ]
    out = []
    for i in range(n):
        args = {"prompt": prompts[i % 3], "renderer": "strokes", "steps": steps, "seeds": str(i), "size": 0}
        kind = "valid"
        if i % 5 == 4:
            kind, extra = over[(i // 5) % len(over)]
            args.update(extra)
        out.append(
            (
                kind,
                [args["prompt"], "shapes-clip", "", args["renderer"], "auto", args["steps"], args["seeds"]]
                + [args["size"], None, "shapes:0"],
            )
        )
    return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def check_outputs(out: Path, limits: ServeLimits) -> dict[str, Any]:
    """Every sidecar written under ``out`` (Gradio's cache aside): within the caps? Counts images per job folder."""
    from clip_t2i.web.app import CACHE_DIR

    root = Path(out).resolve()
    per_job: Counter[str] = Counter()
    over = []
    for side in root.rglob("*.json"):
        if CACHE_DIR in side.relative_to(root).parts:
            continue
        rec = json.loads(side.read_text())
        per_job[side.relative_to(root).parts[0]] += 1
        if rec.get("steps", 0) > limits.max_steps or rec.get("size", 0) > limits.max_size:
            over.append(str(side.relative_to(root)))
    over += [f"{job}: {k} images" for job, k in per_job.items() if k > limits.max_images]
    return {"jobs": len(per_job), "images": sum(per_job.values()), "over_caps": over}


def load_test(
    url: str,
    out: str | Path,
    limits: ServeLimits,
    n: int = 50,
    steps: int = 3,
    timeout_s: float = 600.0,
    probe_every_s: float = 0.02,
) -> dict[str, Any]:
    """Fire ``n`` concurrent ``/generate`` requests at the app at ``url`` (serving ``out`` with ``limits``); returns
    outcomes, latencies and the cap checks as one JSON-ready dict (see the module docstring)."""
    import httpx
    from gradio_client import Client

    client = Client(url, download_files=False, verbose=False)
    reqs = _requests(n, limits, steps)
    probe_ms: list[float] = []
    probe_errors = [0]
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=10) as h:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    ok = h.get(url.rstrip("/") + "/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    probe_ms.append((time.perf_counter() - t) * 1000)
                else:
                    probe_errors[0] += 1
                stop.wait(probe_every_s)

    def one(kind_args: tuple[str, list[Any]]) -> dict[str, Any]:
        kind, args = kind_args
        t = time.perf_counter()
        try:
            res = client.submit(*args, api_name="/generate").result(timeout=timeout_s)
        except TimeoutError:
            return {"kind": kind, "outcome": "lost", "seconds": time.perf_counter() - t}
        except Exception as e:  # noqa: BLE001 - every refusal the client raises counts, with its message
            msg = " ".join(str(e).split())
            return {"kind": kind, "outcome": "rejected", "message": msg, "seconds": time.perf_counter() - t}
        record = res[3] if isinstance(res, list | tuple) and len(res) > 3 else None
        return {"kind": kind, "outcome": "completed", "record": record, "seconds": time.perf_counter() - t}

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, reqs))
    seconds = time.perf_counter() - t0
    stop.set()
    prober.join(timeout=15)
    health = httpx.get(url.rstrip("/") + "/healthz", timeout=10).json()
    outcomes = Counter(r["outcome"] for r in results)
    reasons = Counter(_reason(r["message"]) for r in results if r["outcome"] == "rejected")
    unexplained = [r for r in results if r["outcome"] == "rejected" and not r["message"]]
    valid_refused = Counter(
        _reason(r.get("message", "lost")) for r in results if r["kind"] == "valid" and r["outcome"] != "completed"
    )
    invalid_completed = [r["kind"] for r in results if r["kind"] != "valid" and r["outcome"] == "completed"]
    files = check_outputs(Path(out), limits)
    return {
        "n": n,
        "steps": steps,
        "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__},
        "seconds": round(seconds, 2),
        "completed": outcomes["completed"],
        "rejected": outcomes["rejected"],
        "lost": outcomes["lost"],
        "rejected_by_reason": dict(reasons),
        "rejected_without_message": len(unexplained),
        "valid_not_completed": dict(valid_refused),
        "invalid_completed": invalid_completed,
        "request_seconds": {
            "p50": round(statistics.median([r["seconds"] for r in results]), 3),
            "max": round(max(r["seconds"] for r in results), 3),
        },
        "server": health,
        "outputs": files,
        "probe_healthz_ms": {
            "n": len(probe_ms),
            "errors": probe_errors[0],
            "p50": round(_percentile(probe_ms, 0.5), 2),
            "p95": round(_percentile(probe_ms, 0.95), 2),
            "max": round(max(probe_ms), 2) if probe_ms else None,
        },
    }


def _reason(message: str) -> str:
    m = message.lower()
    for key, label in (
        ("queue is full", "queue full"),
        ("above this app's limit", "over a cap"),
        ("empty prompt", "bad input"),
    ):
        if key in m:
            return label
    return message[:80]
