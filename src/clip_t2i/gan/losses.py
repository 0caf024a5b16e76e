"""GAN losses: GALIP's baseline and SCAD (SAN semantic + SAN PatchGAN fidelity + MI), as equations in code.

Notation: x real images, x̂ = G(z, c) fakes (detached in the D step), e = e(c) the CLIP sentence embedding
(√E-scaled unit vector, :func:`~clip_t2i.gan.networks.text_embedding`), ē the embeddings rolled by one
within the batch (mismatched captions), sg stop-gradient. SAN logits of a discriminator
f(x, c) = ⟨ω(c), h(x, c)⟩ are ``fun = ⟨sg(ω), h⟩``, ``dir = ⟨ω, sg(h)⟩`` and ``full = ⟨ω, h⟩`` (see
:func:`clip_t2i.gan.networks.san_logits`; with direction "none", all three are the scalar h).

Pure term functions (:func:`hinge_d_loss`, :func:`san_d_loss`, :func:`generator_adv_loss`, :func:`ma_gp`,
:func:`mi_loss`, :func:`clip_cos_loss`) take logits / features and are unit-tested on hand-computed tensors;
:class:`GanLoss` wires them to the networks for one variant (:class:`LossConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.gan.networks import Discriminator, Generator, SanLogits
from clip_t2i.utils.config import dataclass_from_dict

FORMULATIONS = ("hinge", "san")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights of one variant (GALIP defaults in comments)."""

    formulation: str = "hinge"  # hinge: hinge on f (GALIP); san: hinge on fun + Wasserstein on dir (SAN)
    fake_weight: float = 0.5  # weight of the fake term in L_D (GALIP ½; 1 without mismatch pairs)
    mismatch_weight: float = 0.5  # weight of (real image, rolled caption) negatives in L_D (GALIP ½; 0 = off)
    magp_weight: float = 2.0  # matching-aware gradient penalty weight (GALIP 2; 0 = off)
    magp_power: float = 6.0  # exponent p of ‖∇‖ in MA-GP (GALIP 6)
    clip_weight: float = 4.0  # weight of −cos(CLIP(G(z, c)), e) in L_G (GALIP 4)
    semantic_weight: float = 1.0  # weight of the text-conditional (CLIP-feature) branch, in L_D and L_G
    fidelity_weight: float = 1.0  # weight of the PatchGAN branch (used when discriminator.fidelity)
    mi_weight: float = 0.0  # λ of L_MI = λ E‖Q(G(z, c)) − z‖² (0 = no Q)
    mi_dims: int = 0  # k > 0: L_MI on z's first k dimensions only (InfoGAN-style codes); 0 = all of z
    ms_weight: float = 0.0  # λ of MSGAN's mode-seeking term on pairs G(z1, c), G(z2, c) (0 = off; issue 16)
    ms_pairs: float = 0.5  # fraction of the batch re-generated with a second z for the mode-seeking pairs

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossConfig:
        return dataclass_from_dict(cls, data, "loss")

    def validate(self) -> None:
        if self.formulation not in FORMULATIONS:
            raise UserError(f"loss.formulation must be one of {list(FORMULATIONS)}, got {self.formulation!r}")
        for name in (
            "fake_weight",
            "mismatch_weight",
            "magp_weight",
            "clip_weight",
            "semantic_weight",
            "fidelity_weight",
            "mi_weight",
            "ms_weight",
        ):
            v = getattr(self, name)
            if not isinstance(v, int | float) or v != v or v < 0 or v == float("inf"):
                raise UserError(f"loss.{name} (λ) must be a finite number ≥ 0, got {v}")
        if isinstance(self.mi_dims, bool) or not isinstance(self.mi_dims, int) or self.mi_dims < 0:
            raise UserError(f"loss.mi_dims must be an integer ≥ 0 (0 = all of z), got {self.mi_dims!r}")
        if not 0 < self.ms_pairs <= 1:
            raise UserError(f"loss.ms_pairs must lie in (0, 1] (a fraction of the batch), got {self.ms_pairs}")
        if self.magp_power <= 0:
            raise UserError(f"loss.magp_power must be > 0, got {self.magp_power}")
        if self.fake_weight == 0:
            raise UserError("loss.fake_weight must be > 0 (the discriminator must see fakes)")


