"""Contrastive CLIP training from scratch (or from any ``load_clip`` model), accelerate-based.

``accelerate launch --num_processes N -m clip_t2i.cli train-clip ...`` runs it data-parallel: every
process draws a disjoint stream (rank-aware data), gradients are averaged by DDP, so all ranks hold the
same weights. Negatives are the process-local batch (no feature gather).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from clip_t2i.backbones import ClipModel, load_clip
from clip_t2i.training.checkpoint import load_state, resume_checkpoint, save_checkpoint_on_main
from clip_t2i.training.common import (
    NonFiniteGuard,
    StopOnInterrupt,
    Timer,
    auto_threads,
    check_run_dir,
    finite_or_skip,
    loop_should_end,
    make_accelerator,
    param_groups,
    raise_if_interrupted,
    run_logger,
    save_run_config,
    warmup_cosine,
)
from clip_t2i.training.config import ClipTrainConfig, validate
from clip_t2i.training.losses import multi_positive_info_nce, positive_mask


def _batch_hash(images: torch.Tensor) -> list[str]:
    return [hashlib.sha1(im.numpy().tobytes()).hexdigest()[:16] for im in images]


def train_clip(cfg: ClipTrainConfig) -> Path:
    """Train a CLIP contrastively; return the path of the final self-describing safetensors file."""
    from clip_t2i.data import make_stream

    validate(cfg)
    run_dir = Path(cfg.out)
    check_run_dir(run_dir, cfg.resume)
    auto_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # before building the model: its initialisation is part of the run
    clip = load_clip(cfg.model, cfg.pretrained, image_tower=cfg.image_tower)
    accelerator = make_accelerator(run_dir, cfg.grad_accum, cfg.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    resume_from = resume_checkpoint(run_dir, cfg.resume)
    if resume_from is not None:
        clip = load_clip(resume_from / "model.safetensors")
    clip.config["train_data"] = cfg.data if cfg.data in ("shapes", "shapes2", "digits") else "custom"
    clip.train()
    state = load_state(resume_from) if resume_from is not None else {}
    start_step = int(state.get("step", 0))

    stream = make_stream(
        cfg.data,
        size=clip.image_size,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        rank=rank,
        world_size=world,
        start_batch=start_step * cfg.grad_accum,
        split="train",
    )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_run_config(run_dir, cfg)
        accelerator.init_trackers("clip", config={k: str(v) for k, v in cfg.__dict__.items()})

    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.num_workers)

    optimizer = torch.optim.AdamW(param_groups(clip, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, cfg.steps))
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
    model, optimizer = accelerator.prepare(clip, optimizer)
    unwrapped: ClipModel = accelerator.unwrap_model(model)
    timer = Timer(cfg.max_minutes)
    timer.start -= float(state.get("elapsed_s", 0.0))
    log_file = run_dir / "train.log"

    log = run_logger(log_file, accelerator.is_main_process)

    def checkpoint(step: int) -> None:
        save_checkpoint_on_main(
            accelerator,
            run_dir,
            step,
            unwrapped.save,
            lambda: {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "elapsed_s": timer.elapsed_s,
            },
        )

    samples_file = run_dir / f"samples_rank{rank}.txt" if cfg.record_samples else None
    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        disable=not (cfg.progress and accelerator.is_main_process),
        desc="train-clip",
        dynamic_ncols=True,
    )
    data_iter = iter(loader)
    step = start_step
    guard = NonFiniteGuard(cfg.max_nonfinite_steps)
    with StopOnInterrupt() as stop:
        while step < cfg.steps:
            for _ in range(cfg.grad_accum):
                batch = next(data_iter)
                images = batch["image"].to(accelerator.device, non_blocking=True)
                if samples_file is not None:
                    with open(samples_file, "a") as f:
                        f.write("\n".join(_batch_hash(batch["image"])) + "\n")
                keys = batch["label"] if (cfg.positives == "label" and "label" in batch) else batch["caption"]
                tokens = unwrapped.tokenize(batch["caption"])
                with accelerator.accumulate(model), accelerator.autocast():
                    logits = model(images, tokens)
                    loss = multi_positive_info_nce(logits.float(), positive_mask(keys).to(logits.device))
                    if not guard.record(finite_or_skip(loss.detach(), step, log), step, log, bar):
                        optimizer.zero_grad(set_to_none=True)
                        continue
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            with torch.no_grad():
                unwrapped.model.logit_scale.clamp_(0, 4.6052)  # s ≤ 100, as in CLIP
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                scalars = {
                    "loss": loss.item(),
                    "lr": scheduler.get_last_lr()[0],
                    "logit_scale": unwrapped.logit_scale.exp().item(),
                }
                accelerator.log(scalars, step=step)
                bar.set_postfix(loss=f"{scalars['loss']:.3f}", s=f"{scalars['logit_scale']:.1f}")
                log(json.dumps({"step": step, **scalars, "elapsed_s": round(timer.elapsed_s, 1)}))
            if cfg.eval_every and step % cfg.eval_every == 0 and accelerator.is_main_process:
                _quick_eval(unwrapped, cfg.data, accelerator, step, log)
            if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
                checkpoint(step)
            if loop_should_end(stop, timer, step, log):
                break
    bar.close()
    checkpoint(step)
    raise_if_interrupted(stop, step, cfg.steps, run_dir, "train-clip", log)
    if cfg.record_samples:
        digest = hashlib.sha1()
        for k, v in sorted(unwrapped.model.state_dict().items()):
            digest.update(k.encode() + v.detach().cpu().float().numpy().tobytes())
        (run_dir / f"weights_rank{rank}.sha1").write_text(digest.hexdigest() + "\n")
    final = run_dir / "final.safetensors"
    if accelerator.is_main_process:
        unwrapped.save(final, extra={"steps": str(step), "elapsed_s": f"{timer.elapsed_s:.1f}"})
        log(json.dumps({"done": True, "step": step, "elapsed_s": round(timer.elapsed_s, 1), "skipped": guard.total}))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


def _quick_eval(clip: ClipModel, data: str, accelerator, step: int, log) -> None:
    from clip_t2i.metrics.zeroshot import quick_zero_shot

    was_training = clip.training
    clip.eval()
    res = quick_zero_shot(clip, data)
    clip.train(was_training)
    if res:
        accelerator.log({f"eval/{k}": v for k, v in res.items()}, step=step)
        log(json.dumps({"step": step, "eval": res}))
