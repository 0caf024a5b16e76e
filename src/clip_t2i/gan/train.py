"""GAN training (``clip-t2i train-gan``): one loop for every variant (GALIP, SCAD, SCAD-MI, SCAD-DD, ablations).

Per step (GALIP's order): one generator forward x̂ = G(z, e); a discriminator step on sg(x̂); a generator step
on the same x̂ through the just-updated D (D's parameters frozen); an EMA update of G. A non-finite D or G
loss skips that step (logged, counted). z of step t comes from a generator seeded by (seed, rank, t) and the
data stream restarts at batch t, so ``--resume`` reproduces an uninterrupted run exactly.

Data-parallel: ``accelerate launch --num_processes N -m clip_t2i.cli train-gan ...`` (``--multi_gpu`` for N CPU
processes). Every process starts from the same seeded initialisation, draws its own shard of the stream and its
own z, and the gradients of each D / G step are averaged across processes (all-reduce) before the optimiser
step, so the weights stay identical (checked at the end: ``ranks_in_sync`` in ``train.log``); the effective
batch is N × ``--batch-size``. The GAN is not wrapped in DDP because its losses call sub-modules of G and D
directly and run D several times per step. Skips (non-finite loss on any rank) and the time budget are decided
jointly; only the main process writes logs, samples, evaluations and checkpoints.

Run folder: ``config.json`` (written first), ``train.log`` (JSON lines), ``eval.jsonl``, ``samples/step_*.png``
grids, ``logs/`` (TensorBoard), ``checkpoints/step_*/{model.safetensors,state.pt}`` (model = the EMA
generator, self-describing; state = G, D, EMA, optimisers, step), ``final.safetensors``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from clip_t2i.errors import UserError
from clip_t2i.gan.config import GanTrainConfig, validate
from clip_t2i.training.checkpoint import load_state, resume_checkpoint, save_checkpoint_on_main
from clip_t2i.training.common import (
    NonFiniteGuard,
    StopOnInterrupt,
    Timer,
    auto_threads,
    check_run_dir,
    finite_or_skip,
    make_accelerator,
    raise_if_interrupted,
    run_logger,
    save_run_config,
)


def step_noise(seed: int, rank: int, step: int, batch: int, z_dim: int) -> torch.Tensor:
    """z of one step: N(0, I) from a generator seeded by (seed, rank, step)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2**63))
    return torch.randn(batch, z_dim, generator=g)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """``θ_ema ← β θ_ema + (1 − β) θ`` on trainable parameters; buffers copied."""
    src = dict(model.named_parameters())
    for name, p in ema.named_parameters():
        if src[name].requires_grad:
            p.lerp_(src[name].detach(), 1.0 - beta)
    src_b = dict(model.named_buffers())
    for name, b in ema.named_buffers():
        b.copy_(src_b[name])