# ------------------------------------------------------------------------------------------------ terms
def hinge_d_loss(
    real: Tensor,
    fake: Tensor,
    mismatch: Tensor | None = None,
    fake_weight: float = 0.5,
    mismatch_weight: float = 0.5,
) -> Tensor:
    """Hinge discriminator loss (GALIP with the default weights).

    ``L_D = E_x relu(1 − f(x, e)) + w_f · E_x̂ relu(1 + f(x̂, e)) + w_m · E_x relu(1 + f(x, ē))``;
    logits of any shape (e.g. per patch) are averaged. The mismatch term is dropped when ``mismatch`` is None.
    """
    loss = F.relu(1 - real).mean() + fake_weight * F.relu(1 + fake).mean()
    if mismatch is not None:
        loss = loss + mismatch_weight * F.relu(1 + mismatch).mean()
    return loss


def san_d_loss(
    real: SanLogits,
    fake: SanLogits,
    mismatch: SanLogits | None = None,
    fake_weight: float = 1.0,
    mismatch_weight: float = 0.5,
) -> Tensor:
    """SAN discriminator loss (sony/san ``compute_loss_san``, fixed fun/dir assignment of 2024-06-13).

    ``L_D = E_x relu(1 − fun(x)) − E_x dir(x) + w_f · [E_x̂ relu(1 + fun(x̂)) + E_x̂ dir(x̂)]
    + w_m · [E_x relu(1 + fun(x, ē)) + E_x dir(x, ē)]``: the hinge part trains h (and the scale ‖w‖) with ω
    fixed, the Wasserstein part trains the direction ω with h fixed. SCAD: w_f = 1, no mismatch term.
    """
    loss = F.relu(1 - real.fun).mean() - real.dir.mean()
    loss = loss + fake_weight * (F.relu(1 + fake.fun).mean() + fake.dir.mean())
    if mismatch is not None:
        loss = loss + mismatch_weight * (F.relu(1 + mismatch.fun).mean() + mismatch.dir.mean())
    return loss


def generator_adv_loss(fake: Tensor) -> Tensor:
    """``L_G = −E_x̂ f(x̂, e)`` on the full (un-split) logit, for hinge and SAN alike."""
    return -fake.mean()


def ma_gp(out: Tensor, inputs: tuple[Tensor, ...], weight: float = 2.0, power: float = 6.0) -> Tensor:
    """Matching-aware gradient penalty (GALIP), on real pairs, w.r.t. the CLIP features and the text.

    ``MA-GP = w · E_b ‖[∇_feats f(x_b, e_b), ∇_e f(x_b, e_b)]‖₂^p``; ``out`` [B] are the logits of the real
    pairs, ``inputs`` the leaf tensors (features [B, ...], embeddings [B, E]) they were computed from. The
    graph is kept (``create_graph``) so the penalty trains D.
    """
    grads = torch.autograd.grad(out.sum(), inputs, create_graph=True)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], 1)
    return weight * flat.float().square().sum(1).sqrt().pow(power).mean()


def mi_loss(z_hat: Tensor, z: Tensor, dims: int = 0) -> Tensor:
    """``E_b Σ_{j<k} (Q(G(z_b, c_b))_j − z_bj)²`` (squared L2 over the first k = ``dims`` z dimensions, all of
    them for 0; mean over the batch).

    = −log Q(z_{:k} | x̂) up to constants for a unit-variance Gaussian Q (InfoGAN's continuous-code bound): with
    k < z_dim, only those k dimensions are codes the generator must keep recoverable; the rest stay free noise.
    """
    if dims:
        z_hat, z = z_hat[:, :dims], z[:, :dims]
    return (z_hat.float() - z.float()).square().sum(1).mean()


def mode_seeking_loss(x1: Tensor, x2: Tensor, z1: Tensor, z2: Tensor, eps: float = 1e-5) -> Tensor:
    """MSGAN's mode-seeking term (Mao et al., CVPR 2019) on pairs that share a caption c:

    ``E_b 1 / (mean|G(z1_b, c_b) − G(z2_b, c_b)| / mean|z1_b − z2_b| + ε)`` (mean absolute pixel difference
    over mean absolute latent difference, per pair). Minimising it pushes two latents' images of the same caption
    apart in proportion to how far apart the latents are: the generator cannot map z to one image per caption.
    """
    dx = (x1.float() - x2.float()).abs().flatten(1).mean(1)
    dz = (z1.float() - z2.float()).abs().flatten(1).mean(1)
    return (1.0 / (dx / dz + eps)).mean()


