"""GAN speed at 64×64 (``vit-t64`` CLIP, default generator): sampling images/s and training steps/s.

Sampling: the generator alone on precomputed text embeddings (batch ``--batch``, ``torch.inference_mode``),
in fp32, fp32 + channels_last, bf16 autocast + channels_last (this CPU has no native bf16: AVX2 only),
optionally ``torch.compile`` (``--compile``; compilation time reported separately); and ``generate()`` end to
end (text encoding, per-image seeded noise, clamping). Training: :func:`clip_t2i.gan.train.gan_step` (one G
forward, one D step, one G step; no EMA / logging) for each ``--variants`` at ``--train-batch``, in the
contiguous and the channels-last memory format (the training default) side by side.
Times are the best of ``--repeats`` windows of ``--seconds`` (the machine is shared). Random weights:
speed does not depend on training. Prints one JSON object.

Usage: ``python benchmarks/gan_speed.py [--threads 1] [--batch 256] [--compile] [--variants galip,scad]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from clip_t2i.utils import jsonout


def best_rate(fn: Callable[[], int], seconds: float, repeats: int) -> float:
    """Best items/s over ``repeats`` windows of at least ``seconds`` (``fn`` returns items done)."""
    best = 0.0
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            n += fn()
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
        best = max(best, n / dt)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--variants", default="galip,scad,scad-mi,scad-dd")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd sampling")
    ap.add_argument("--clip", default="vit-t64")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from clip_t2i.backbones import load_clip
    from clip_t2i.gan.losses import GanLoss
    from clip_t2i.gan.networks import count_parameters
    from clip_t2i.gan.sample import generate
    from clip_t2i.gan.train import _Toggle, build, gan_step
    from clip_t2i.gan.variants import get_variant

    torch.manual_seed(0)
    clip = load_clip(args.clip).eval()
    res: dict = {
        "clip": args.clip,
        "threads": args.threads,
        "batch": args.batch,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
    }
    G, D, _ = build(get_variant("scad"), clip)
    G.eval()
    res["resolution"] = G.resolution
    res["G_params_trainable"] = count_parameters(G)
    res["D_params_trainable_scad"] = count_parameters(D)
    z = torch.randn(args.batch, G.z_dim)
    e = F.normalize(torch.randn(args.batch, G.text_dim), dim=1)

    sampling = {}
    with torch.inference_mode():
        G(z[:4], e[:4])
        sampling["fp32"] = best_rate(lambda: G(z, e).shape[0], args.seconds, args.repeats)
    G.to(memory_format=torch.channels_last)  # outside inference mode: the CLIP's weights are shared with training
    with torch.inference_mode():
        sampling["fp32_channels_last"] = best_rate(lambda: G(z, e).shape[0], args.seconds, args.repeats)

        def bf16() -> int:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return G(z, e).shape[0]

        sampling["bf16_channels_last"] = best_rate(bf16, args.seconds, max(1, args.repeats - 1))
    prompts = ["a small red circle on the left", "a large blue square at the top"] * (args.batch // 2)
    seeds = list(range(len(prompts)))
    sampling["generate_end_to_end"] = best_rate(
        lambda: generate(G, clip, prompts, seeds, args.batch).shape[0], args.seconds, args.repeats
    )
    if args.compile:
        Gc = torch.compile(G, dynamic=False)
        with torch.inference_mode():
            t0 = time.perf_counter()
            Gc(z, e)
            res["compile_seconds"] = round(time.perf_counter() - t0, 1)
            sampling["compiled_channels_last"] = best_rate(lambda: Gc(z, e).shape[0], args.seconds, args.repeats)
    res["sampling_images_per_s"] = {k: round(v, 1) for k, v in sampling.items()}

    training = {}
    b = args.train_batch
    real = torch.rand(b, 3, G.resolution, G.resolution) * 2 - 1
    et = F.normalize(torch.randn(b, G.text_dim), dim=1)
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        cfg = get_variant(name)
        row: dict = {}
        for fmt in ("contiguous", "channels_last"):  # channels_last is train-gan's default (--channels-last)
            torch.manual_seed(0)
            Gt, Dt, _ = build(cfg, clip)
            memory = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
            Gt.to(memory_format=memory)
            Dt.to(memory_format=memory)
            loss = GanLoss(Gt, Dt, cfg.loss)
            opt_g = torch.optim.Adam(Gt.trainable_parameters(), lr=1e-4, betas=(0.0, 0.9))
            opt_d = torch.optim.Adam(Dt.trainable_parameters(), lr=4e-4, betas=(0.0, 0.9))
            toggle = _Toggle(Dt.trainable_parameters())
            zt = torch.randn(b, Gt.z_dim)

            def step(Gt=Gt, loss=loss, opt_g=opt_g, opt_d=opt_d, toggle=toggle, zt=zt) -> int:
                gan_step(Gt, loss, opt_g, opt_d, toggle, real, et, zt, autocast=contextlib.nullcontext)
                return 1

            step()
            rate = best_rate(step, args.seconds * 2, max(1, args.repeats - 1))
            suffix = "" if fmt == "channels_last" else "_contiguous"
            row[f"s_per_step{suffix}"] = round(1 / rate, 3)
            if fmt == "channels_last":
                row.update(steps_per_s=round(rate, 3), images_per_s=round(rate * b, 1))
            row["D_params_trainable"] = count_parameters(Dt)
        row["speedup_channels_last"] = round(row["s_per_step_contiguous"] / row["s_per_step"], 3)
        training[name] = row
    res["training"] = {"batch": b, **training}
    res["load_avg_1min_end"] = os.getloadavg()[0]
    print(jsonout.dumps(res))


if __name__ == "__main__":
    main()
