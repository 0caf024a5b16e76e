"""Guidance engine: prompt parsing, augmentations, losses, projection, keep-best, batching = separate runs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clip_t2i.errors import UserError
from clip_t2i.guidance.augment import (
    ColourJitter,
    Cutout,
    Noise,
    PatchCrop,
    Perspective,
    Resize,
    Translate,
    ViewMaker,
    ViewSettings,
)
from clip_t2i.guidance.loop import GuidanceConfig, dynamic_threshold, run_guidance
from clip_t2i.guidance.losses import GuidanceLoss, cosine_distance, reject_views, spherical_distance
from clip_t2i.guidance.prompts import TextEmbeddingCache, WeightedPrompt, build_targets, parse_prompt
from clip_t2i.renderers.base import build_renderer

torch.set_num_threads(1)


class ToyClip(nn.Module):
    """A tiny deterministic stand-in for a CLIP: conv image tower, hashed text embeddings (dim 16)."""

    image_size = 32
    name = "toy"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.fc = nn.Linear(8 * 8 * 8, 16)
        self.text_calls = 0

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False) if x.shape[-1] != 32 else x
        return F.normalize(self.fc(torch.tanh(self.conv(x)).flatten(1)), dim=-1)

    def encode_text(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        self.text_calls += 1
        rows = [torch.randn(16, generator=torch.Generator().manual_seed(sum(map(ord, t)) + len(t))) for t in texts]
        return F.normalize(torch.stack(rows), dim=-1)


# ------------------------------------------------------------------------------------------------ prompts
def test_parse_weights_and_negatives():
    parts = parse_prompt("a red circle:1 | blurry:-0.5| big : 2.5e-1 |plain")
    assert parts == [
        WeightedPrompt("a red circle", 1.0),
        WeightedPrompt("blurry", -0.5),
        WeightedPrompt("big", 0.25),
        WeightedPrompt("plain", 1.0),
    ]


@pytest.mark.parametrize(
    "spec", ["", "   ", "a red circle:abc", "a:1:2", ":0.5", "a | | b", "blurry:-1", "a:nan", "a:inf"]
)
def test_parse_errors(spec):
    with pytest.raises(UserError) as e:
        parse_prompt(spec)
    assert "\n" not in str(e.value)


def test_text_cache_and_targets():
    clip = ToyClip()
    cache = TextEmbeddingCache(clip)
    t = build_targets(["a:1 | b:-0.5", "c"], cache)
    assert t.embeddings.shape == (2, 2, 16) and t.weights.tolist() == [[1.0, -0.5], [1.0, 0.0]]
    calls = clip.text_calls
    build_targets(["c", "a"], cache)
    assert clip.text_calls == calls and len(cache) == 3  # all cached
    assert torch.allclose(t.positive_direction()[1], t.embeddings[1, 0])


# ----------------------------------------------------------------------------------------------- augments
AUGS = [
    Noise(0.05),
    Noise(0.05, shared=True),
    ColourJitter(),
    Translate(0.125),
    Resize((0.8, 1.2)),
    Cutout(0.5),
    Perspective(0.5),
    PatchCrop(0.5),
]


@pytest.mark.parametrize("aug", AUGS, ids=lambda a: type(a).__name__ + ("-shared" if getattr(a, "shared", 0) else ""))
def test_augmentation_differentiable_shape_seeded(aug):
    x = torch.rand(3, 3, 24, 24, requires_grad=True)
    y = aug(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    y.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    y2 = aug(x, torch.Generator().manual_seed(1))
    y3 = aug(x, torch.Generator().manual_seed(2))
    assert torch.equal(y, y2)
    assert not torch.equal(y, y3)


def test_translate_is_whole_pixel_shift():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 5, 7] = 1.0
    y = Translate(0.25).apply(x, torch.tensor([[2 * 2 / 16, -3 * 2 / 16]]))
    assert y[0, 0, 2, 9].item() == pytest.approx(1.0) and y.sum().item() == pytest.approx(3.0)


def test_patch_noise_shared_and_viewmaker_per_image_seeding():
    maker = ViewMaker(
        ViewSettings(noise_std=0.1, colour=False, translation=0, resize=None, cutout=0, patch_fraction=1.0), "patch"
    )
    x = torch.full((2, 3, 8, 8), 0.5)
    v = maker(x, [torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)], 4)
    assert torch.allclose(v[0], v[3]) and not torch.allclose(v[0], v[4])  # one draw per image
    full = ViewMaker(ViewSettings(perspective=0.3), "global")
    imgs = torch.rand(2, 3, 16, 16)
    both = full(imgs, [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)], 3)
    one = full(imgs[1:], [torch.Generator().manual_seed(6)], 3)
    assert torch.allclose(both[3:], one, atol=1e-6)


# --------------------------------------------------------------------------------------------------- losses
def test_distances_match_hand_computation():
    a = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    b = F.normalize(torch.tensor([[0.0, 1.0], [0.6, 0.8]]), dim=-1)
    assert torch.allclose(cosine_distance(a, b), torch.tensor([1.0, 0.0]))
    # orthogonal unit vectors: chord sqrt(2), arcsin(sqrt(2)/2) = pi/4 -> 2 (pi/4)^2
    assert spherical_distance(a, b)[0].item() == pytest.approx(2 * (math.pi / 4) ** 2, rel=1e-5)
    assert spherical_distance(a, b)[1].item() == pytest.approx(0.0, abs=1e-5)


def test_guidance_loss_weights_and_rejection():
    clip = ToyClip()
    targets = build_targets(["a:2 | b:-1"], TextEmbeddingCache(clip))
    t = targets.embeddings[0]
    g = F.normalize(torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    p = F.normalize(torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    loss = GuidanceLoss("cosine", global_weight=1.5, patch_weight=5.0, patch_rejection=0.4, rejection_mode="worst")
    out = loss(g, p, targets)

    def d(e):  # hand: sum_k w_k (1 - <e, t_k>)
        return 2 * (1 - e @ t[0]) - 1 * (1 - e @ t[1])

    dg = torch.stack([d(e) for e in g[0]]).mean()
    dp = torch.stack([d(e) for e in p[0]])
    kept = dp[dp <= torch.quantile(dp, 0.6)]
    assert out["global"].item() == pytest.approx(dg.item(), abs=1e-5)
    assert out["patch"].item() == pytest.approx(kept.mean().item(), abs=1e-5)
    assert out["loss"].item() == pytest.approx(1.5 * dg.item() + 5 * kept.mean().item(), abs=1e-5)
    best = reject_views(dp[None], 0.4, "best")[0]
    assert torch.equal(best, dp >= torch.quantile(dp, 0.4))


def test_dynamic_threshold_definition():
    x = torch.rand(2, 3, 8, 8) * 1.6 - 0.3  # some pixels outside [0, 1]
    x[1] = x[1].clamp(0.02, 0.98)  # inside: s = 1, plain clamp (identity)
    out = dynamic_threshold(x, 0.95)
    y = (x[0] * 2 - 1).flatten()
    s = max(1.0, torch.sort(y.abs()).values.quantile(0.95).item())
    expect = ((y.clamp(-s, s) / s) + 1) / 2
    assert torch.allclose(out[0].flatten(), expect, atol=1e-6)
    assert torch.allclose(out[1], x[1])
    assert out.min() >= 0 and out.max() <= 1


# ------------------------------------------------------------------------------------------------ the loop
def _cfg(**kw) -> GuidanceConfig:
    base = dict(steps=4, global_views=3, patch_views=2, lr=0.05, snapshot_every=2, perspective=0.2)
    base.update(kw)
    return GuidanceConfig(**base)


class _Recorder:
    """Wraps a renderer and records every rendered image."""

    name = "recorder"

    def __init__(self, inner) -> None:
        self.inner, self.renders = inner, []

    def render(self, params):
        x = self.inner.render(params)
        if torch.is_grad_enabled():
            self.renders.append(x.detach().clone())
        return x

    def project(self, params, fn):
        self.inner.project(params, fn)

    def param_groups(self, params):
        return self.inner.param_groups(params)


def test_keep_best_returns_lowest_global_loss_image():
    clip = ToyClip()
    targets = build_targets(["a", "b"], TextEmbeddingCache(clip))
    rend = _Recorder(build_renderer("pixels", 16, {"init": "grey", "init_noise": 0.2}))
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    params = rend.inner.init(2, gens)
    losses = []
    cfg = _cfg(patch_views=0, steps=6, lr=0.2)

    class Spy(GuidanceLoss):
        def __call__(self, g, p, t):
            out = super().__call__(g, p, t)
            losses.append(out["global"].detach().clone())
            return out

    import clip_t2i.guidance.loop as loop

    orig = loop.GuidanceLoss
    loop.GuidanceLoss = Spy
    try:
        res = run_guidance(rend, params, clip, targets, gens, cfg)
    finally:
        loop.GuidanceLoss = orig
    table = torch.stack(losses)  # [steps, B]
    for b in range(2):
        k = int(table[:, b].argmin())
        assert int(res.best_step[b]) == k
        assert torch.equal(res.images[b], rend.renders[k][b])
    assert [s for s, _ in res.snapshots] == [0, 2, 4, 6]


@pytest.mark.parametrize("renderer", ["pixels", "pyramid"])
def test_batched_equals_separate_runs(renderer):
    """Batching prompts x seeds changes nothing but float round-off; checked in float64, where it is provably tiny.

    In float32 the comparison cannot be tight: batched matmuls reduce in a different order (and split across
    threads differently), and Adam's first steps are ~lr * sign(g), so a pixel whose gradient is within
    round-off of 0 can move by up to 2 * lr per step (seen: 3e-6 .. 1.3e-4 depending on the thread count).
    In float64 (u = 1.1e-16) with gradients clipped to norm 0.01, a reduction over K <= 1e3 terms perturbs a
    gradient entry by at most K * u * 0.01 ~ 1e-15; Adam divides by sqrt(v) + eps >= eps = 1e-8, so one step
    moves a pixel by at most lr * 1e-15 / 1e-8 = 5e-9 more or less, and 3 steps by ~1.5e-8: atol 5e-8.
    """
    from clip_t2i.backbones import load_clip

    clip = load_clip("vit-t32", dtype=torch.float64)
    prompts, seeds = ["a red circle", "a blue square:1 | blurry:-0.5"], [0, 7]
    pairs = [(p, s) for p in prompts for s in seeds]
    cfg = _cfg(steps=3, grad_clip=0.01)
    cache = TextEmbeddingCache(clip)
    opts = {"init": "grey", "init_noise": 0.1, "levels": 3} if renderer == "pyramid" else {"init": "grey"}
    rend = build_renderer(renderer, 32, opts)

    def run(sub):
        gens = [torch.Generator().manual_seed(s) for _, s in sub]
        targets = build_targets([p for p, _ in sub], cache)
        params = [p.detach().double().requires_grad_(p.requires_grad) for p in rend.init(len(sub), gens)]
        return run_guidance(rend, params, clip, targets, gens, cfg).images

    batched = run(pairs)
    separate = torch.cat([run([pair]) for pair in pairs])
    assert batched.dtype == torch.float64
    assert torch.allclose(batched, separate, rtol=0, atol=5e-8)
    assert (batched[0] - batched[1]).abs().max() > 1e-3  # seeds differ (by far more than round-off)


def test_config_validation():
    with pytest.raises(ValueError, match="steps"):
        GuidanceConfig(steps=0).validate()
    with pytest.raises(ValueError, match="projection"):
        GuidanceConfig(projection="tanh").validate()


def test_long_prompt_is_truncated_with_a_warning():
    from clip_t2i.backbones import load_clip

    clip = load_clip("vit-t32")
    long = " ".join(["a red circle"] * 20)
    with pytest.warns(UserWarning, match="truncated"):
        t = build_targets([long], TextEmbeddingCache(clip))
    assert t.embeddings.shape[0] == 1


@pytest.mark.parametrize("side", [32, 64, 128])
def test_normalised_steps_have_one_per_pixel_length_at_every_size(side):
    """grad_normalize + SGD: one step moves each image by exactly lr · √(H·W)/S in L2, S = the CLIP's input side
    (ToyClip: 32), so lr is the step in the CLIP's own input space and the RMS change per pixel, lr / (S·√3), does
    not depend on the render size."""
    clip = ToyClip()
    targets = build_targets(["a", "b"], TextEmbeddingCache(clip))
    rend = build_renderer("pixels", side, {"init": "grey", "init_grey": 0.5, "init_noise": 0.0})
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    params = rend.init(2, gens)
    start = params[0].detach().clone()
    lr = 0.5
    cfg = _cfg(
        steps=1, patch_views=0, optimizer="sgd", lr=lr, weight_decay=0.0, schedule="constant", grad_normalize=True
    )
    run_guidance(rend, params, clip, targets, gens, cfg)
    step = (params[0].detach() - start).flatten(1).norm(dim=1)
    # float32: the step is lr·s·g/‖g‖ summed over ≤ 3·128² terms; relative error ≲ √n · 2⁻²⁴ ≈ 2e-5 (bound 1e-4)
    want = lr * side / clip.image_size
    assert torch.allclose(step, torch.full_like(step, want), rtol=1e-4, atol=0)
    assert float((params[0].detach() - start).abs().max()) < 0.5  # no pixel reached the clamp, so nothing was cut


def test_total_variation_definition():
    """TV(x) = mean |Δ_h x| + mean |Δ_w x| per image: 0 on a constant image; a vertical step edge of contrast 1
    across 3 channels of an 8×8 image has 8 differing horizontal neighbour pairs per channel of 3·8·7."""
    from clip_t2i.guidance.losses import total_variation

    x = torch.zeros(2, 3, 8, 8)
    x[1, :, :, 4:] = 1.0
    tv = total_variation(x)
    assert tv[0] == 0
    assert torch.allclose(tv[1], torch.tensor(8 * 3 / (3 * 8 * 7)), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="tv_weight"):
        GuidanceConfig(tv_weight=-1.0).validate()


def test_tv_weight_adds_the_prior_gradient_and_zero_changes_nothing():
    """One SGD step with λ_tv: the step is the CLIP-only step minus lr·λ_tv·∇TV (checked against autograd);
    λ_tv = 0 is bit-identical to the loop without the term."""
    from clip_t2i.guidance.losses import total_variation

    clip = ToyClip()
    targets = build_targets(["a"], TextEmbeddingCache(clip))
    rend = build_renderer("pixels", 16, {"init": "grey", "init_grey": 0.5, "init_noise": 0.1})

    def one_step(tv_weight):
        gens = [torch.Generator().manual_seed(3)]
        params = rend.init(1, gens)
        start = params[0].detach().clone()
        cfg = _cfg(
            steps=1, patch_views=0, optimizer="sgd", lr=0.01, weight_decay=0.0, grad_clip=0.0, tv_weight=tv_weight
        )
        run_guidance(rend, params, clip, targets, gens, cfg)
        return start, params[0].detach()

    start, plain = one_step(0.0)
    _, again = one_step(0.0)
    assert torch.equal(plain, again)
    _, with_tv = one_step(0.5)
    x = start.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(total_variation(x).sum(), x)
    # no pixel leaves [0, 1] (start 0.5 ± 0.3, steps ≪ 0.2), so the clamp is inactive and the steps add exactly
    assert torch.allclose(with_tv, plain - 0.01 * 0.5 * g, rtol=0, atol=1e-6)
    assert not torch.equal(with_tv, plain)


def test_translation_in_tokens_follows_the_guiding_vit():
    """translation_tokens = k shifts views by up to k · patch / image_size of the side: half a token is 1/8 for
    patch 16 at 64 px and 1/16 for patch 8; a ResNet (no patches) and stand-ins keep ``translation``."""
    from clip_t2i.backbones import load_clip
    from clip_t2i.guidance.loop import resolve_translation

    cfg = GuidanceConfig(translation=0.3, translation_tokens=0.5)
    p16, p8, rn = (load_clip(n) for n in ("vit-t64", "vit-t64p8", "rn-t64"))
    assert (p16.token_fraction, p8.token_fraction, rn.token_fraction) == (0.25, 0.125, None)
    assert resolve_translation(cfg, p16).translation == 0.125
    assert resolve_translation(cfg, p8).translation == 0.0625
    assert resolve_translation(cfg, rn) is cfg and resolve_translation(cfg, ToyClip()) is cfg
    off = GuidanceConfig(translation=0.3)
    assert resolve_translation(off, p8) is off
    with pytest.raises(ValueError, match="translation_tokens"):
        resolve_translation(GuidanceConfig(translation_tokens=4.0), p16)
    with pytest.raises(ValueError, match="translation_tokens"):
        GuidanceConfig(translation_tokens=-1.0).validate()

    # the loop uses the resolved shift: half a token of patch 16 is the same run as translation = 1/8, bit for bit
    targets = build_targets(["a red circle"], TextEmbeddingCache(p16))
    rend = build_renderer("pixels", 64, {"init": "grey", "init_noise": 0.05})

    def run(**kw):
        gens = [torch.Generator().manual_seed(5)]
        return run_guidance(rend, rend.init(1, gens), p16, targets, gens, _cfg(steps=2, patch_views=0, **kw)).images

    assert torch.equal(run(translation=0.9, translation_tokens=0.5), run(translation=0.125))


def test_step_noise_adds_annealed_per_image_noise_after_each_step():
    """step_noise σ: after the optimiser step each image gets σ·√(lr factor)·n, n ~ N(0, 1) from that image's own
    generator, so (one SGD step, constant schedule, clamp inactive) noisy − plain is pure noise of std σ. Over
    3·16² = 768 pixels the sample std has relative error ≈ 1/√(2·768) = 2.6 %, so 15 % is a > 5σ bound; the mean
    is ≈ σ/√768 = 0.036σ per draw (bound 0.2σ). With ``step_noise_side`` the noise is smooth: a bilinear upsampling
    of a 4×4 draw to 16² moves a quarter of a grid cell's jump per pixel, so mean |Δ| / std is 0.25 ± 0.03 over
    2000 draws (bound 0.5), where i.i.d. noise gives 2/√π ≈ 1.13 (bound 0.8). Batching changes nothing."""
    from clip_t2i.guidance.loop import step_noise_like

    clip = ToyClip()
    rend = build_renderer("pixels", 16, {"init": "grey", "init_grey": 0.5, "init_noise": 0.0})
    sigma = 0.01

    def run(seeds, **kw):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        targets = build_targets(["a"] * len(seeds), TextEmbeddingCache(clip))
        params = rend.init(len(seeds), gens)
        cfg = _cfg(steps=1, patch_views=0, optimizer="sgd", lr=0.01, weight_decay=0.0, grad_clip=0.0, **kw)
        run_guidance(rend, params, clip, targets, gens, cfg)
        return params[0].detach()

    plain = run([3])
    assert torch.equal(run([3], step_noise=0.0), plain)
    noisy = run([3], step_noise=sigma)
    assert torch.equal(run([3], step_noise=sigma), noisy)  # seeded
    d = noisy - plain
    assert abs(float(d.std()) / sigma - 1) < 0.15 and abs(float(d.mean())) < 0.2 * sigma
    assert not torch.equal(run([4], step_noise=sigma) - run([4]), d)  # another seed, another draw
    batched = run([3, 4], step_noise=sigma)
    assert torch.allclose(batched, torch.cat([noisy, run([4], step_noise=sigma)]), rtol=0, atol=1e-6)

    smooth = run([3], step_noise=sigma, step_noise_side=4) - plain
    assert float((smooth[..., 1:] - smooth[..., :-1]).abs().mean()) < 0.5 * float(smooth.std())
    assert float((d[..., 1:] - d[..., :-1]).abs().mean()) > 0.8 * float(d.std())  # full-res noise is not smooth
    g = [torch.Generator().manual_seed(0)]
    assert step_noise_like(torch.zeros(1, 5), g).shape == (1, 5)  # non-image parameters: full-shape noise
    with pytest.raises(ValueError, match="step_noise"):
        GuidanceConfig(step_noise=-0.1).validate()