def clip_cos_loss(image_emb: Tensor, text_emb: Tensor) -> Tensor:
    """``−E_b cos(CLIP_img(x̂_b), e_b)`` (GALIP's text-image similarity term, before its weight)."""
    return -F.cosine_similarity(image_emb.float(), text_emb.float(), dim=1).mean()


def roll_captions(e: Tensor, shift: int = 1) -> Tensor:
    """Mismatched sentence embeddings: the batch rolled by ``shift`` (GALIP: one, ``cat(sent[1:], sent[:1])``;
    a batch of same-caption groups of k rolls by k, so every image gets another group's caption)."""
    return torch.cat([e[shift:], e[:shift]], 0)


# ---------------------------------------------------------------------------------------------- wiring
class GanLoss:
    r"""Discriminator and generator objectives of one variant.

    Discriminator step (fakes x̂ detached; CLIP features of x and x̂ computed without gradient):

    * semantic branch, weight w_s: ``hinge_d_loss`` (GALIP) or ``san_d_loss`` (SCAD) of f(x, e), f(x̂, e)
      [and f(x, ē) when ``mismatch_weight`` > 0];
    * ``+ ma_gp(f(x, e); CLIP feats of x, e)`` when ``magp_weight`` > 0;
    * fidelity branch (PatchGAN, text-free), weight w_p: the same formulation per patch logit, averaged,
      fake weight 1 and no mismatch;
    * ``+ λ · mi_loss(Q(x̂), z)`` (trains Q; also the trunk Q reads when ``mi_trunk_grad``).

    Generator step (D frozen by the caller, gradients flow through D and the frozen CLIP):

    ``L_G = −w_s E f(x̂, e) − w_p E_patches f_p(x̂) − w_clip E cos(CLIP(x̂), e) + λ E‖Q(x̂) − z‖²``
    (the last over z's first ``mi_dims`` dimensions when that is > 0) ``+ λ_ms mode_seeking_loss(x̂, x̂₂, z, z₂)``
    when ``ms_weight`` > 0, x̂₂ = G(z₂, e) for the first ``ms_pairs`` of the batch (passed in by the step).

    GALIP: hinge, w_f = w_m = ½, MA-GP (2, 6), w_clip = 4, no fidelity, λ = 0.
    """

    def __init__(self, G: Generator, D: Discriminator, cfg: LossConfig) -> None:
        cfg.validate()
        if cfg.formulation == "san" and D.cfg.direction == "none":
            raise UserError("loss.formulation 'san' needs a discriminator direction ('text' or 'global'), not 'none'")
        if cfg.mi_weight > 0 and D.q is None:
            raise UserError("loss.mi_weight > 0 needs a discriminator built with an MI head (with_q=True)")
        self.G, self.D, self.cfg = G, D, cfg

    def _d_branch(self, real: SanLogits, fake: SanLogits, mis: SanLogits | None, fake_w: float, mis_w: float) -> Tensor:
        if self.cfg.formulation == "san":
            return san_d_loss(real, fake, mis, fake_w, mis_w)
        return hinge_d_loss(real.full, fake.full, None if mis is None else mis.full, fake_w, mis_w)

    def _mi_source(self, trunk: Tensor | None, patch_feat: Tensor | None) -> Tensor:
        src = trunk if self.D.cfg.mi_source == "semantic" else patch_feat
        return src if self.D.cfg.mi_trunk_grad else src.detach()

    def discriminator(
        self, real: Tensor, fake: Tensor, e: Tensor, z: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(L_D, stats)`` for real and (detached) fake images in [-1, 1], embeddings e, and the fakes' z."""
        cfg, D = self.cfg, self.D
        fake = fake.detach()
        b = real.shape[0]
        with torch.no_grad():
            feats, _ = D.taps(torch.cat([real, fake]))
        feats_r, feats_f = feats[:b], feats[b:]
        use_gp = cfg.magp_weight > 0
        e_r = e.detach()
        if use_gp:
            feats_r = feats_r.detach().requires_grad_(True)
            e_r = e_r.clone().requires_grad_(True)
        trunk = D.semantic.trunk(torch.cat([feats_r, feats_f]))
        trunk_r, trunk_f = trunk[:b], trunk[b:]
        l_r = D.semantic.logits(trunk_r, e_r)
        l_f = D.semantic.logits(trunk_f, e)
        shift = max(1, D.cfg.group_std)
        l_m = D.semantic.logits(trunk_r, roll_captions(e, shift)) if cfg.mismatch_weight > 0 else None
        loss_sem = self._d_branch(l_r, l_f, l_m, cfg.fake_weight, cfg.mismatch_weight)
        loss = cfg.semantic_weight * loss_sem
        stats = {
            "D/loss_sem": loss_sem.detach(),
            "D/real": l_r.full.detach().mean(),
            "D/fake": l_f.full.detach().mean(),
        }
        if l_m is not None:
            stats["D/mismatch"] = l_m.full.detach().mean()
        if use_gp:
            gp = ma_gp(l_r.full, (feats_r, e_r), cfg.magp_weight, cfg.magp_power)
            loss = loss + gp
            stats["D/magp"] = gp.detach()
        patch_feat_f = None
        if D.fidelity is not None:
            p, pfeat = D.fidelity(torch.cat([real, fake]))
            p_r = SanLogits(*(t[:b] for t in p))
            p_f = SanLogits(*(t[b:] for t in p))
            patch_feat_f = pfeat[b:]
            loss_fid = self._d_branch(p_r, p_f, None, 1.0, 0.0)
            loss = loss + cfg.fidelity_weight * loss_fid
            stats.update(
                {
                    "D/loss_fid": loss_fid.detach(),
                    "D/patch_real": p_r.full.detach().mean(),
                    "D/patch_fake": p_f.full.detach().mean(),
                }
            )
        if cfg.mi_weight > 0:
            if z is None:
                raise ValueError("the MI term needs the fakes' z")
            mi = mi_loss(D.q(self._mi_source(trunk_f, patch_feat_f)), z, cfg.mi_dims)
            loss = loss + cfg.mi_weight * mi
            stats["D/mi"] = mi.detach()
        stats["D/loss"] = loss.detach()
        return loss, stats

    def generator(
        self,
        fake: Tensor,
        e: Tensor,
        z: Tensor | None = None,
        pair: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(L_G, stats)`` for fakes G(z, e) (with graph) in [-1, 1]; ``pair = (G(z₂, e[:m]), z₂)`` for the
        mode-seeking term."""
        cfg, D = self.cfg, self.D
        feats, emb = D.taps(fake, with_embedding=cfg.clip_weight > 0)
        trunk = D.semantic.trunk(feats)
        adv = generator_adv_loss(D.semantic.logits(trunk, e).full)
        loss = cfg.semantic_weight * adv
        stats = {"G/adv_sem": adv.detach()}
        patch_feat = None
        if D.fidelity is not None:
            p, patch_feat = D.fidelity(fake)
            adv_p = generator_adv_loss(p.full)
            loss = loss + cfg.fidelity_weight * adv_p
            stats["G/adv_fid"] = adv_p.detach()
        if cfg.clip_weight > 0:
            cos = clip_cos_loss(emb, e)
            loss = loss + cfg.clip_weight * cos
            stats["G/clip_cos"] = -cos.detach()
        if cfg.mi_weight > 0:
            if z is None:
                raise ValueError("the MI term needs the fakes' z")
            src = trunk if D.cfg.mi_source == "semantic" else patch_feat
            mi = mi_loss(D.q(src), z, cfg.mi_dims)
            loss = loss + cfg.mi_weight * mi
            stats["G/mi"] = mi.detach()
        if cfg.ms_weight > 0:
            if pair is None or z is None:
                raise ValueError("the mode-seeking term needs the fakes' z and a second sample (G(z2, e), z2)")
            fake2, z2 = pair
            m = fake2.shape[0]
            ms = mode_seeking_loss(fake[:m], fake2, z[:m], z2)
            loss = loss + cfg.ms_weight * ms
            stats["G/ms"] = ms.detach()
        stats["G/loss"] = loss.detach()
        return loss, stats
