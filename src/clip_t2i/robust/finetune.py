"""Adversarial fine-tuning of a CLIP's image tower with its text tower frozen (CLIPAG / TeCoA / FARE).

Min-max problem per micro-batch (``l`` = the objective's per-image loss, ``L`` = its batch loss, see
:mod:`clip_t2i.robust.objectives`)::

    min_θ  L(f_θ(x + δ*))  [+ w_clean · L(f_θ(x))],   δ* ≈ argmax_{||δ||_p ≤ ε, x+δ ∈ [0,1]}  Σ_i l_i(f_θ(x_i + δ_i))

Inner maximisation (``attack``):

* ``pgd``  — PGD-k from a random start in the ball, step ``a = step_size · ε`` (default ``2.5 ε / k``);
* ``fast`` — FGSM with random start (Wong et al. 2020): one step of ``a`` (default ``1.25 ε``) from a random
  point, then projection; one extra forward/backward per step;
* ``free`` — free adversarial training (Shafahi et al. 2019): every minibatch is replayed ``m`` times, each
  replay is one optimizer step whose single backward pass gives both the weight gradient and the input
  gradient; ``δ ← Π_ε(δ + a · d(∇_δ L))`` (default ``a = ε``) is carried over between replays and on to the
  next minibatch. A new minibatch is drawn every ``m`` optimizer steps. Costs about one clean step per step;
* ``none`` — clean fine-tuning with the same objective (the cost baseline).

``d(g) = g / ||g||₂`` (L2) or ``sign(g)`` (Linf). The attack runs on the image tower in eval mode and its
gradients reach the images only.

**Devices.** The trained model, FARE's frozen reference model, the class embeddings and every batch live on
``accelerator.device``; the random starts are drawn with a generator created on the images' device and seeded
from ``(seed, step, micro-batch)``, so a CPU run is reproducible and a GPU run never mixes devices.

**ε convention.** An L2 radius is given for 224×224 images (CLIPAG's reported ε = 1.5) and rescaled to the
model's resolution as ``ε_eff = ε · √(H·W / 224²)`` — the radius that keeps the per-pixel RMS perturbation
``ε / √(3·H·W)`` unchanged (64 px: 1.5 → 0.43). Linf radii are per pixel and used as given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from clip_t2i.backbones import ClipModel, load_clip
from clip_t2i.errors import UserError
from clip_t2i.robust.alignment import alignment_loss
from clip_t2i.robust.attacks import _ascent_direction, eval_mode, make_generator, pgd, project
from clip_t2i.robust.config import (
    LABELLED_DATA,
    RobustTrainConfig,
    effective_eps,
    validate,
)
from clip_t2i.robust.objectives import BatchTargets, Objective, get_objective
from clip_t2i.training.checkpoint import load_state, resume_checkpoint, save_checkpoint_on_main
from clip_t2i.training.common import (
    NonFiniteGuard,
    StopOnInterrupt,
    Timer,
    auto_threads,
    check_run_dir,
    loop_should_end,
    make_accelerator,
    param_groups,
    raise_if_interrupted,
    run_logger,
    save_run_config,
    warmup_cosine,
)
from clip_t2i.training.losses import positive_mask


def default_step_size(attack: str, attack_steps: int) -> float:
    """Attack step in units of ε: PGD-k ``2.5/k``, fast ``1.25``, free ``1.0``."""
    return {"pgd": 2.5 / attack_steps, "fast": 1.25, "free": 1.0}.get(attack, 1.0)


# ----------------------------------------------------------------------------------------------- towers
def freeze_text_tower(clip: ClipModel) -> int:
    """Freeze everything but the image tower (text tower, logit scale/bias); return #trainable parameters.

    Raises:
        UserError: no separate text tower, no image-tower parameters, or text embeddings that still depend
            on trainable parameters (weights shared between the towers).
    """
    text = clip.text_parameters()
    visual = list(clip.visual.parameters())
    if not text:
        raise UserError(f"{clip.name} has no separate text tower to freeze")
    if not visual:
        raise UserError(f"{clip.name} has no image-tower parameters to fine-tune")
    for p in clip.model.parameters():
        p.requires_grad_(False)
    for p in visual:
        p.requires_grad_(True)
    with torch.enable_grad():
        probe = clip.encode_text(["a"])
    if probe.requires_grad:
        raise UserError(f"the text tower of {clip.name} cannot be frozen: it shares weights with the image tower")
    return sum(p.numel() for p in visual)


class ImageTower(nn.Module):
    """``pixels in [0, 1] -> f_θ(x)``: a ClipModel's unnormalised image embedding as the trained module."""

    def __init__(self, clip: ClipModel) -> None:
        """Wrap ``clip`` (its parameters become this module's, so accelerate moves and wraps them)."""
        super().__init__()
        self.clip = clip

    def forward(self, pixels: Tensor) -> Tensor:
        """``f_θ(pixels)`` ``[B, D]``, not normalised."""
        return self.clip.encode_image(pixels, normalize=False)


