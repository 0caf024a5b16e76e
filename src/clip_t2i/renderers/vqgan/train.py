"""VQGAN training (``clip-t2i train-vqgan``): reconstruction + weight-free perceptual + VQ losses (see
:mod:`~clip_t2i.renderers.vqgan.losses`), an optional hinge patch discriminator, dead-code restarts.

Per step: ``x̂ = D(q(E(x)))`` with straight-through quantisation; Adam on ``L``; if the discriminator is on
(``disc_weight > 0`` and ``step >= disc_start``) one hinge step of it on ``x`` vs ``sg(x̂)``. The codebook starts
as random encoder outputs of the first batch; every ``restart_every`` steps the codes no batch chose since the
last restart are re-set to random encoder outputs of the current batch (plus tiny noise), which keeps a small
codebook in use; the weights stay taming-compatible. Batch ``t`` of the data stream comes from a generator seeded
by (seed, rank, t), so ``--resume`` continues the same stream.
Run folder: ``config.json``, ``train.log`` (JSON lines), ``logs/``
(TensorBoard), ``samples/step_*.png`` (originals over reconstructions), ``checkpoints/step_*/`` (atomic),
``final.safetensors`` (self-describing, config in the metadata) and ``eval.json`` (held-out PSNR, usage).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from clip_t2i.renderers.vqgan.config import config_from_dict
from clip_t2i.renderers.vqgan.losses import (
    PatchDiscriminator,
    hinge_d_loss,
    hinge_g_loss,
    perceptual_loss,
    psnr,
    reconstruction_loss,
    vq_loss,
)
from clip_t2i.renderers.vqgan.model import VQGAN, nearest_codes
from clip_t2i.renderers.vqgan.train_config import VQGANTrainConfig, validate
from clip_t2i.training.checkpoint import load_state, resume_checkpoint, save_checkpoint_on_main
from clip_t2i.training.common import (
    NonFiniteGuard,
    StopOnInterrupt,
    Timer,
    auto_threads,
    check_run_dir,
    loop_should_end,
    make_accelerator,
    raise_if_interrupted,
    run_logger,
    save_run_config,
)


class _Step(nn.Module):
    """The autoencoder's training forward in one ``forward`` (so a DDP wrapper sees every parameter)."""

    def __init__(self, model: VQGAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        z = self.model.encode_latent(x)
        idx = nearest_codes(z.detach(), self.model.codebook)
        e = self.model.codebook[idx].permute(0, 3, 1, 2)
        xr = self.model.decode_latent(z + (e - z).detach())
        return xr, z, e, idx


@torch.no_grad()
def restart_dead_codes(model: VQGAN, z: Tensor, used: Tensor, generator: torch.Generator) -> int:
    """Re-set codes with ``used == 0`` to random vectors of ``z [B, D, h, w]`` (+ 1 % noise); returns how many."""
    dead = (used == 0).nonzero().flatten()
    if dead.numel() == 0:
        return 0
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float().cpu()
    pick = torch.randint(0, flat.shape[0], (dead.numel(),), generator=generator)
    new = flat[pick] + 0.01 * flat.std() * torch.randn(dead.numel(), flat.shape[1], generator=generator)
    model.codebook.data[dead.to(model.codebook.device)] = new.to(model.codebook)
    return int(dead.numel())


@torch.no_grad()
def augment(x: Tensor, hflip: bool, shift: int, generator: torch.Generator, vflip: bool = False) -> Tensor:
    """Position augmentation of a batch ``x [B, C, H, W]``: each image mirrored left-right with probability 1/2
    (``hflip``), then top-bottom with probability 1/2 (``vflip``; the VQGAN is unconditional, so a mirrored caption
    does not matter), and translated by integers (dy, dx) ~ U{-shift..shift} with edge pixels repeated (``shift``).
    It teaches the decoder every position equally, so a guide starting from a featureless code map is not pulled
    to where one rendered object happened to be common (experiments/renderers/vqgan_sensitivity.py)."""
    b, _, h, w = x.shape
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(-1), x)
    if vflip:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(-2), x)
    if shift > 0:
        pad = torch.nn.functional.pad(x, (shift,) * 4, mode="replicate")
        off = torch.randint(0, 2 * shift + 1, (b, 2), generator=generator).tolist()
        x = torch.stack([pad[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(off)])
    return x


@torch.no_grad()
def init_codebook(model: VQGAN, x: Tensor, generator: torch.Generator) -> None:
    """Data-dependent start: every code a random encoder output of the batch ``x`` (+ 1 % noise), so codes and
    latents share one scale from step 0 (taming's uniform ±1/n_embed start lets a small model collapse to one
    blurry mean image)."""
    z = model.encode_latent(x)
    restart_dead_codes(model, z, torch.zeros(model.config.n_embed), generator)


def eval_images(data: str, size: int, n: int, seed: int) -> tuple[Tensor, str]:
    """Evaluation images ``[n, 3, size, size]`` and what they are: held-out shapes renders (combinations training
    never draws) for the shapes worlds, else a batch of the stream under another seed."""
    if data in ("shapes", "shapes2"):
        from clip_t2i.data.shapes import shapes_eval_set

        level = "one" if data == "shapes" else "two"
        return shapes_eval_set(level=level, split="heldout", n=n, seed=seed, size=size)["image"], "held-out renders"
    from clip_t2i.data import make_stream

    stream = make_stream(data, size=size, batch_size=n, seed=seed + 7919)
    return next(iter(stream))["image"][:n], "a batch of the data under another seed"


@torch.no_grad()
def evaluate_vqgan(model: VQGAN, images: Tensor, batch: int = 64) -> dict[str, Any]:
    """Reconstruction PSNR (dB, mean over images) and codebook usage (fraction of codes used, perplexity)."""
    model.eval()
    psnrs, counts = [], torch.zeros(model.config.n_embed)
    dev = model.codebook.device
    for chunk in images.split(batch):
        chunk = chunk.to(dev)
        xr, _, idx = model(chunk)
        psnrs.append(psnr(chunk, xr).cpu())
        counts += torch.bincount(idx.flatten().cpu(), minlength=model.config.n_embed).float()
    p = counts / counts.sum()
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    return {
        "psnr_db": round(float(torch.cat(psnrs).mean()), 3),
        "codebook_used": int((counts > 0).sum()),
        "codebook_size": model.config.n_embed,
        "codebook_usage": round(float((counts > 0).float().mean()), 4),
        "code_perplexity": round(perplexity, 2),
        "n_images": int(images.shape[0]),
    }


def train_vqgan(cfg: VQGANTrainConfig) -> Path:
    """Train a VQGAN; return the path of ``final.safetensors``."""
    from clip_t2i.data import make_stream
    from clip_t2i.renderers.vqgan.loading import save_vqgan

    validate(cfg)
    auto_threads(cfg.threads)
    run_dir = Path(cfg.out)
    check_run_dir(run_dir, cfg.resume)
    resume_from = resume_checkpoint(run_dir, cfg.resume)
    vq_cfg = config_from_dict(cfg.vqgan_config())
    # the data source is checked before anything is created on disk
    stream_kwargs = {"size": cfg.resolution, "batch_size": cfg.batch_size, "seed": cfg.seed}
    make_stream(cfg.data, **stream_kwargs)

    torch.manual_seed(cfg.seed)
    model = VQGAN(vq_cfg)
    use_disc = cfg.disc_weight > 0
    disc = PatchDiscriminator() if use_disc else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=cfg.betas) if disc is not None else None
    state = load_state(resume_from) if resume_from is not None else {}
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if disc is not None and "disc" in state:
            disc.load_state_dict(state["disc"])
            opt_d.load_state_dict(state["opt_d"])  # type: ignore[union-attr]
    start_step = int(state.get("step", 0))
    used = state.get("used", torch.zeros(vq_cfg.n_embed))

    accelerator = make_accelerator(run_dir, 1, cfg.mixed_precision)
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    step_module, opt = accelerator.prepare(_Step(model), opt)
    if disc is not None:
        disc, opt_d = accelerator.prepare(disc, opt_d)
    device = accelerator.device
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_run_config(run_dir, {**cfg.__dict__, "vqgan": vq_cfg.to_dict(), "num_processes": world})
    accelerator.init_trackers("vqgan", config={k: str(v) for k, v in cfg.__dict__.items()})
    log = run_logger(run_dir / "train.log", main)
    log(json.dumps({"start_step": start_step, "params": sum(p.numel() for p in model.parameters()), "world": world}))
    stream = make_stream(cfg.data, **stream_kwargs, rank=rank, world_size=world, start_batch=start_step)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.num_workers)
    timer = Timer(cfg.max_minutes)
    timer.start -= float(state.get("elapsed_s", 0.0))
    guard = NonFiniteGuard(cfg.max_nonfinite_steps)
    restarts = int(state.get("restarts", 0))

    def checkpoint(step: int) -> None:
        save_checkpoint_on_main(
            accelerator,
            run_dir,
            step,
            lambda p: save_vqgan(p, model, {"steps": step}),
            lambda: {
                "step": step,
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                **({"disc": accelerator.unwrap_model(disc).state_dict(), "opt_d": opt_d.state_dict()} if disc else {}),
                "used": used,
                "restarts": restarts,
                "elapsed_s": timer.elapsed_s,
            },
        )

    def sample_grid(step: int, x: Tensor, xr: Tensor) -> None:
        from clip_t2i.renderers.outputs import make_grid, save_png

        k = min(8, x.shape[0])
        grid = make_grid(torch.cat([x[:k], xr[:k].clamp(0, 1)]).detach().cpu(), ncol=k, pad=1, min_side=x.shape[-1])
        meta = {"kind": "grid", "step": step, "rows": "originals, reconstructions"}
        save_png(run_dir / "samples" / f"step_{step:07d}.png", grid, meta, sidecar=False)

    bar = tqdm(total=cfg.steps, initial=start_step, disable=not (cfg.progress and main), desc="train-vqgan")
    data_iter = iter(loader)
    step = start_step
    sums: dict[str, float] = {}
    n_sums = 0
    with StopOnInterrupt() as stop:
        while step < cfg.steps:
            x = next(data_iter)["image"].to(device)
            if cfg.hflip or cfg.vflip or cfg.shift:  # per (seed, rank, step): --resume continues the same augmentation
                gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + rank) * 10_000_019 + step)
                x = augment(x, cfg.hflip, cfg.shift, gen, vflip=cfg.vflip)
            if step == 0:
                init_codebook(model, x, torch.Generator().manual_seed(cfg.seed))
                if world > 1:
                    torch.distributed.broadcast(model.codebook.data, 0)
            with accelerator.autocast():
                xr, z, e, idx = step_module(x)
                l_rec = reconstruction_loss(x, xr)
                l_perc = perceptual_loss(cfg.perceptual, x, xr)
                l_code, l_commit = vq_loss(z.float(), e.float(), cfg.beta)
                loss = l_rec + cfg.perceptual_weight * l_perc + l_code + l_commit
                disc_on = disc is not None and step >= cfg.disc_start
                l_g = hinge_g_loss(disc(xr)) if disc_on else x.new_zeros(())  # type: ignore[misc]
                loss = loss + cfg.disc_weight * l_g
            finite = bool(torch.isfinite(loss.detach()))
            if guard.record(finite, step, log, bar):
                accelerator.backward(loss)
                opt.step()
            opt.zero_grad(set_to_none=True)
            l_d = torch.zeros(())
            if disc_on and finite:
                with accelerator.autocast():
                    l_d = hinge_d_loss(disc(x), disc(xr.detach()))  # type: ignore[misc]
                accelerator.backward(l_d)
                opt_d.step()  # type: ignore[union-attr]
                opt_d.zero_grad(set_to_none=True)  # type: ignore[union-attr]
            used += torch.bincount(idx.flatten().cpu(), minlength=vq_cfg.n_embed).float()
            step += 1
            if cfg.restart_every and step % cfg.restart_every == 0:
                gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # per step: resumable exactly
                n_new = restart_dead_codes(model, z, used, gen)
                if world > 1:
                    torch.distributed.broadcast(model.codebook.data, 0)
                restarts += n_new
                used = torch.zeros(vq_cfg.n_embed)
            bar.update(1)
            vals = {"loss": loss, "rec": l_rec, "perc": l_perc, "codebook": l_code, "commit": l_commit, "g": l_g}
            vals["d"] = l_d
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_sums += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                scalars = {k: v / n_sums for k, v in sums.items()}
                sums, n_sums = {}, 0
                with torch.no_grad():
                    scalars["psnr_batch"] = float(psnr(x, xr.float()).mean())
                scalars["codes_used_window"] = int((used > 0).sum())
                accelerator.log(scalars, step=step)
                bar.set_postfix(rec=f"{scalars['rec']:.4f}", psnr=f"{scalars['psnr_batch']:.1f}")
                log(json.dumps({"step": step, **{k: round(v, 5) for k, v in scalars.items()}, "restarts": restarts}))
            if main and cfg.sample_every and step % cfg.sample_every == 0:
                sample_grid(step, x, xr)
            if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
                checkpoint(step)
            if loop_should_end(stop, timer, step, log):
                break
    bar.close()
    checkpoint(step)
    raise_if_interrupted(stop, step, cfg.steps, run_dir, "train-vqgan", log)
    final = run_dir / "final.safetensors"
    if main:
        images, what = eval_images(cfg.data, cfg.resolution, cfg.eval_n, seed=cfg.seed + 1)
        model.to(device)
        metrics = {**evaluate_vqgan(model, images), "eval_images": what, "steps": step}
        metrics["elapsed_s"] = round(timer.elapsed_s, 1)
        from clip_t2i.utils.io import atomic_write_text

        atomic_write_text(run_dir / "eval.json", json.dumps(metrics, indent=2) + "\n")
        save_vqgan(final, model, {"steps": step, "metrics": metrics})
        log(json.dumps({"done": True, **metrics}))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final
