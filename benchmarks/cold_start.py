"""Start-up cost of the CLI: ``--help``, ``presets`` and ``generate`` (cold and warm prior/pool cache); one JSON.

Every number is the median over ``--runs`` fresh processes (1 thread: ``OMP_NUM_THREADS=1``). Totals are the wall
time of the ``clip-t2i`` process. Stages come from a child process that runs ``generate``'s steps one by one with
a clock around each: ``import`` (torch, the pipeline, the guidance loop), ``model_load``, ``prompts`` (preset +
text embeddings), ``prior_pool`` (renderer init minus the CLIP encoding of the pool: fitting the prior + drawing
the pool, or reading them from the cache), ``pick`` (encoding the pool with CLIP; ~0 when cached), ``guided_steps``
and ``write``. *cold*: an empty cache folder per run; *warm*: a folder filled by an earlier run. The load average
(1 / 5 / 15 min) is recorded before and after, the machine may be shared.

Usage: ``python benchmarks/cold_start.py [--runs 5] [--model shapes-clipag] [--prompt "a red circle on the left"]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV_1T = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("clip-t2i")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clip_t2i.cli"]


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env={**os.environ, **ENV_1T, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def stages(model: str, prompt: str, out: str) -> dict[str, float]:
    """Run generate's steps with a clock around each (in this process); seconds per stage."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    import torch

    from clip_t2i.guidance.loop import run_guidance
    from clip_t2i.guidance.prompts import TextEmbeddingCache, build_targets
    from clip_t2i.pipeline import DEFAULT_PRESET, GenerationResult, load_guide, write_outputs
    from clip_t2i.renderers.base import InitContext, build_renderer
    from clip_t2i.renderers.presets import get_preset

    times["import"] = time.perf_counter() - t
    t = time.perf_counter()
    clip = load_guide(model)
    times["model_load"] = time.perf_counter() - t
    t = time.perf_counter()
    cfg = get_preset(DEFAULT_PRESET)
    targets = build_targets([prompt], TextEmbeddingCache(clip))
    rend = build_renderer(cfg.renderer, clip.image_size, cfg.renderer_options)
    times["prompts"] = time.perf_counter() - t
    encode, spent = clip.encode_image, [0.0]

    def timed_encode(*a, **k):
        t0 = time.perf_counter()
        try:
            return encode(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t0

    clip.encode_image = timed_encode
    t = time.perf_counter()
    gens = [torch.Generator().manual_seed(0)]
    params = rend.init(1, gens, InitContext(clip=clip, targets=targets))
    init = time.perf_counter() - t
    clip.encode_image = encode
    times["prior_pool"], times["pick"] = init - spent[0], spent[0]
    t = time.perf_counter()
    res = run_guidance(rend, params, clip, targets, gens, cfg.guidance)
    times["guided_steps"] = time.perf_counter() - t
    t = time.perf_counter()
    record = {"prompt": prompt, "seed": 0, "model": model, "preset": cfg.name, "similarity": 0.0}
    write_outputs(GenerationResult(res.images.detach(), [record], 0.0, [[]]), Path(out))
    times["write"] = time.perf_counter() - t
    return times


def _stage_run(args: argparse.Namespace, cache: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--_stages", "--model", args.model, "--prompt", args.prompt, "--_out", out]
        env = {**os.environ, **ENV_1T, "CLIP_T2I_CACHE": cache}
        return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="shapes-clipag")
    ap.add_argument("--prompt", default="a red circle on the left")
    ap.add_argument("--_stages", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._stages:
        sys.stdout.write(json.dumps(stages(args.model, args.prompt, args._out)) + "\n")
        return
    load_before = os.getloadavg()
    cli = _cli()
    report: dict = {"runs": args.runs, "threads": 1, "model": args.model, "prompt": args.prompt}
    with tempfile.TemporaryDirectory() as tmp:
        off = {"CLIP_T2I_CACHE": "off"}
        report["help_s"] = round(statistics.median(_wall([*cli, "--help"], off) for _ in range(args.runs)), 3)
        report["presets_s"] = round(statistics.median(_wall([*cli, "presets"], off) for _ in range(args.runs)), 3)
        gen = [*cli, "generate", args.prompt, "--model", args.model, "--no-progress", "--overwrite"]
        cold, warm, cold_st, warm_st = [], [], [], []
        warm_dir = str(Path(tmp) / "warm")
        _wall([*gen, "--out", str(Path(tmp) / "out")], {"CLIP_T2I_CACHE": warm_dir})  # fills the warm cache
        for i in range(args.runs):
            cold_dir = str(Path(tmp) / f"cold{i}")
            cold.append(_wall([*gen, "--out", str(Path(tmp) / "out")], {"CLIP_T2I_CACHE": cold_dir}))
            warm.append(_wall([*gen, "--out", str(Path(tmp) / "out")], {"CLIP_T2I_CACHE": warm_dir}))
            cold_st.append(_stage_run(args, str(Path(tmp) / f"cold_st{i}")))
            warm_st.append(_stage_run(args, warm_dir))
        report["generate_cold_s"] = round(statistics.median(cold), 3)
        report["generate_warm_s"] = round(statistics.median(warm), 3)
        report["stages_cold_s"] = _median(cold_st)
        report["stages_warm_s"] = _median(warm_st)
        report["stages_cold_s"]["total"] = round(sum(report["stages_cold_s"].values()), 3)
        report["stages_warm_s"]["total"] = round(sum(report["stages_warm_s"].values()), 3)
    report["loadavg_before"] = [round(x, 2) for x in load_before]
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