class _Toggle:
    """requires_grad on/off for a fixed list of parameters (keeps frozen CLIP weights frozen)."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params

    def __call__(self, flag: bool) -> None:
        for p in self.params:
            p.requires_grad_(flag)


def gan_step(
    G: torch.nn.Module,
    loss_fn: Any,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    d_toggle: Callable[[bool], None],
    real: torch.Tensor,
    e: torch.Tensor,
    z: torch.Tensor,
    *,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    backward: Callable[[torch.Tensor], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    step: int = 0,
    joint: Callable[[torch.Tensor], torch.Tensor] | None = None,
    z2: torch.Tensor | None = None,
) -> dict[str, Any]:
    """One iteration: x̂ = G(z, e); D step on sg(x̂); G step on x̂ through the updated, frozen D.

    ``z2 [m, z_dim]`` (mode seeking, ``loss.ms_weight`` > 0): the same forward also makes x̂₂ = G(z2, e[:m]), and
    the G step passes the pairs (x̂[:m], x̂₂) to the generator loss; the discriminator never sees x̂₂.

    ``joint(loss)`` maps a local loss to the value every process sees (mean over processes), so a non-finite
    loss anywhere skips the step everywhere. Returns the loss statistics plus ``skipped/D`` and ``skipped/G``
    (True when a non-finite loss skipped it).
    """
    backward = backward or (lambda loss: loss.backward())
    joint = joint or (lambda t: t)
    with autocast():
        if z2 is None:
            fake, fake2 = G(z, e), None
        else:  # one forward for both latents (a second forward before backward would trip DDP's reducer)
            both = G(torch.cat([z, z2]), torch.cat([e, e[: z2.shape[0]]]))
            fake, fake2 = both[: z.shape[0]], both[z.shape[0] :]
    d_toggle(True)
    with autocast():
        loss_d, st_d = loss_fn.discriminator(real, fake, e, z)
    ok_d = finite_or_skip(joint(loss_d.detach()), step, lambda m: on_skip and on_skip("D", m))
    if ok_d:
        backward(loss_d)
        opt_d.step()
    opt_d.zero_grad(set_to_none=True)
    d_toggle(False)
    try:
        with autocast():
            pair = None if z2 is None else (fake2, z2)
            loss_g, st_g = loss_fn.generator(fake, e, z, pair)
        ok_g = finite_or_skip(joint(loss_g.detach()), step, lambda m: on_skip and on_skip("G", m))
        if ok_g:
            backward(loss_g)
            opt_g.step()
        opt_g.zero_grad(set_to_none=True)
    finally:
        d_toggle(True)
    return {**st_d, **st_g, "skipped/D": not ok_d, "skipped/G": not ok_g}


def build(gan_cfg: Any, clip: Any) -> tuple[Any, Any, Any]:
    """(G, D, G_ema) for a variant around ``clip`` (frozen, shared)."""
    from clip_t2i.gan.networks import Discriminator, Generator

    clip.eval().requires_grad_(False)
    G = Generator(gan_cfg.generator, clip)
    D = Discriminator(gan_cfg.discriminator, clip, z_dim=gan_cfg.generator.z_dim, with_q=gan_cfg.loss.mi_weight > 0)
    G_ema = Generator(gan_cfg.generator, clip)
    G_ema.load_trainable_state_dict(G.trainable_state_dict())
    G_ema.eval().requires_grad_(False)
    return G, D, G_ema


def train_gan(cfg: GanTrainConfig) -> Path:
    """Train a GAN variant; return the path of the final self-describing generator file."""
    from clip_t2i.backbones import load_clip
    from clip_t2i.data import make_stream
    from clip_t2i.gan.losses import GanLoss
    from clip_t2i.gan.model import save_gan
    from clip_t2i.gan.networks import count_parameters, text_embedding

    gan_cfg = validate(cfg)
    auto_threads(cfg.threads)
    run_dir = Path(cfg.out)
    check_run_dir(run_dir, cfg.resume)
    resume_from = resume_checkpoint(run_dir, cfg.resume)
    if resume_from is not None:
        saved = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
        if saved.get("gan") and saved["gan"] != json.loads(json.dumps(gan_cfg.to_dict())):
            raise UserError(f"--resume: {run_dir} was trained with another variant/config; use a new --out")

    torch.manual_seed(cfg.seed)  # before building: initialisation is part of the run
    clip = load_clip(cfg.clip, cfg.clip_pretrained, image_tower=cfg.clip_image_tower)
    G, D, G_ema = build(gan_cfg, clip)
    opt_g = torch.optim.Adam(G.trainable_parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.trainable_parameters(), lr=cfg.lr_d, betas=cfg.betas)
    d_toggle = _Toggle(D.trainable_parameters())

    state = load_state(resume_from) if resume_from is not None else {}
    if state:
        G.load_trainable_state_dict(state["G"])
        G_ema.load_trainable_state_dict(state["G_ema"])
        D.load_state_dict({**D.state_dict(), **state["D"]})
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
    start_step = int(state.get("step", 0))
    if cfg.channels_last:  # same values, NHWC strides: ~10-15 % faster steps at 64² on CPU (benchmarks/gan_speed.py)
        for module in (G, D, G_ema):
            module.to(memory_format=torch.channels_last)

    accelerator = make_accelerator(run_dir, 1, cfg.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    main = accelerator.is_main_process
    if world > 1:  # no DDP wrapper (see the module docstring): same init everywhere, gradients all-reduced
        G.to(accelerator.device)
        D.to(accelerator.device)
        opt_g, opt_d = accelerator.prepare(opt_g, opt_d)
    else:
        G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    loss_fn = GanLoss(G, D, gan_cfg.loss)
    clip.to(accelerator.device)
    G_ema.to(accelerator.device)
    device = accelerator.device
    sync_params = [*G.trainable_parameters(), *D.trainable_parameters()]

    def backward(loss: torch.Tensor) -> None:
        accelerator.backward(loss)
        if world > 1:
            for p in sync_params:
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.AVG)

    def joint(t: torch.Tensor) -> torch.Tensor:
        if world == 1:
            return t
        t = t.detach().float().clone()
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.AVG)
        return t

    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_run_config(run_dir, {**cfg.__dict__, "gan": gan_cfg.to_dict(), "num_processes": world})
    n_g, n_d = count_parameters(G), count_parameters(D)
    accelerator.init_trackers("gan", config={k: str(v) for k, v in cfg.__dict__.items()})
    log = run_logger(run_dir / "train.log", main)

    log(
        json.dumps(
            {
                "start_step": start_step,
                "variant": gan_cfg.name,
                "G_params": n_g,
                "D_params": n_d,
                "resolution": G.resolution,
                "num_processes": world,
            }
        )
    )
    k = gan_cfg.discriminator.group_std
    stream = make_stream(
        cfg.data,
        size=G.resolution,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        rank=rank,
        world_size=world,
        start_batch=start_step,
        split="train",
        **({"group_size": k} if k else {}),
    )
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.num_workers)
    timer = Timer(cfg.max_minutes)
    timer.start -= float(state.get("elapsed_s", 0.0))
    skipped = dict(state.get("skipped", {"D": 0, "G": 0}))
    guard = NonFiniteGuard(cfg.max_nonfinite_steps)

    sample_prompts, sample_seeds = _sample_set(cfg.data, G.resolution)
    evaluator = None

    def run_eval(step: int) -> None:
        nonlocal evaluator
        from clip_t2i.gan.evaluate import EvalSpec, GanEvaluator

        if evaluator is None:
            evaluator = GanEvaluator(clip, cfg.data, G.resolution, EvalSpec(n_fid=cfg.eval_n_fid), cfg.eval_judge)
            if evaluator.judge is None:
                log(json.dumps({"note": "no shapes-judge available: judge metrics skipped, FID on CLIP features"}))
        res = evaluator(G_ema)
        res = {k: v for k, v in res.items() if v is not None}
        accelerator.log({f"eval/{k}": v for k, v in res.items() if isinstance(v, int | float)}, step=step)
        with open(run_dir / "eval.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "elapsed_s": round(timer.elapsed_s, 1), **res}) + "\n")

    def sample_grid(step: int) -> None:
        from clip_t2i.gan.sample import generate
        from clip_t2i.renderers.outputs import make_grid, save_png

        imgs = generate(G_ema, clip, sample_prompts, sample_seeds)
        grid = make_grid(imgs, ncol=len(set(sample_seeds)), pad=1, min_side=imgs.shape[-1])
        save_png(
            run_dir / "samples" / f"step_{step:07d}.png",
            grid,
            {
                "kind": "grid",
                "step": step,
                "prompts": list(dict.fromkeys(sample_prompts)),
                "rows": "prompts",
                "columns": "seeds 0..7",
                "model": "G_ema",
            },
            sidecar=False,
        )
        tracker = accelerator.get_tracker("tensorboard", unwrap=True)
        if tracker is not None and hasattr(tracker, "add_image"):
            tracker.add_image("samples", grid, step)

    def checkpoint(step: int) -> None:
        save_checkpoint_on_main(
            accelerator,
            run_dir,
            step,
            lambda p: save_gan(p, G_ema, clip, gan_cfg, cfg.clip, steps=step, embed_clip=cfg.embed_clip),
            lambda: {
                "step": step,
                "G": G.trainable_state_dict(),
                "G_ema": G_ema.trainable_state_dict(),
                "D": D.trainable_state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "elapsed_s": timer.elapsed_s,
                "skipped": skipped,
            },
        )

    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        disable=not (cfg.progress and main),
        desc=f"train-gan {gan_cfg.name}",
        dynamic_ncols=True,
    )
    data_iter = iter(loader)
    step = start_step
    z_dim = G.z_dim
    sums: dict[str, float] = {}
    n_sums = 0
    with StopOnInterrupt() as stop:
        while step < cfg.steps:
            batch = next(data_iter)
            real = batch["image"].to(device) * 2 - 1
            e = text_embedding(clip, batch["caption"]).to(device)
            z = step_noise(cfg.seed, rank, step, real.shape[0], z_dim).to(device)
            z2 = None
            if gan_cfg.loss.ms_weight > 0:  # the mode-seeking pairs' second latents, from their own stream
                m = max(1, round(gan_cfg.loss.ms_pairs * real.shape[0]))
                z2 = step_noise(cfg.seed + 500_009, rank, step, m, z_dim).to(device)
            st = gan_step(
                G,
                loss_fn,
                opt_g,
                opt_d,
                d_toggle,
                real,
                e,
                z,
                autocast=accelerator.autocast,
                backward=backward,
                on_skip=lambda who, m: log(json.dumps({"skip": who, "msg": m})),
                step=step,
                joint=joint,
                z2=z2,
            )
            step_ok = True
            for who in ("D", "G"):
                was_skipped = bool(st.pop(f"skipped/{who}"))
                skipped[who] += int(was_skipped)
                step_ok = step_ok and not was_skipped
            # skip decisions are joint across processes, so every rank stops at the same step
            guard.record(step_ok, step, log, bar, skipped=skipped)
            ema_update(G_ema, G, min(cfg.ema_beta, (1 + step) / (10 + step)))
            step += 1
            bar.update(1)
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n_sums += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                scalars = {k: v / n_sums for k, v in sums.items()}
                sums, n_sums = {}, 0
                accelerator.log(scalars, step=step)
                bar.set_postfix(D=f"{scalars['D/loss']:.3f}", G=f"{scalars['G/loss']:.3f}")
                log(
                    json.dumps(
                        {
                            "step": step,
                            **{k: round(v, 5) for k, v in scalars.items()},
                            "elapsed_s": round(timer.elapsed_s, 1),
                            "skipped": skipped,
                        }
                    )
                )
            if main and cfg.sample_every and step % cfg.sample_every == 0:
                sample_grid(step)
            if main and cfg.eval_every > 0 and step % cfg.eval_every == 0:
                run_eval(step)
            if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
                checkpoint(step)
            if joint(torch.tensor(float(stop.requested))) > 0:  # any rank's Ctrl-C stops every rank
                stop.requested = True
                break
            if joint(torch.tensor(float(timer.expired))) > 0:
                log(json.dumps({"note": f"time budget of {cfg.max_minutes} min reached at step {step}"}))
                break
    bar.close()
    checkpoint(step)
    raise_if_interrupted(stop, step, cfg.steps, run_dir, "train-gan", log)
    if main and cfg.sample_every and step % cfg.sample_every:
        sample_grid(step)
    if main and (cfg.eval_every == 0 or (cfg.eval_every > 0 and step % cfg.eval_every)):
        run_eval(step)
    done = {"done": True, "step": step, "elapsed_s": round(timer.elapsed_s, 1), "skipped": skipped}
    if world > 1:
        done["ranks_in_sync"] = _ranks_in_sync(G, D, G_ema)
    final = run_dir / "final.safetensors"
    if main:
        save_gan(
            final,
            G_ema,
            clip,
            gan_cfg,
            cfg.clip,
            steps=step,
            embed_clip=cfg.embed_clip,
            extra={"elapsed_s": round(timer.elapsed_s, 1), "num_processes": world},
        )
    log(json.dumps(done))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


def _ranks_in_sync(*modules: torch.nn.Module) -> bool:
    """True if every process holds identical trainable weights and buffers (per-tensor float64 checksums)."""
    with torch.no_grad():
        sums = torch.stack(
            [
                t.detach().double().sum() + (t.detach().double() ** 2).sum()
                for m in modules
                for t in m.trainable_state_dict().values()
                if t.is_floating_point()
            ]
        )
        lo, hi = sums.clone(), sums.clone()
        torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
        torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
    return bool(torch.equal(lo, hi))


def _sample_set(data: str, size: int) -> tuple[list[str], list[int]]:
    """Prompts × seeds of the periodic sample grid (8 prompts × 8 seeds; one row per prompt)."""
    if data == "shapes":
        from clip_t2i.data.shapes import ShapesWorld

        caps = ShapesWorld(size=size, level="one", split="all").canonical_caption_list()
        prompts = [caps[(31 * i) % len(caps)] for i in range(8)]  # varied colour, shape, size, position
    else:
        from clip_t2i.data import make_stream

        batch = next(iter(make_stream(data, size=size, batch_size=8, seed=4242, split="train")))
        prompts = list(batch["caption"])
    return [p for p in prompts for _ in range(8)], [s for _ in prompts for s in range(8)]
