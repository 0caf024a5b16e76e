"""Prototype (issue 13): fine-tune a shapes CLIP's image tower so that its input gradient *draws* — an explicit
gradient-alignment term in the spirit of PAG-ROB (Ganz, Kawar, Elad 2023) with targets from the renderer.

For a seen caption ``c`` with a render ``x*`` (world nuisance drawn at random), a source ``x_src`` (a neutral
start — grey, noise, low-res noise — or, with probability ``p_edit``, the same scene with one attribute changed,
or, with probability ``p_bg``, the same scene's background without the object),
and ``t ~ U(0, 1)``::

    x_t = (1 − t) x_src + t x*,     a = mean_{s ∈ S} cos( vec P_s ∇ₓ cos(f(x_t), g(c)),  vec P_s (x* − x_t) )
    L = λ_clip · L_clip(x*) + λ_align · mean(1 − a) [+ λ_adv · L_clip(x* + δ_adv)]
        [+ λ_distill · mean_{x ∈ {x*, x_t}} (1 − cos(f(x), f_T(x)))]

The optional distillation term (FARE's idea, Schlarmann et al. 2024, on clean inputs) keeps the tower's embedding
of seen renders and of the path images x_t where a frozen teacher ``f_T`` (by default the vanilla ``shapes-clip``,
whose text tower the aligned towers share) puts them, so the embedding geometry that carries zero-shot accuracy to
the held-out combinations is anchored to the teacher's instead of being re-learnt from seen labels alone.

``P_s`` is s×s average pooling (``--align-scales``; S = {1} by default, the plain cosine). ``L_clip`` is the
frozen-text multi-positive InfoNCE of the robust objectives (positives = same label). The alignment term needs
a second-order backward (``create_graph=True``). Only ``split="train"`` combinations are ever rendered, so the
held-out triples stay unseen.

    python experiments/robust/align_proto.py --out runs/align/NAME --steps 600 [--resume]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from clip_t2i.backbones import load_clip
from clip_t2i.data.shapes import COLOURS, POSITIONS, SHAPES, Scenes, ShapesWorld
from clip_t2i.robust.alignment import NEUTRAL_COARSE, flat_cos, neutral_starts
from clip_t2i.robust.attacks import pgd
from clip_t2i.training.losses import multi_positive_info_nce, positive_mask


def edited_sources(world: ShapesWorld, scenes, g: torch.Generator, shape_share: float = 1 / 3) -> torch.Tensor:
    """The same scenes with one of colour / shape / position changed (may leave the seen split: a source only).

    ``shape_share``: probability that the changed attribute is the shape (the rest split between colour and
    position); then ``x* − x_src`` is exactly the difference between two outlines of one colour and place.
    """
    n = len(scenes)
    u = torch.rand(n, generator=g)
    which = torch.where(u < shape_share, 1, torch.where(u < (1 + shape_share) / 2, 0, 2))
    changed = {}
    for a, (name, values) in enumerate(zip(("colour", "shape", "position"), (COLOURS, SHAPES, POSITIONS), strict=True)):
        old = getattr(scenes, name)[:, 0]
        shift = torch.randint(1, len(values), (n,), generator=g)
        changed[name] = torch.where(which == a, (old + shift) % len(values), old).unsqueeze(1)
    return world.render(scenes.replace(**changed))


def blurred(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image Gaussian-blurred with its own σ ~ U(1.5, 5) px (scaled to 64²), plus pixel noise σ ≤ 0.02."""
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        sigma = (1.5 + 3.5 * float(torch.rand((), generator=g))) * x.shape[-1] / 64
        k = int(2 * round(3 * sigma) + 1)
        r = torch.arange(k, dtype=x.dtype) - k // 2
        w = torch.exp(-0.5 * (r / sigma) ** 2)
        w = w / w.sum()
        xi = F.pad(x[i : i + 1], (k // 2,) * 4, mode="replicate")
        xi = F.conv2d(xi, w.view(1, 1, 1, k).expand(3, 1, 1, k), groups=3)
        out[i] = F.conv2d(xi, w.view(1, 1, k, 1).expand(3, 1, k, 1), groups=3)[0]
    noise = 0.02 * torch.rand(x.shape[0], 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g)
    return (out + noise).clamp(0, 1)


def on_own_background(scenes: Scenes, x: torch.Tensor) -> Scenes:
    """``scenes`` re-backgrounded to a flat copy of each image's own (per-channel median of ``x`` ``[n, 3, H, W]``):
    the target ``render − x`` is then the object still to be drawn, not the world's unpredictable background change."""
    med = x.flatten(2).median(2).values  # [n, 3]
    level = med.mean(1)
    return scenes.replace(bg_level=level, bg_tint=med - level[:, None], bg_gradient=torch.zeros(len(x), 2))


def synthesis_lr(age: torch.Tensor, max_age: int, lr: float, lr_final: float = 0.01) -> torch.Tensor:
    """The ``draw`` preset's cosine step-length schedule, read at each chain's age (its step count)."""
    c = 0.5 * (1 + torch.cos(torch.pi * age.clamp(max=max_age).float() / max_age))
    return lr_final + (lr - lr_final) * c


def advance(clip, x: torch.Tensor, tvec: torch.Tensor, age: torch.Tensor, args, g: torch.Generator) -> torch.Tensor:
    """``args.policy_advance`` steps of the synthesis itself on the chains ``x``: an L2-normalised ascent step on
    cos(f(x), g(c)) of the schedule's length at each chain's age, through one view rolled by up to the preset's
    1/8 of the side, clamped to [0, 1]. No parameter gradient is accumulated."""
    shift = max(1, round(x.shape[-1] / 8))
    for k in range(args.policy_advance):
        xr = x.detach().requires_grad_(True)
        dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=g))
        sim = (clip.encode_image(torch.roll(xr, (dy, dx), (2, 3)), normalize=True) * tvec).sum()
        (gr,) = torch.autograd.grad(sim, xr)
        step = synthesis_lr(age + k, args.policy_max_age, args.policy_lr).view(-1, 1, 1, 1)
        x = (xr + step * gr / gr.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)).clamp(0, 1).detach()
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-clipag")
    ap.add_argument("--arch", default=None, help="train a NEW image tower of this project config (random init)")
    ap.add_argument("--text-from", default="shapes-clip", help="with --arch: the CLIP whose text tower is kept")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--align", type=float, default=1.0)
    ap.add_argument("--adv", type=float, default=0.0, help="weight of an adversarial CLIP term (PGD-2, L2)")
    ap.add_argument("--distill", type=float, default=0.0, help="weight of the embedding distillation term")
    ap.add_argument("--teacher", default="shapes-clip", help="frozen CLIP whose image embeddings --distill keeps")
    ap.add_argument("--eps", type=float, default=6.0, help="adversarial L2 radius at 224² (rescaled)")
    ap.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="Gaussian-noise training (Kaur et al. 2019): a contrastive term on x* + σ·N(0, I), σ ~ U[0, NOISE]",
    )
    ap.add_argument("--noise-weight", type=float, default=1.0, help="weight of the --noise term")
    ap.add_argument("--p-edit", type=float, default=0.3)
    ap.add_argument("--edit-shape-share", type=float, default=1 / 3, help="share of edits that change the shape")
    ap.add_argument(
        "--p-blur",
        type=float,
        default=0.0,
        help="share of sources that are x* blurred (Gaussian σ U(1.5, 5) px at 64²) + pixel noise: the target is "
        "the outline's detail, which the caption has to supply",
    )
    ap.add_argument(
        "--p-bg",
        type=float,
        default=0.0,
        help="share of sources that are x*'s own background without the object (+ pixel noise ≤ 0.02): the "
        "target x* − x_src is then the object alone, not the unpredictable background change",
    )
    ap.add_argument(
        "--shape-weights",
        default=None,
        help="comma list, one weight per shape (circle,square,triangle,cross): x*'s labels are drawn from the "
        "seen combinations with these relative weights instead of uniformly",
    )
    ap.add_argument("--clip-weight", type=float, default=1.0, help="weight of the clean contrastive term")
    ap.add_argument("--t-power", type=float, default=1.0, help="t = u^power (power > 1: more weight near x_src)")
    ap.add_argument(
        "--bn-mode",
        choices=("batch", "running"),
        default="batch",
        help="BatchNorm towers (rn-*): batch = losses on batch statistics (train mode, the default); running = "
        "update the running statistics with a no-grad forward of the step's images, then compute every loss in "
        "eval mode, so the input gradient trained is the one generation uses",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--coarse",
        default=None,
        help="PROB,STD of the 8×8 noise added to the neutral sources (default: alignment.NEUTRAL_COARSE): a "
        "random source that can carry the choice of one picture among the caption's many, so the gradient flow "
        "from such a start can end at a render rather than at the caption's mean",
    )
    ap.add_argument(
        "--canonical",
        type=float,
        default=0.0,
        help="share of neutral-source pairs whose target is the caption's canonical render (offset 0, scale 1, "
        "rotation 0) on a flat background at the source's mean level: the flow from a neutral start then points "
        "at one sharp render instead of the mean over the world's nuisance factors, a blob",
    )
    ap.add_argument(
        "--align-scales",
        default="1",
        help="comma list of average-pool factors s: the alignment is mean_s cos(pool_s(∇), pool_s(x* − x_t)); "
        "factors > 1 weigh the low frequencies, where a dark halo around the object cancels the object's own mass "
        "and a shrunken object misses the target's area (default 1: the plain cosine)",
    )
    ap.add_argument(
        "--p-policy",
        type=float,
        default=0.0,
        help="share of the batch whose source is a state of the synthesis itself: persistent chains started at a "
        "neutral start and advanced by the current tower's own normalised gradient steps (the draw preset's "
        "schedule), so the gradient is trained at the partly drawn images generation visits, not only on the "
        "straight path from a neutral start to a render",
    )
    ap.add_argument("--policy-buffer", type=int, default=64, help="number of persistent synthesis chains")
    ap.add_argument("--policy-advance", type=int, default=3, help="synthesis steps per chain per training step")
    ap.add_argument("--policy-max-age", type=int, default=60, help="a chain restarts after this many steps")
    ap.add_argument("--policy-lr", type=float, default=0.5, help="the chains' first step length (cosine to 0.01)")
    ap.add_argument(
        "--fix-stem",
        action="store_true",
        help="a vision_norm 'group' tower: make its stem norm a fixed affine (backbones.loading.fix_stem_norm, "
        "statistics from 128 seen renders and 64 neutral starts) before training, so that the tower is no longer "
        "invariant to the input's contrast and its gradient can add net brightness",
    )
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1))

    if args.arch:
        clip = load_clip(args.arch)
        donor = load_clip(args.text_from).model.state_dict()
        keep = {k: v for k, v in donor.items() if not k.startswith("visual.")}
        missing, unexpected = clip.model.load_state_dict(keep, strict=False)
        assert not unexpected and all(k.startswith("visual.") for k in missing), (missing, unexpected)
    else:
        clip = load_clip(args.model)
    if args.fix_stem:
        from clip_t2i.backbones.loading import fix_stem_norm

        gs = torch.Generator().manual_seed(args.seed * 3 + 2)
        w0 = ShapesWorld(size=clip.image_size, level="one", split="train")
        calib = torch.cat([w0.render(w0.sample_scenes(128, gs)), neutral_starts(64, clip.image_size, gs)])
        fix_stem_norm(clip, calib)
    clip.config["train_data"] = "shapes"  # the world it learns (prompt vocabulary, retrieval priors)
    clip.config["robust"] = {"objective": "align", "align": args.align, "clip_weight": args.clip_weight}
    if args.adv:
        clip.config["robust"].update(adv=args.adv, norm="l2", eps_224=args.eps)
    if args.noise > 0:
        clip.config["robust"].update(noise_sigma_max=args.noise, noise_weight=args.noise_weight)
    teacher = None
    if args.distill > 0:
        clip.config["robust"].update(distill=args.distill, teacher=args.teacher)
        teacher = load_clip(args.teacher).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    for p in clip.text_parameters():
        p.requires_grad_(False)
    clip.logit_scale.requires_grad_(False)
    world = ShapesWorld(size=clip.image_size, level="one", split="train")
    captions = world.canonical_caption_list()
    with torch.no_grad():
        text = clip.encode_text(captions).float()  # [240, D], normalised, frozen
    scale = float(clip.logit_scale.exp())
    allowed, label_w = world.allowed_labels(), None
    if args.shape_weights:
        w = torch.tensor([float(v) for v in args.shape_weights.split(",")])
        assert len(w) == len(SHAPES) and (w >= 0).all() and w.sum() > 0, "--shape-weights: one weight ≥ 0 per shape"
        label_w = w[world.label_attributes(allowed)["shape"]]
    params = [p for p in clip.visual.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4, betas=(0.9, 0.98))
    warm = 30
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warm)
            * 0.5
            * (1 + torch.cos(torch.tensor(torch.pi * min(s, args.steps) / args.steps)).item())
        ),
    )
    start = 0
    ck = out / "state.pt"
    if args.resume and ck.exists():
        state = torch.load(ck, weights_only=True)
        clip.visual.load_state_dict(state["visual"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = int(state["step"])
        print(f"resumed at step {start}", flush=True)
    eps = args.eps * clip.image_size / 224
    scales = [int(v) for v in args.align_scales.split(",")]
    assert scales and all(k >= 1 and clip.image_size % k == 0 for k in scales), "--align-scales: divisors of the size"
    coarse = NEUTRAL_COARSE if args.coarse is None else tuple(float(v) for v in args.coarse.split(","))
    assert len(coarse) == 2 and 0 <= coarse[0] <= 1 and coarse[1] >= 0, "--coarse PROB,STD"
    n_pol = round(args.p_policy * args.batch)
    assert 0 <= n_pol <= args.batch, "--p-policy in [0, 1]"
    pool = None
    pool_w = label_w if label_w is not None else torch.ones(len(allowed))  # the chains' caption draw
    if n_pol and args.resume and ck.exists() and "pool" in state:
        pool = state["pool"]
    elif n_pol:
        gp = torch.Generator().manual_seed(args.seed * 7 + 1)
        npool = args.policy_buffer
        pool_labels = allowed[torch.multinomial(pool_w, npool, True, generator=gp)]
        pool_x = neutral_starts(npool, clip.image_size, gp, coarse=coarse)
        pool_age = torch.randint(0, args.policy_max_age // args.policy_advance, (npool,), generator=gp)
        pool_age = pool_age * args.policy_advance
        pool_age_now = torch.zeros(npool, dtype=torch.long)
        while (pool_age_now < pool_age).any():  # stagger the chains: each starts at its own age
            m = pool_age_now < pool_age
            pool_x[m] = advance(clip, pool_x[m], text[pool_labels[m]], pool_age_now[m], args, gp)
            pool_age_now[m] += args.policy_advance
        pool = {"x": pool_x, "labels": pool_labels, "age": pool_age, "cursor": 0}
    log = open(out / "log.jsonl", "a")
    running_bn = args.bn_mode == "running"
    clip.eval() if running_bn else clip.train()
    t0 = time.time()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    math_attention = sdpa_kernel(SDPBackend.MATH)  # the only CPU kernel with a double backward
    math_attention.__enter__()
    for step in range(start, args.steps):
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        if label_w is not None:
            scenes = world.sample_scenes(
                args.batch, g, allowed[torch.multinomial(label_w, args.batch, True, generator=g)]
            )
        else:  # the uniform draw of the earlier stages, bit for bit
            scenes = world.sample_scenes(args.batch, g)
        if pool is not None:  # the first n_pol items: chains of the synthesis, with renders of their captions
            idx = (pool["cursor"] + torch.arange(n_pol)) % len(pool["labels"])
            pool["cursor"] = int(idx[-1] + 1) % len(pool["labels"])
            pol_lab = pool["labels"][idx]
            pool["x"][idx] = advance(clip, pool["x"][idx], text[pol_lab], pool["age"][idx], args, g)
            pool["age"][idx] += args.policy_advance
            pol = on_own_background(world.sample_scenes(n_pol, g, pol_lab), pool["x"][idx])
            scenes = Scenes.cat([pol, scenes[n_pol:]])
        labels = world.labels(scenes)
        x_star = world.render(scenes)
        tgt = text[labels]
        # clean contrastive term
        feats = clip.encode_image(x_star, normalize=True)
        pos = positive_mask(labels)
        l_clip = multi_positive_info_nce(scale * feats @ tgt.T, pos)
        loss = args.clip_weight * l_clip
        # gradient alignment
        src = neutral_starts(args.batch, clip.image_size, g, coarse=coarse)
        u = torch.rand(args.batch, generator=g)
        edit = u < args.p_edit
        if edit.any():
            src[edit] = edited_sources(world, scenes[edit], g, args.edit_shape_share)
        blur = (u >= args.p_edit) & (u < args.p_edit + args.p_blur)
        if blur.any():
            src[blur] = blurred(x_star[blur], g)
        lo = args.p_edit + args.p_blur
        bg = (u >= lo) & (u < lo + args.p_bg)
        if bg.any():
            sc = scenes[bg]
            empty = world.render(sc.replace(scale=torch.zeros_like(sc.scale)))
            sigma = 0.02 * torch.rand(len(sc), 1, 1, 1, generator=g)
            src[bg] = (empty + sigma * torch.randn(empty.shape, generator=g)).clamp(0, 1)
        if pool is not None:
            src[:n_pol] = pool["x"][idx]
            old = idx[pool["age"][idx] >= args.policy_max_age]  # finished chains restart at a neutral start
            if len(old):
                pool["labels"][old] = allowed[torch.multinomial(pool_w, len(old), True, generator=g)]
                pool["x"][old] = neutral_starts(len(old), clip.image_size, g, coarse=coarse)
                pool["age"][old] = 0
        canon = torch.zeros(args.batch, dtype=torch.bool)
        if args.canonical > 0:  # drawn after every other source draw, so the default run's stream is unchanged
            neutral = u >= lo + args.p_bg
            canon = neutral & (torch.rand(args.batch, generator=g) < args.canonical)
        x_tgt = x_star
        if canon.any():
            sc = scenes[canon]
            k = int(canon.sum())
            flat = sc.replace(
                offset=torch.zeros_like(sc.offset),
                scale=torch.ones_like(sc.scale),
                rotation=torch.zeros_like(sc.rotation),
                bg_level=src[canon].mean((1, 2, 3)).clamp(0, 1),
                bg_tint=torch.zeros(k, 3),
                bg_gradient=torch.zeros(k, 2),
            )
            x_tgt = x_star.clone()
            x_tgt[canon] = world.render(flat)
        t = torch.rand(args.batch, 1, 1, 1, generator=g) ** args.t_power
        x_t = ((1 - t) * src + t * x_tgt).detach().requires_grad_(True)
        if running_bn:
            with torch.no_grad():  # running statistics follow the weights; the losses below see them, not the batch's
                clip.train()
                clip.encode_image(torch.cat([x_star, x_t.detach()]))
                clip.eval()
        sim = (clip.encode_image(x_t, normalize=True) * tgt).sum(-1)
        (grad,) = torch.autograd.grad(sim.sum(), x_t, create_graph=True)
        diff = x_tgt - x_t.detach()
        pooled = [(grad, diff) if k == 1 else (F.avg_pool2d(grad, k), F.avg_pool2d(diff, k)) for k in scales]
        a = torch.stack([flat_cos(gk, dk) for gk, dk in pooled]).mean(0)
        l_align = (1 - a).mean()
        loss = loss + args.align * l_align
        l_adv = torch.zeros(())
        if args.adv > 0:

            def inner(xa: torch.Tensor, pos=pos, tgt=tgt) -> torch.Tensor:
                f = clip.encode_image(xa, normalize=True)
                return -(pos / pos.sum(1, keepdim=True) * F.log_softmax(scale * f @ tgt.T, 1)).sum(1)

            x_adv = pgd(inner, x_star, eps=eps, steps=2, step_size=eps, norm="l2", generator=g)
            fa = clip.encode_image(x_adv.detach(), normalize=True)
            l_adv = multi_positive_info_nce(scale * fa @ tgt.T, pos)
            loss = loss + args.adv * l_adv
        l_noise = torch.zeros(())
        if args.noise > 0:  # L = w · InfoNCE(f(x* + σ ε), text), σ ~ U[0, s] per image, ε ~ N(0, I)
            sigma = args.noise * torch.rand(args.batch, 1, 1, 1, generator=g)
            xn = x_star + sigma * torch.randn(x_star.shape, generator=g)
            l_noise = multi_positive_info_nce(scale * clip.encode_image(xn, normalize=True) @ tgt.T, pos)
            loss = loss + args.noise_weight * l_noise
        l_distill = torch.zeros(())
        if teacher is not None:
            xd = torch.cat([x_star, x_t.detach()])
            with torch.no_grad():
                ft = teacher.encode_image(xd, normalize=True)
            l_distill = (1 - (clip.encode_image(xd, normalize=True) * ft).sum(-1)).mean()
            loss = loss + args.distill * l_distill
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == args.steps - 1:
            rec = {
                "step": step,
                "clip": round(float(l_clip), 4),
                "align_cos": round(float(a.mean()), 4),
                "adv": round(float(l_adv), 4),
                "distill": round(float(l_distill), 4),
                "noise": round(float(l_noise), 4),
                "lr": sched.get_last_lr()[0],
                "s": round(time.time() - t0, 1),
            }
            if n_pol:
                rec["align_cos_policy"] = round(float(a[:n_pol].mean()), 4)
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if (step + 1) % args.ckpt_every == 0 or step == args.steps - 1:
            tmp = ck.with_suffix(".tmp")
            state = {"visual": clip.visual.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}
            if pool is not None:
                state["pool"] = pool
            torch.save({**state, "step": step + 1}, tmp)
            os.replace(tmp, ck)
    clip.eval()
    clip.save(out / "final.safetensors")
    print("saved", out / "final.safetensors", flush=True)


if __name__ == "__main__":
    main()
