"""GAN losses: every term against hand-computed tensors; SAN stop-gradient routing; MA-GP vs manual autograd."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.errors import UserError
from clip_t2i.gan.losses import (
    GanLoss,
    LossConfig,
    clip_cos_loss,
    generator_adv_loss,
    hinge_d_loss,
    ma_gp,
    mi_loss,
    mode_seeking_loss,
    roll_captions,
    san_d_loss,
)
from clip_t2i.gan.networks import SanDirection, SanLogits, san_logits
from clip_t2i.gan.variants import get_variant

torch.set_num_threads(1)


def test_hinge_d_loss_hand_computed():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - f): 0, 0.5, 2     -> mean 2.5/3
    fake = torch.tensor([-2.0, 0.0, 1.0])  # relu(1 + f): 0, 1, 2       -> mean 1
    mis = torch.tensor([-0.5, 3.0])  # relu(1 + f): 0.5, 4               -> mean 2.25
    got = hinge_d_loss(real, fake, mis, 0.5, 0.5)
    assert torch.allclose(got, torch.tensor(2.5 / 3 + 0.5 * 1 + 0.5 * 2.25))
    assert torch.allclose(hinge_d_loss(real, fake, None, 1.0), torch.tensor(2.5 / 3 + 1.0))


def test_san_d_loss_hand_computed():
    real = SanLogits(fun=torch.tensor([0.5, 2.0]), dir=torch.tensor([1.0, 3.0]), full=torch.zeros(2))
    fake = SanLogits(fun=torch.tensor([-0.5, 1.0]), dir=torch.tensor([-2.0, 0.0]), full=torch.zeros(2))
    mis = SanLogits(fun=torch.tensor([0.0]), dir=torch.tensor([4.0]), full=torch.zeros(1))
    # real: relu(1-fun) = 0.5, 0 -> 0.25; -E dir = -2 ; fake: relu(1+fun) = 0.5, 2 -> 1.25; +E dir = -1
    assert torch.allclose(san_d_loss(real, fake, None, 1.0), torch.tensor(0.25 - 2 + 1.25 - 1))
    # mismatch (w 0.5): relu(1 + 0) = 1, dir 4 -> 0.5 * 5; fake weight 0.5
    assert torch.allclose(san_d_loss(real, fake, mis, 0.5, 0.5), torch.tensor(0.25 - 2 + 0.5 * 0.25 + 2.5))


def test_generator_adv_mi_clip_terms():
    assert torch.allclose(generator_adv_loss(torch.tensor([1.0, -3.0])), torch.tensor(1.0))
    z = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    zh = torch.tensor([[0.0, 2.0], [3.0, 1.0]])
    assert torch.allclose(mi_loss(zh, z), torch.tensor((1.0 + 0.0 + 9.0 + 4.0) / 2))
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    assert torch.allclose(clip_cos_loss(a, b), torch.tensor(-(2**-0.5 - 1.0) / 2))
    e = torch.arange(6.0).view(3, 2)
    assert torch.equal(roll_captions(e), torch.tensor([[2.0, 3.0], [4.0, 5.0], [0.0, 1.0]]))


def _san_setup(scale: bool):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, 4, generator=g, requires_grad=True)
    v = torch.randn(5, 4, generator=g, requires_grad=True)  # v = W e(c): the unnormalised direction
    norm = v.norm(dim=1)
    logits = san_logits(h, v / norm[:, None], norm if scale else None)
    return h, v, logits


@pytest.mark.parametrize("scale", [False, True])
def test_san_hinge_part_gives_direction_no_gradient(scale):
    h, v, lg = _san_setup(scale)
    hinge = F.relu(1 - lg.fun[:3]).mean() + F.relu(1 + lg.fun[3:]).mean()
    hinge.backward()
    assert h.grad.abs().sum() > 0
    if not scale:
        assert v.grad is None or torch.all(v.grad == 0)  # ω gets no hinge gradient at all
    else:  # only the scale ‖v‖ is trained by the hinge: the gradient w.r.t. v is radial (parallel to v)
        ortho = v.grad - (v.grad * v).sum(1, keepdim=True) * v / v.norm(dim=1, keepdim=True) ** 2
        assert ortho.abs().max() < 1e-6 and v.grad.abs().sum() > 0


@pytest.mark.parametrize("scale", [False, True])
def test_san_wasserstein_part_gives_h_no_gradient(scale):
    h, v, lg = _san_setup(scale)
    wass = -lg.dir[:3].mean() + lg.dir[3:].mean()
    wass.backward()
    assert h.grad is None or torch.all(h.grad == 0)  # h gets no Wasserstein gradient
    # ... and the direction only turns: the gradient w.r.t. v is orthogonal to v (the scale is not trained)
    assert (v.grad * v).sum(1).abs().max() < 1e-6 and v.grad.abs().sum() > 0


def test_san_full_logit_and_values():
    h, v, lg = _san_setup(True)
    expect = (h * v).sum(1)  # <v/|v|, |v| h> = <v, h>
    assert torch.allclose(lg.full, expect, atol=1e-6)
    assert torch.allclose(lg.fun, expect, atol=1e-6) and torch.allclose(lg.dir, expect, atol=1e-6)
    # per-patch logits [B, d, P, P] with a single global direction
    hp = torch.randn(2, 4, 3, 3)
    w = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert torch.allclose(san_logits(hp, w, None).full, hp[:, 1])


def test_san_direction_module_routing():
    """Through the real modules: SAN D loss trains W of ω(c) only via the Wasserstein part when scale='none'."""
    torch.manual_seed(0)
    direction = SanDirection("text", 6, 4)
    e = F.normalize(torch.randn(8, 6), dim=1)
    h = torch.randn(8, 4, requires_grad=True)
    omega, _ = direction(e)
    lg = san_logits(h, omega, None)
    real, fake = SanLogits(*(t[:4] for t in lg)), SanLogits(*(t[4:] for t in lg))
    hinge_only = F.relu(1 - real.fun).mean() + F.relu(1 + fake.fun).mean()
    grad_w = torch.autograd.grad(hinge_only, direction.proj.weight, allow_unused=True, retain_graph=True)[0]
    assert grad_w is None or torch.all(grad_w == 0)
    total = san_d_loss(real, fake)
    gw, gh = torch.autograd.grad(total, [direction.proj.weight, h])
    assert gw.abs().sum() > 0 and gh.abs().sum() > 0


def _manual_magp(D, feats, e, power, weight=2.0, create_graph=False):
    """MA-GP by one autograd call per sample: weight · mean_b ‖[∂f/∂feats_b, ∂f/∂e_b]‖^power."""
    norms = []
    for b in range(feats.shape[0]):
        f = feats[b : b + 1].detach().requires_grad_(True)
        t = e[b : b + 1].detach().requires_grad_(True)
        gf, gt = torch.autograd.grad(D(f, t).sum(), [f, t], create_graph=create_graph)
        norms.append(torch.cat([gf.flatten(), gt.flatten()]).norm())
    return weight * torch.stack(norms).pow(power).mean()


def test_magp_linear_hand_computed_and_nonlinear_manual():
    a = torch.tensor([1.0, 2.0, 2.0])
    bvec = torch.tensor([0.0, 4.0])
    feats = torch.randn(3, 3, requires_grad=True)
    e = torch.randn(3, 2, requires_grad=True)
    out = feats @ a + e @ bvec  # ∇ = (a, b) for every sample, ‖(a, b)‖ = sqrt(9 + 16) = 5
    assert torch.allclose(ma_gp(out, (feats, e), 2.0, 6.0), torch.tensor(2.0 * 5.0**6))
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3 * 2 * 2 + 2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def D(f, t):
        return net(torch.cat([f.flatten(1), t], 1)).squeeze(1)

    f4 = torch.randn(4, 3, 2, 2, requires_grad=True)
    e4 = torch.randn(4, 2, requires_grad=True)
    got = ma_gp(D(f4, e4), (f4, e4), 2.0, 6.0)
    assert torch.allclose(got, _manual_magp(D, f4, e4, 6.0), rtol=1e-5)
    got.backward()  # create_graph: the penalty trains D
    assert net[0].weight.grad.abs().sum() > 0


def test_loss_config_rejects_negative_lambda():
    with pytest.raises(UserError, match="mi_weight"):
        LossConfig(mi_weight=-0.1).validate()
    with pytest.raises(UserError, match="formulation"):
        LossConfig(formulation="wgan").validate()


@pytest.fixture(scope="module")
def tiny():
    from clip_t2i.backbones import load_clip
    from clip_t2i.gan.train import build

    torch.manual_seed(0)
    clip = load_clip("vit-t32")
    out = {}
    for name in ("galip", "scad-mi", "scad-dd"):
        cfg = get_variant(name)
        G, D, _ = build(cfg, clip)
        out[name] = (G, D, GanLoss(G, D, cfg.loss))
    e = F.normalize(torch.randn(4, 128), dim=1)
    return clip, out, e


@pytest.mark.parametrize("name", ["galip", "scad-mi", "scad-dd"])
def test_gan_loss_steps_route_gradients(tiny, name):
    clip, nets, e = tiny
    G, D, loss = nets[name]
    z = torch.randn(4, G.z_dim)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    fake = G(z, e)
    ld, st = loss.discriminator(real, fake, e, z)
    assert torch.isfinite(ld) and "D/loss_sem" in st
    ld.backward()
    assert all(p.grad is None for p in clip.parameters())  # frozen CLIP: no gradients accumulate
    assert all(p.grad is None for p in G.trainable_parameters())  # fakes detached in the D step
    head_w = D.semantic.head.c1.parametrizations.weight.original if name != "galip" else D.semantic.head.c1.weight
    assert head_w.grad is not None and head_w.grad.abs().sum() > 0
    if D.q is not None:
        assert D.q.net[0].weight.grad.abs().sum() > 0 and "D/mi" in st
    D.zero_grad(set_to_none=True)
    d_params = D.trainable_parameters()  # the list, kept: once frozen, D.trainable_parameters() is empty
    for p in d_params:
        p.requires_grad_(False)
    lg, st_g = loss.generator(fake, e, z)
    lg.backward()
    for p in d_params:
        p.requires_grad_(True)
    assert all(p.grad is None for p in d_params)
    assert all(p.grad is None for p in clip.parameters())
    # prompt tokens only act inside the frozen CLIP blocks: a gradient here flows *through* the CLIP
    assert G.fc_prompt.weight.grad is not None and G.fc_prompt.weight.grad.abs().sum() > 0
    assert "G/clip_cos" in st_g and (("G/mi" in st_g) == (name != "galip"))
    G.zero_grad(set_to_none=True)


def _grads(loss, params):
    """d loss / d params (zeros where loss does not depend on a parameter); the graph is kept."""
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _close(a, b, scale, rtol=1e-4):
    """max |a - b| <= rtol · scale, with ``scale`` the magnitude of the largest operand the values were built from.

    Tolerance: each value is a few float32 reductions over <= ~1e4 terms (CLIP features 128×4×4 per tap, z_dim
    100), with relative rounding error ~√n·2^-24 ≲ 1e-5 of the operands; a difference of two such values (L(λ) -
    L(0)) inherits the error of the larger one, hence ``scale``. rtol 1e-4 leaves a 10× margin, while a dropped,
    doubled or mis-weighted term is off by ≥ 1 % of itself.
    """
    a, b = torch.as_tensor(a).detach(), torch.as_tensor(b).detach()
    return float((a - b).abs().max()) <= rtol * float(scale)


def _mag(*tensors) -> float:
    return max(float(torch.as_tensor(t).detach().abs().max()) for t in tensors)


@pytest.mark.parametrize("lam", [0.02, 0.3])  # the scad-mi preset's λ, and another one
def test_mi_term_enters_both_losses_with_lambda(tiny, lam):
    """L(λ) = L(0) + λ · E‖Q(G(z, c)) − z‖² in the G and the D step, in value and in gradient (D step: Q and
    the trunk; G step: G, through the frozen Q); λ = 0 removes the term (Q gets no gradient at all)."""
    _, nets, e = tiny
    G, D, loss = nets["scad-mi"]
    assert loss.cfg.mi_weight == 0.02 and D.q is not None
    on = GanLoss(G, D, dataclasses.replace(loss.cfg, mi_weight=lam))
    off = GanLoss(G, D, dataclasses.replace(loss.cfg, mi_weight=0.0))  # same networks, the term switched off
    g = torch.Generator().manual_seed(7)
    z = torch.randn(4, G.z_dim, generator=g)
    real = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1

    def mi_of(images):  # independent L_MI: Q on the semantic trunk of the images' CLIP features
        return ((D.q(D.semantic.trunk(D.taps(images)[0])) - z) ** 2).sum(1).mean()

    d_params, g_params, q_params = D.trainable_parameters(), G.trainable_parameters(), list(D.q.parameters())
    D.eval()  # spectral norm: no power-iteration step between the calls below, so all of them see the same D
    try:
        fake = G(z, e)
        mi = mi_of(fake)
        assert 50 < float(mi.detach()) < 500  # ≈ z_dim = 100 for an untrained Q: the term is far from negligible
        # G step
        lg_on, st_on = on.generator(fake, e, z)
        lg_off, st_off = off.generator(fake, e, z)
        assert "G/mi" not in st_off and _close(st_on["G/mi"], mi, _mag(mi))
        assert _close(lg_on - lg_off, lam * mi, _mag(lg_off, lam * mi))
        gg_on, gg_off, gg_mi = _grads(lg_on, g_params), _grads(lg_off, g_params), _grads(lam * mi, g_params)
        scale = _mag(*gg_on, *gg_off)
        assert _mag(*gg_mi) > 1e-3 * scale  # the MI gradient on G is not lost in the rounding of the others
        assert all(_close(a - b, m, scale) for a, b, m in zip(gg_on, gg_off, gg_mi, strict=True))
        # D step (fakes detached inside)
        ld_on, sd_on = on.discriminator(real, fake, e, z)
        ld_off, sd_off = off.discriminator(real, fake, e, z)
        mi_d = mi_of(fake.detach())
        assert "D/mi" not in sd_off and _close(sd_on["D/mi"], mi_d, _mag(mi_d))
        assert _close(ld_on - ld_off, lam * mi_d, _mag(ld_off, lam * mi_d))
        gd_on, gd_off, gd_mi = _grads(ld_on, d_params), _grads(ld_off, d_params), _grads(lam * mi_d, d_params)
        scale = _mag(*gd_on, *gd_off)
        assert all(_close(a - b, m, scale) for a, b, m in zip(gd_on, gd_off, gd_mi, strict=True))
        assert _mag(*_grads(ld_off, q_params)) == 0 and _mag(*_grads(ld_on, q_params)) > 0  # λ trains Q
        gq_on, gq_mi = _grads(ld_on, q_params), _grads(lam * mi_d, q_params)  # Q only appears in the MI term
        assert all(_close(a, m, _mag(m)) for a, m in zip(gq_on, gq_mi, strict=True))
    finally:
        D.train()


@pytest.mark.parametrize("weight", [2.0, 5.0])  # GALIP's weight, and another one
def test_magp_term_in_galip_d_loss_matches_manual(tiny, weight):
    """GanLoss.discriminator adds weight · MA-GP (per-sample autograd on the same D, real pairs) and nothing else:
    L_D(w) − L_D(0) equals it in value and in its gradient w.r.t. D (double backprop); w = 0 removes the term."""
    from clip_t2i.gan.train import build

    clip, _, e = tiny
    cfg = get_variant("galip").loss
    assert cfg.magp_weight == 2.0 and cfg.magp_power == 6.0
    torch.manual_seed(0)
    G, D, _ = build(get_variant("galip"), clip)
    with torch.no_grad():  # at init ‖∇f‖ ≈ 0.25, so ‖∇f‖⁶ ≈ 2e-4 would vanish next to the hinge loss: scale f by 5
        D.semantic.head.c2.weight.mul_(5.0)
    on = GanLoss(G, D, dataclasses.replace(cfg, magp_weight=weight))
    off = GanLoss(G, D, dataclasses.replace(cfg, magp_weight=0.0))
    g = torch.Generator().manual_seed(11)
    real = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    fake = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    e3 = e[:3]
    with torch.no_grad():
        feats, _ = D.taps(real)

    def Dfun(f, t):
        return D.semantic.logits(D.semantic.trunk(f), t).full

    manual = _manual_magp(Dfun, feats, e3, 6.0, weight=weight, create_graph=True)
    ld_on, st_on = on.discriminator(real, fake, e3)
    ld_off, st_off = off.discriminator(real, fake, e3)
    assert "D/magp" not in st_off
    assert torch.equal(ld_off, st_off["D/loss_sem"])  # galip, weight 0: the semantic hinge loss alone
    assert float(manual.detach()) > 0.1 * float(ld_off.detach())  # the penalty is comparable to the hinge loss
    # ‖∇f‖ carries the 1e-5 relative error of _close; the 6th power multiplies it by 6: rtol 1e-3 for the penalty
    assert _close(st_on["D/magp"], manual, _mag(manual), rtol=1e-3)
    assert _close(ld_on - ld_off, manual, _mag(ld_off, manual), rtol=1e-3)
    params = [p for p in D.semantic.parameters() if p.requires_grad]
    g_on, g_off, g_man = _grads(ld_on, params), _grads(ld_off, params), _grads(manual, params)
    scale = _mag(*g_on, *g_off)
    assert all(_close(a - b, m, scale, rtol=1e-3) for a, b, m in zip(g_on, g_off, g_man, strict=True))
    assert _mag(*g_man) > 0.01 * scale  # the penalty's gradient reaches D (create_graph) and is not negligible
    c1 = next(i for i, p in enumerate(params) if p is D.semantic.head.c1.weight)
    assert _mag(g_man[c1]) > 0  # e.g. the joint head's first conv


def test_mi_dims_restricts_the_term_to_the_first_k_codes(tiny):
    """mi_dims = k: L_MI = E Σ_{j<k} (Q(x̂)_j − z_j)² in both steps, so changing z beyond k cannot change it, and
    L(k) − L(0 MI) equals λ times that hand-computed sum; k is validated against generator.z_dim."""
    assert torch.allclose(
        mi_loss(torch.zeros(2, 3), torch.tensor([[1.0, 2.0, 5.0], [3.0, 0.0, 7.0]]), 2), torch.tensor(7.0)
    )
    _, nets, e = tiny
    G, D, loss = nets["scad-mi"]
    k, lam = 4, 0.3
    on = GanLoss(G, D, dataclasses.replace(loss.cfg, mi_weight=lam, mi_dims=k))
    off = GanLoss(G, D, dataclasses.replace(loss.cfg, mi_weight=0.0))
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, G.z_dim, generator=g)
    D.eval()
    try:
        fake = G(z, e)
        q = D.q(D.semantic.trunk(D.taps(fake)[0]))
        want = ((q[:, :k] - z[:, :k]) ** 2).sum(1).mean()
        lg_on, st = on.generator(fake, e, z)
        lg_off, _ = off.generator(fake, e, z)
        assert _close(st["G/mi"], want, _mag(want))
        assert _close(lg_on - lg_off, lam * want, _mag(lg_off, lam * want))
        z2 = z.clone()
        z2[:, k:] += 5.0  # the free noise dimensions are not part of the term
        _, st2 = on.generator(fake, e, z2)
        assert torch.equal(st2["G/mi"], st["G/mi"])
        _, sd = on.discriminator(torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, fake, e, z)
        assert _close(sd["D/mi"], want, _mag(want))
    finally:
        D.train()
    for bad in (-1, 1.5, True):
        with pytest.raises(UserError, match="mi_dims"):
            dataclasses.replace(loss.cfg, mi_dims=bad).validate()
    with pytest.raises(UserError, match="z_dim"):
        get_variant("scad-mi").with_overrides(["loss.mi_dims=101"]).validate()
    get_variant("scad-mi").with_overrides(["loss.mi_dims=100"]).validate()


def test_mode_seeking_loss_hand_computed():
    x1 = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    x2 = torch.tensor([[0.0, 1.0], [0.0, 2.0]])  # mean |dx|: 0.5, 1.0
    z1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    z2 = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])  # mean |dz|: 1/3, 1
    # ratios 1.5 and 1.0 -> mean(1/1.5, 1/1) = 5/6 (eps 1e-5 moves it by < 1e-5)
    assert abs(float(mode_seeking_loss(x1, x2, z1, z2)) - 5 / 6) < 2e-5
    assert float(mode_seeking_loss(x1, x1, z1, z2)) > 1e4  # identical images for different z: huge penalty


def test_mode_seeking_term_enters_the_generator_loss(tiny):
    """L_G(λ_ms) = L_G(0) + λ_ms · mode_seeking_loss(x̂[:m], G(z2, e[:m]), z[:m], z2), and its gradient reaches G."""
    _, nets, e = tiny
    G, D, loss = nets["scad-mi"]
    on = GanLoss(G, D, dataclasses.replace(loss.cfg, ms_weight=0.5))
    g = torch.Generator().manual_seed(3)
    z, z2 = torch.randn(4, G.z_dim, generator=g), torch.randn(2, G.z_dim, generator=g)
    D.eval()
    try:
        fake, fake2 = G(z, e), G(z2, e[:2])
        lg_on, st = on.generator(fake, e, z, (fake2, z2))
        lg_off, _ = loss.generator(fake, e, z)
        ms = mode_seeking_loss(fake[:2], fake2, z[:2], z2)
        assert _close(st["G/ms"], ms, _mag(ms)) and _close(lg_on - lg_off, 0.5 * ms, _mag(lg_off, ms))
        assert _mag(*_grads(0.5 * ms, G.trainable_parameters())) > 0
        with pytest.raises(ValueError, match="second sample"):
            on.generator(fake, e, z)
    finally:
        D.train()
    with pytest.raises(UserError, match="ms_pairs"):
        LossConfig(ms_pairs=0.0).validate()
    with pytest.raises(UserError, match="ms_weight"):
        LossConfig(ms_weight=-1.0).validate()


@pytest.mark.parametrize("name", ["galip", "scad-mi", "scad-dd"])
def test_channels_last_is_the_same_computation(name):
    """Training in NHWC (``GanTrainConfig.channels_last``) changes strides, not maths: the same G, D built twice from
    one seed give the same fakes, D loss, G loss and G gradients in either memory format, to float32 rounding (the
    convolutions reduce in another order; :func:`_close`'s rtol 1e-4 of the largest operand bounds that), and no
    layer reshapes a channels-last tensor with ``view``."""
    from clip_t2i.backbones import load_clip
    from clip_t2i.gan.train import build

    torch.manual_seed(0)
    clip = load_clip("vit-t32")
    e = F.normalize(torch.randn(4, 128), dim=1)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    runs = []
    for channels_last in (False, True):
        cfg = get_variant(name)
        torch.manual_seed(1)
        G, D, _ = build(cfg, clip)
        if channels_last:
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        loss = GanLoss(G, D, cfg.loss)
        z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(2))
        fake = G(z, e)
        ld, _ = loss.discriminator(real, fake, e, z)
        lg, _ = loss.generator(fake, e, z)
        grads = _grads(lg, G.trainable_parameters())
        runs.append((fake, ld, lg, grads))
        last_d = D
        clip.to(memory_format=torch.contiguous_format)  # the CLIP is shared: restore it for the next build
    (fa, da, ga, gra), (fb, db, gb, grb) = runs
    assert _close(fa, fb, _mag(fa)) and _close(da, db, _mag(da)) and _close(ga, gb, _mag(ga))
    assert any(p.ndim == 4 and not p.is_contiguous() for p in last_d.parameters())  # NHWC was really used
    # a gradient is a backward pass through every layer of G, the CLIP blocks and D: ~10× the rounding of a loss
    for a, b in zip(gra, grb, strict=True):
        assert _close(a, b, max(_mag(a), 1e-12), rtol=1e-3)