def class_prompts(data: str, clip: ClipModel) -> list[str]:
    """Class prompts whose index is the data's ``label``: canonical captions of all combinations / digits."""
    if data in ("shapes", "shapes2"):
        from clip_t2i.data.shapes import ShapesWorld

        level = "one" if data == "shapes" else "two"
        return ShapesWorld(size=clip.image_size, level=level, split="all").canonical_caption_list()
    if data == "digits":
        from clip_t2i.data.digits import canonical_caption_list

        return canonical_caption_list()
    raise UserError(f"no class prompts for data {data!r}; use {', '.join(LABELLED_DATA)}")


# ------------------------------------------------------------------------------------------------- step
class AdversarialStep:
    """One optimizer step of robust fine-tuning, for every attack mode (the loop and the benchmark use it).

    Args:
        clip: the model (text tower already frozen); ``tower``: the trained module (``ImageTower(clip)``, possibly
            wrapped by accelerate/DDP); ``reference``: frozen initial model (FARE); ``class_features``: frozen
            class-prompt embeddings (TeCoA); ``eps`` is the effective radius at the model's resolution.
    """

    def __init__(
        self,
        clip: ClipModel,
        tower: nn.Module,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        *,
        attack: str = "pgd",
        norm: str = "l2",
        eps: float = 0.43,
        attack_steps: int = 3,
        step_size: float | None = None,
        clean_weight: float = 0.0,
        grad_clip: float = 1.0,
        positives: str = "label",
        reference: ClipModel | None = None,
        class_features: Tensor | None = None,
        accelerator: Any = None,
        seed: int = 0,
        align_weight: float = 0.0,
        align_edit_prob: float = 0.3,
        align_t_power: float = 1.0,
        label_text: Tensor | None = None,
    ) -> None:
        """Store the step's parts and settings (see the class docstring)."""
        self.clip, self.tower, self.objective, self.optimizer = clip, tower, objective, optimizer
        self.attack, self.norm, self.eps, self.attack_steps = attack, norm, eps, attack_steps
        self.step_size = default_step_size(attack, attack_steps) if step_size is None else step_size
        self.clean_weight, self.grad_clip, self.positives = clean_weight, grad_clip, positives
        self.reference, self.class_features = reference, class_features
        self.accelerator, self.seed = accelerator, seed
        self.align_weight, self.align_edit_prob, self.align_t_power = align_weight, align_edit_prob, align_t_power
        self.label_text = label_text  # [K, D] normalised class-prompt embeddings: alignment targets by label
        self.delta: list[Tensor | None] = []  # free AT: carried perturbation per micro-batch slot
        self._text_cache: dict[str, Tensor] = {}

    # ---------------------------------------------------------------- frozen targets
    @torch.no_grad()
    def caption_text(self, captions: list[str]) -> Tensor:
        """Frozen normalised text embeddings of ``captions`` ``[B, D]`` (cached)."""
        missing = [c for c in dict.fromkeys(captions) if c not in self._text_cache]
        if missing:
            with eval_mode(self.clip):
                feats = self.clip.encode_text(missing)
            if len(self._text_cache) > 50_000:
                self._text_cache.clear()
            self._text_cache.update(zip(missing, feats, strict=True))
        return torch.stack([self._text_cache[c] for c in captions])

    @torch.no_grad()
    def targets(self, batch: dict[str, Any]) -> BatchTargets:
        """Frozen per-batch targets (caption / class embeddings, positives, labels, reference embeddings)."""
        clip = self.clip
        t = BatchTargets(scale=float(clip.logit_scale.exp()))
        name = self.objective.name
        if name == "clipag":
            caps = list(batch["caption"])
            t.text = self.caption_text(caps)
            keys = batch["label"] if (self.positives == "label" and "label" in batch) else caps
            t.positives = positive_mask(keys).to(t.text.device)
        elif name == "tecoa":
            if "label" not in batch or self.class_features is None:
                raise UserError("objective tecoa needs labelled data (shapes, shapes2, digits)")
            t.classes, t.labels = self.class_features, batch["label"].to(self.class_features.device)
        elif name == "fare":
            if self.reference is None:
                raise UserError("objective fare needs the frozen reference model")
            with eval_mode(self.reference):
                t.reference = self.reference.encode_image(batch["image"], normalize=False)
        self.objective.check(t)
        return t

    # ---------------------------------------------------------------- inner maximisation
    def perturb(self, x: Tensor, t: BatchTargets, eps: float, generator: torch.Generator | int) -> Tensor:
        """Adversarial images for attack ``pgd`` (PGD-k) or ``fast`` (FGSM from a random start).

        ``generator``: a seed or a generator on ``x``'s device (see :mod:`clip_t2i.robust.attacks`).
        """

        def loss_fn(xa: Tensor) -> Tensor:
            """The objective's per-image loss ``l_i(f_θ(xa_i))``."""
            return self.objective.per_sample(self.clip.encode_image(xa, normalize=False), t)

        steps = self.attack_steps if self.attack == "pgd" else 1
        with eval_mode(self.clip):
            return pgd(
                loss_fn,
                x,
                eps=eps,
                norm=self.norm,
                steps=steps,
                step_size=self.step_size * eps,
                random_start=True,
                generator=generator,
            )

    def _free_start(self, slot: int, x: Tensor, eps: float) -> Tensor:
        """Free AT: ``x`` plus the perturbation carried in ``slot`` (re-projected), or ``x`` for a new slot."""
        while len(self.delta) <= slot:
            self.delta.append(None)
        d = self.delta[slot]
        if d is None or d.shape != x.shape:
            return x.clone()
        return project(x + d, x, eps, self.norm)  # the carried δ, re-projected onto this batch's ball

    # ---------------------------------------------------------------- one step
    def __call__(self, micro_batches: list[dict[str, Any]], *, step: int, eps: float) -> dict[str, float] | None:
        """Accumulate gradients over ``micro_batches`` and take one optimizer step.

        Returns scalars to log, or None if a loss was not finite (the step is skipped, gradients dropped).
        """
        acc = self.accelerator
        n = len(micro_batches)
        stats: dict[str, float] = {"loss": 0.0}
        ok = True
        for slot, batch in enumerate(micro_batches):
            x = batch["image"]
            t = self.targets(batch)
            gen = make_generator((self.seed * 1_000_003 + step) * 64 + slot, x.device)
            x_in = x
            if self.attack in ("pgd", "fast") and eps > 0:
                x_in = self.perturb(x, t, eps, gen)
            elif self.attack == "free":
                x_in = self._free_start(slot, x, eps).requires_grad_(True)
            sync = slot == n - 1
            ctx = acc.no_sync(self.tower) if (acc is not None and not sync and acc.num_processes > 1) else _null()
            with ctx:
                feats = self.tower(x_in)
                loss = self.objective(feats, t)
                total = loss
                if self.clean_weight > 0:
                    clean_loss = self.objective(self.tower(x), t)
                    total = loss + self.clean_weight * clean_loss
                    stats["loss_clean"] = stats.get("loss_clean", 0.0) + float(clean_loss.detach()) / n
                if self.align_weight > 0:
                    align_loss, a = self._alignment(batch, x, gen)
                    total = total + self.align_weight * align_loss
                    stats["align_cos"] = stats.get("align_cos", 0.0) + float(a.mean()) / n
                if not torch.isfinite(total.detach()):
                    ok = False
                    stats["loss"] = float("nan")
                    break
                if acc is not None:
                    acc.backward(total / n)
                else:
                    (total / n).backward()
            stats["loss"] += float(loss.detach()) / n
            if self.attack == "free":
                grad = x_in.grad if x_in.grad is not None else torch.zeros_like(x)
                a = self.step_size * eps
                new = project(x_in.detach() + a * _ascent_direction(grad, self.norm), x, eps, self.norm)
                self.delta[slot] = (new - x).detach()
                x_in = new
            with torch.no_grad():
                stats["delta_l2"] = stats.get("delta_l2", 0.0) + float((x_in - x).flatten(1).norm(dim=1).mean()) / n
                acc_adv = _train_accuracy(self.objective.name, feats.detach(), t)
                if acc_adv is not None:
                    stats["acc_adv"] = stats.get("acc_adv", 0.0) + acc_adv / n
        if not ok:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.grad_clip > 0:
            if acc is not None:
                stats["grad_norm"] = float(acc.clip_grad_norm_(params, self.grad_clip))
            else:
                stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return stats

    def _alignment(self, batch: dict[str, Any], x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """The gradient-alignment term of :mod:`clip_t2i.robust.alignment` on the clean images ``x``."""
        if self.label_text is not None and "label" in batch:
            keys = batch["label"].to(x.device)
            text = self.label_text[keys]
        else:
            caps = list(batch["caption"])
            ids = {c: i for i, c in enumerate(dict.fromkeys(caps))}
            keys = torch.tensor([ids[c] for c in caps], device=x.device)
            text = self.caption_text(caps)
        return alignment_loss(
            self.tower, x, text, keys, gen, edit_prob=self.align_edit_prob, t_power=self.align_t_power
        )


class _null:
    """A do-nothing context manager (no ``no_sync`` needed)."""

    def __enter__(self) -> None:
        """Enter: nothing to do."""
        return None

    def __exit__(self, *exc: object) -> None:
        """Exit: nothing to undo."""
        return None


def _train_accuracy(name: str, feats: Tensor, t: BatchTargets) -> float | None:
    """Fraction of images whose best-matching text is a positive (clipag) / the label (tecoa)."""
    f = torch.nn.functional.normalize(feats.float(), dim=-1)
    if name == "clipag":
        best = (f @ t.text.T).argmax(1)
        return float(t.positives[torch.arange(len(best)), best].mean())
    if name == "tecoa":
        return float(((f @ t.classes.T).argmax(1) == t.labels).float().mean())
    return None


# ------------------------------------------------------------------------------------------------ export
def export_clipag(clip: ClipModel, path: str | Path) -> Path:
    """Write the official CLIPAG layout: ``torch.save({'state_dict': {'module.' + k: v}})`` of the full CLIP.

    It loads back with ``load_clip(arch, pretrained=path)`` where ``arch = clip.name`` (a project config or an
    open_clip architecture).
    """
    from clip_t2i.utils.io import atomic_write

    sd = {"module." + k: v.detach().cpu().clone() for k, v in clip.model.state_dict().items()}
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save({"state_dict": sd}, tmp)
    return path


def verify_clipag_export(clip: ClipModel, path: str | Path) -> None:
    """Load ``path`` with ``load_clip(clip.name, pretrained=path)`` and check every tensor is identical."""
    back = load_clip(clip.name, pretrained=str(path))
    ref = clip.model.state_dict()
    for k, v in back.model.state_dict().items():
        if not torch.equal(v.cpu(), ref[k].cpu()):
            raise UserError(f"CLIPAG export {path} does not round-trip ({k} differs)")


# ------------------------------------------------------------------------------------------------- loop
def robustify(cfg: RobustTrainConfig, echo: Callable[[str], Any] | None = print) -> Path:
    """Adversarially fine-tune ``cfg.model``'s image tower; return the path of ``final.safetensors``."""
    from clip_t2i.data import make_stream

    validate(cfg)
    run_dir = Path(cfg.out)
    check_run_dir(run_dir, cfg.resume)
    auto_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    resume_from = resume_checkpoint(run_dir, cfg.resume)
    clip = (
        load_clip(resume_from / "model.safetensors")
        if resume_from is not None
        else load_clip(cfg.model, cfg.pretrained, image_tower=cfg.image_tower)
    )
    n_trainable = freeze_text_tower(clip)
    eps = effective_eps(cfg.eps, clip.image_size, cfg.norm)
    reference = None
    if cfg.objective == "fare":  # f_0: always the *initial* model, also when resuming
        reference = load_clip(cfg.model, cfg.pretrained, image_tower=cfg.image_tower)
        reference.requires_grad_(False)
    accelerator = make_accelerator(run_dir, 1, cfg.mixed_precision)  # accumulation is done by AdversarialStep
    if reference is not None:  # the FARE target f_0(x) is computed on the batches, which live on the device
        reference.to(accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    state = load_state(resume_from) if resume_from is not None else {}
    start_step = int(state.get("step", 0))
    replays = cfg.free_replays if cfg.attack == "free" else 1
    clip.config["train_data"] = clip.config.get("train_data", cfg.data if cfg.data in LABELLED_DATA else "custom")
    clip.config["robust"] = {
        "objective": cfg.objective,
        "attack": cfg.attack,
        "norm": cfg.norm,
        "eps_224": cfg.eps,
        "eps": eps,
        **({"align_weight": cfg.align_weight} if cfg.align_weight > 0 else {}),
    }
    msg = (
        f"robustify: objective {cfg.objective}, attack {cfg.attack}, {cfg.norm} ε = {cfg.eps:g}"
        + (f" at 224² → effective ε = {eps:.4g} at {clip.image_size}²" if cfg.norm == "l2" else " (per pixel)")
        + f", {n_trainable:,} trainable image-tower parameters, text tower frozen"
    )
    if accelerator.is_main_process and echo is not None:
        echo(msg)

    stream = make_stream(
        cfg.data,
        size=clip.image_size,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        rank=rank,
        world_size=world,
        start_batch=(start_step // replays) * cfg.grad_accum,
        split="train",
    )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_run_config(run_dir, cfg)
        accelerator.init_trackers("robust", config={k: str(v) for k, v in cfg.__dict__.items()})
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.num_workers)

    clip.train()
    tower = ImageTower(clip)
    optimizer = torch.optim.AdamW(param_groups(tower, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, cfg.steps))
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
    model, optimizer = accelerator.prepare(tower, optimizer)
    class_features = None
    if cfg.objective == "tecoa" or (cfg.align_weight > 0 and cfg.data in LABELLED_DATA):
        with torch.no_grad(), eval_mode(clip):
            class_features = clip.encode_text(class_prompts(cfg.data, clip))
    stepper = AdversarialStep(
        clip,
        model,
        get_objective(cfg.objective),
        optimizer,
        attack=cfg.attack,
        norm=cfg.norm,
        eps=eps,
        attack_steps=cfg.attack_steps,
        step_size=cfg.step_size,
        clean_weight=cfg.clean_weight,
        grad_clip=cfg.grad_clip,
        positives=cfg.positives,
        reference=reference,
        class_features=class_features if cfg.objective == "tecoa" else None,
        accelerator=accelerator,
        seed=cfg.seed * 7919 + rank,
        align_weight=cfg.align_weight,
        align_edit_prob=cfg.align_edit_prob,
        align_t_power=cfg.align_t_power,
        label_text=class_features if cfg.align_weight > 0 else None,
    )
    if "delta" in state:
        stepper.delta = [d if d.numel() else None for d in state["delta"]]
    timer = Timer(cfg.max_minutes)
    timer.start -= float(state.get("elapsed_s", 0.0))
    log_file = run_dir / "train.log"

    log = run_logger(log_file, accelerator.is_main_process)

    log(json.dumps({"start_step": start_step, "eps_224": cfg.eps, "eps_effective": eps, "size": clip.image_size}))

    def checkpoint(step: int) -> None:
        """Save model, optimizer, scheduler, RNG and free-AT state of ``step`` (main process only)."""
        save_checkpoint_on_main(
            accelerator,
            run_dir,
            step,
            clip.save,
            lambda: {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "elapsed_s": timer.elapsed_s,
                "delta": [d if d is not None else torch.empty(0) for d in stepper.delta],
            },
        )

    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        disable=not (cfg.progress and accelerator.is_main_process),
        desc="robustify",
        dynamic_ncols=True,
    )
    data_iter = iter(loader)
    micro: list[dict[str, Any]] | None = None
    step = start_step
    guard = NonFiniteGuard(cfg.max_nonfinite_steps)
    stats: dict[str, float] | None = None
    with StopOnInterrupt() as stop:
        while step < cfg.steps:
            if micro is None or step % replays == 0:
                micro = []
                for _ in range(cfg.grad_accum):
                    b = next(data_iter)
                    micro.append({**b, "image": b["image"].to(accelerator.device).clone()})
            eps_now = eps * min(1.0, (step + 1) / cfg.eps_warmup_steps) if cfg.eps_warmup_steps else eps
            with accelerator.autocast():
                stats = stepper(micro, step=step, eps=eps_now)
            if stats is None:
                log(f"step {step}: non-finite loss, step skipped")
            guard.record(stats is not None, step, log, bar)
            scheduler.step()
            step += 1
            bar.update(1)
            if stats is not None and (step % cfg.log_every == 0 or step == cfg.steps):
                scalars = {**stats, "lr": scheduler.get_last_lr()[0], "eps": eps_now}
                accelerator.log(scalars, step=step)
                bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats.get('acc_adv', float('nan')):.2f}")
                log(
                    json.dumps(
                        {
                            "step": step,
                            **{k: float(f"{v:.5g}") for k, v in scalars.items()},
                            "elapsed_s": round(timer.elapsed_s, 1),
                        }
                    )
                )
            if cfg.eval_every and step % cfg.eval_every == 0 and accelerator.is_main_process:
                res = quick_robust_eval(clip, cfg.data, eps, cfg.norm)
                if res:
                    accelerator.log({f"eval/{k}": v for k, v in res.items()}, step=step)
                    log(json.dumps({"step": step, "eval": res}))
            if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
                checkpoint(step)
            if loop_should_end(stop, timer, step, log):
                break
    bar.close()
    checkpoint(step)
    raise_if_interrupted(stop, step, cfg.steps, run_dir, "robustify", log)
    final = run_dir / "final.safetensors"
    if accelerator.is_main_process:
        clip.save(final, extra={"steps": str(step), "elapsed_s": f"{timer.elapsed_s:.1f}"})
        if cfg.export_clipag:
            verify_clipag_export(clip, export_clipag(clip, cfg.export_clipag))
        log(json.dumps({"done": True, "step": step, "elapsed_s": round(timer.elapsed_s, 1), "skipped": guard.total}))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


def quick_robust_eval(clip: ClipModel, data: str, eps: float, norm: str, n: int = 150) -> dict[str, float]:
    """Clean and PGD-10 zero-shot accuracy on ``n`` seen images (shapes: exact caption; digits: digit)."""
    from clip_t2i.robust.attacks import clean_accuracy, robust_accuracy
    from clip_t2i.robust.evaluate import labelled_eval_sets, zero_shot_classifier

    if data not in ("shapes", "digits"):
        return {}
    was = clip.training
    clip.eval()
    try:
        sets, prompts = labelled_eval_sets(data, clip.image_size, n=n, seed=4321, splits=("seen", "test"))
        clf = zero_shot_classifier(clip, prompts)
        x, y = next(iter(sets.values()))  # shapes: seen combinations; digits: test split
        device = clip.logit_scale.device
        x, y = x.to(device), y.to(device)
        return {
            "clean": clean_accuracy(clf, x, y, batch_size=n),
            "pgd10": robust_accuracy(clf, x, y, eps=eps, norm=norm, attack="pgd", steps=10, batch_size=n, generator=0),
        }
    finally:
        clip.train(was)
