"""Periodic / final evaluation of a generator: FID, mPPD and judge accuracy on the shapes world.

Shapes (one object), all prompts canonical captions, fixed seeds, so numbers are comparable across runs:

* **FID**: ``n_fid`` fakes for labels drawn balanced over the *train* combinations vs ``n_real`` real renders
  of the same label distribution; on judge penultimate features (``fid_judge``, the primary number; the
  judge never guided training) and on the training CLIP's image embeddings (``fid_clip``; the generator
  optimises that CLIP, so treat it as secondary).
* **mPPD** (project reconstruction: mean pairwise cosine distance per prompt, N = ``ppd_per_prompt`` seeds):
  on judge and CLIP features, for ``ppd_prompts`` prompts; ``*_real`` is the same statistic on real renders
  grouped by label (the data's own per-prompt diversity, the target).
* **CLIP score with an independent CLIP** (``clip_score_eval``, 0-100 scale, on the FID fakes and their
  prompts; ``clip_score_eval_real`` is the same on the real renders, the ceiling): only when an ``eval_clip``
  is given — a CLIP that did not guide training (the zoo ``shapes-clip-rn``: another architecture, trained
  separately). Scoring with the training CLIP would reward what G was optimised for.
* **FID floor** (``fid_judge_real``, ``fid_clip_real``): the same FID between a second set of ``n_fid`` real
  renders of the fakes' own captions (the same labels, fresh nuisance factors from seed ``seed + 1``) and the real
  statistics, i.e. FID(real, real′) at the fakes' N and captions: the score of a generator that renders the
  world. FID is biased upwards at small N, so a generator is judged by its ratio to this floor, not by the raw
  number; below N = ``n_real`` the fakes' captions are a random part of the reference's, and the label-histogram
  mismatch that adds to both pulls the ratio towards 1 (read the ratio at ``n_fid = n_real``).
* **Judge accuracy**: ``judge_recognised``, per attribute and ``all`` (colour+shape+position) on the FID fakes
  (seen combinations) and on ``heldout_per_label`` fakes of each of the 24 held-out combinations (compositional
  generalisation). By default (``judge="auto"``) the verdicts come from analysis by synthesis
  (:mod:`clip_t2i.metrics.judges`; unrecognisable images count as wrong) and the legacy CNN ``shapes-judge``
  only supplies the FID / mPPD features; ``judge="legacy"`` (or a CNN judge / judge file) reproduces the old
  CNN verdicts (no ``judge_recognised``).
* **Factor diversity** (``factor_diversity``, default judge only): for each mPPD prompt, the std over seeds of
  every nuisance factor the fit reads back (offset, scale, rotation, background level / tint / gradient) over
  its recognised images, divided by the same std on real renders of that caption; per factor and ``mean``, and
  ``mean_capped`` (``factor_diversity_capped``): each per-prompt ratio capped at 1 first, so excess variety in one
  factor (a GAN's background gradients, say) cannot hide collapse in another (its positions).
  ``mppd_pixels`` (and ``mppd_pixels_real``) is mPPD on centred 16x16 pixels, features that see those factors.

With ``judge="none"`` the judge numbers are skipped and ``judge: null`` says so.
Other data sources get FID and mPPD on CLIP features against real batches of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.gan.sample import generate


@dataclass(frozen=True)
class EvalSpec:
    """Sizes of the evaluation sets (fixed seeds)."""

    n_fid: int = 480  # fakes for FID / seen-combination judge accuracy
    n_real: int = 960  # real renders for FID statistics
    ppd_prompts: int = 24  # prompts for mPPD
    ppd_per_prompt: int = 8  # seeds per mPPD prompt
    heldout_per_label: int = 4  # fakes per held-out combination
    seed: int = 1234
    batch_size: int = 256


def pick_ppd_prompts(real_labels: Tensor, captions: list[str], spec: EvalSpec) -> list[str]:
    """The shapes mPPD prompts: ``spec.ppd_prompts`` of the labels among the real evaluation renders, drawn with
    seed ``spec.seed``, as canonical ``captions``."""
    seen = sorted(set(real_labels.tolist()))
    g = torch.Generator().manual_seed(spec.seed)
    return [captions[seen[i]] for i in torch.randperm(len(seen), generator=g)[: spec.ppd_prompts].tolist()]


def ppd_set(prompts: list[str], spec: EvalSpec) -> tuple[list[str], list[int]]:
    """The mPPD images' prompts and seeds: each prompt ``spec.ppd_per_prompt`` times with seeds
    ``1000·seed + 7 + i`` (the same seeds for every prompt)."""
    n, seed0 = spec.ppd_per_prompt, spec.seed * 1000
    return [p for p in prompts for _ in range(n)], [seed0 + 7 + i for _ in prompts for i in range(n)]


def resolve_judge(judge: Any) -> Any:
    """The CNN judge behind ``judge`` (FID / mPPD features): ``"auto"``/``"legacy"``: the zoo ``shapes-judge``
    (``"auto"``: None if missing); ``"none"``/None: None; a path or zoo name: that judge (errors if unreadable);
    a CNN judge module: itself; an analysis-by-synthesis judge: the zoo CNN if present."""
    if judge is None or judge == "none":
        return None
    from clip_t2i.metrics.judges.cnn import SHAPES_JUDGE, ShapesJudge, load_judge

    if isinstance(judge, ShapesJudge):
        return judge
    if judge in ("auto", "legacy") or not isinstance(judge, str):
        try:
            return load_judge(SHAPES_JUDGE)
        except UserError:
            if judge == "legacy":
                raise
            return None
    return load_judge(judge)


def resolve_judges(judge: Any) -> tuple[Any, Any]:
    """``(verdict judge, CNN for features)`` for ``judge`` (see :class:`GanEvaluator`)."""
    if judge is None or judge == "none":
        return None, None
    from clip_t2i.metrics.judges.cnn import ShapesJudge

    cnn = resolve_judge(judge)
    if judge == "auto":
        from clip_t2i.metrics.judges.scoring import default_shapes_judge

        return default_shapes_judge(), cnn
    if hasattr(judge, "fit") and not isinstance(judge, ShapesJudge):
        return judge, cnn
    return cnn, cnn  # legacy: the CNN gives both the verdicts and the features


def floor_renders(world: Any, labels: Tensor, seed: int) -> dict[str, Any]:
    """The FID floor's real set: one world render per label (the fakes' captions), nuisance factors from ``seed``."""
    scenes = world.sample_scenes(len(labels), torch.Generator().manual_seed(int(seed)), labels=labels)
    return {"image": world.render(scenes), "label": world.labels(scenes)}


class GanEvaluator:
    """Precomputes the real statistics once; ``evaluator(G) -> dict`` of metrics."""

    def __init__(
        self,
        clip: Any,
        data: str = "shapes",
        size: int = 64,
        spec: EvalSpec | None = None,
        judge: Any = "auto",
        eval_clip: Any = None,
        eval_clip_id: str = "eval-clip",
        guide_clip_id: str | None = "gan-clip",
    ) -> None:
        from clip_t2i.metrics.features import ClipFeatures

        self.spec = spec or EvalSpec()
        self.clip, self.data, self.size = clip, data, size
        self.clip_feats = ClipFeatures(clip, name="gan-eval-clip")
        self.judge, cnn = resolve_judges(judge) if data == "shapes" else (None, None)
        self.judge_feats = None
        self.pixel_feats = None
        self.real_spread = None
        if cnn is not None:
            from clip_t2i.metrics.judges.cnn import judge_feature_extractor

            self.judge_feats = judge_feature_extractor(cnn)
        if self.judge is not None:
            from clip_t2i.metrics.judges.diversity import RealFactorSpread, pixel_feature_extractor

            self.pixel_feats = pixel_feature_extractor()
            self.real_spread = RealFactorSpread(self.judge, seed=self.spec.seed) if hasattr(self.judge, "fit") else None
        sp = self.spec
        if data == "shapes":
            from clip_t2i.data.shapes import ShapesWorld, shapes_eval_set

            real = shapes_eval_set("one", "train", n=sp.n_real, seed=sp.seed, size=size)
            world = ShapesWorld(size=size, level="one", split="all")
            captions = world.canonical_caption_list()
            self.fid_prompts = real["caption"][: sp.n_fid]
            self.ppd_prompts = pick_ppd_prompts(real["label"], captions, sp)
            self.heldout_prompts = [
                captions[i] for i in sorted(world.heldout_labels()) for _ in range(sp.heldout_per_label)
            ]
            real_images, real_groups = real["image"], real["label"].tolist()
            real_captions = list(real["caption"])
        else:
            from clip_t2i.data import make_stream

            stream = make_stream(data, size=size, batch_size=sp.n_real, seed=sp.seed + 7919, split="train")
            batch = next(iter(stream))
            real_images = batch["image"][: sp.n_real]
            self.fid_prompts = list(batch["caption"][: sp.n_fid])
            self.ppd_prompts = list(dict.fromkeys(batch["caption"]))[: sp.ppd_prompts]
            self.heldout_prompts = []
            real_groups = list(batch["caption"][: sp.n_real])
            real_captions = real_groups
        self.real_clip = self._features(self.clip_feats, real_images)
        self.real_judge = self._features(self.judge_feats, real_images) if self.judge_feats is not None else None
        self.real_ppd = {"mppd_clip_real": self._mppd(self.real_clip, real_groups)}
        self.eval_clip, self.eval_clip_id, self.guide_clip_id = eval_clip, eval_clip_id, guide_clip_id
        if eval_clip is not None:
            n = min(len(real_images), len(self.fid_prompts))
            self.real_ppd["clip_score_eval_real"] = self._clip_score(real_images[:n], real_captions[:n])
        if self.real_judge is not None:
            self.real_ppd["mppd_judge_real"] = self._mppd(self.real_judge, real_groups)
        if data == "shapes":  # FID(real, real') at the fakes' N: the floor every fake's FID is read against
            from clip_t2i.metrics.frechet import frechet_distance

            # the fakes' own captions, fresh nuisance factors (module docstring: why not an independent draw)
            real2 = floor_renders(world, real["label"][: len(self.fid_prompts)], sp.seed + 1)["image"]
            self.real_ppd["fid_clip_real"] = float(
                frechet_distance(self._features(self.clip_feats, real2), self.real_clip)
            )
            if self.real_judge is not None:
                self.real_ppd["fid_judge_real"] = float(
                    frechet_distance(self._features(self.judge_feats, real2), self.real_judge)
                )
        if self.pixel_feats is not None:
            self.real_ppd["mppd_pixels_real"] = self._mppd(self._features(self.pixel_feats, real_images), real_groups)

    @torch.no_grad()
    def _features(self, extractor: Any, images: Tensor) -> Tensor:
        return torch.cat([extractor(images[i : i + 256]) for i in range(0, len(images), 256)]).float()

    @torch.no_grad()
    def _clip_score(self, images: Tensor, captions: list[str]) -> float:
        from clip_t2i.metrics.clip_score import compute_clip_score

        return compute_clip_score(
            images,
            list(captions),
            self.eval_clip,
            eval_model_id=self.eval_clip_id,
            guide_model_id=self.guide_clip_id,
            batch_size=self.spec.batch_size,
        ).score

    @staticmethod
    def _mppd(features: Tensor, groups: list) -> float | None:
        from clip_t2i.metrics.diversity import per_prompt_distance

        counts: dict[Any, int] = {}
        for gr in groups:
            counts[gr] = counts.get(gr, 0) + 1
        keep = [i for i, gr in enumerate(groups) if counts[gr] >= 2]
        if not keep:
            return None
        return float(per_prompt_distance(features[keep], [groups[i] for i in keep], "cosine").mean)

    def __call__(self, G: Any) -> dict[str, Any]:
        from clip_t2i.metrics.frechet import frechet_distance

        sp = self.spec
        seed0 = sp.seed * 1000
        fid_imgs = generate(
            G, self.clip, self.fid_prompts, [seed0 + i for i in range(len(self.fid_prompts))], sp.batch_size
        )
        n = sp.ppd_per_prompt
        ppd_prompts, ppd_seeds = ppd_set(self.ppd_prompts, sp)
        ppd_imgs = generate(G, self.clip, ppd_prompts, ppd_seeds, sp.batch_size)
        ppd_ids = [i for i in range(len(self.ppd_prompts)) for _ in range(n)]
        fake_clip = self._features(self.clip_feats, fid_imgs)
        res: dict[str, Any] = {
            "fid_clip": float(frechet_distance(fake_clip, self.real_clip)),
            "mppd_clip": self._mppd(self._features(self.clip_feats, ppd_imgs), ppd_ids),
            **self.real_ppd,
        }
        if self.eval_clip is not None:
            res["clip_score_eval"] = self._clip_score(fid_imgs, self.fid_prompts)
        if self.judge is None:
            res["judge"] = None
            return res
        from clip_t2i.metrics.judges.scoring import judge_shapes

        if self.judge_feats is not None:
            fake_judge = self._features(self.judge_feats, fid_imgs)
            res["fid_judge"] = float(frechet_distance(fake_judge, self.real_judge))
            res["mppd_judge"] = self._mppd(self._features(self.judge_feats, ppd_imgs), ppd_ids)
        res["mppd_pixels"] = self._mppd(self._features(self.pixel_feats, ppd_imgs), ppd_ids)
        rep = judge_shapes(fid_imgs, self.fid_prompts, self.judge)
        res["judge_name"] = rep.judge
        res.update({f"judge_{k}": v for k, v in rep.accuracy.items()})
        if self.heldout_prompts:
            hs = [seed0 + 99 + i for i in range(len(self.heldout_prompts))]
            held = generate(G, self.clip, self.heldout_prompts, hs, sp.batch_size)
            acc_h = judge_shapes(held, self.heldout_prompts, self.judge).accuracy
            res.update({f"judge_heldout_{k}": v for k, v in acc_h.items()})
        if self.real_spread is not None:
            from clip_t2i.metrics.judges.diversity import factor_diversity

            rep_ppd = judge_shapes(ppd_imgs, ppd_prompts, self.judge)
            fd = factor_diversity(
                rep_ppd.fit, [ppd_prompts[i] for i in rep_ppd.judged], self.judge, real=self.real_spread
            )
            res["factor_diversity"] = {**fd["ratio"], "mean": fd["mean"], "mean_capped": fd["mean_capped"]}
            res["factor_diversity_mean"] = fd["mean"]
            res["factor_diversity_capped"] = fd["mean_capped"]
            res["factor_diversity_prompts"] = fd["n_prompts"]
        return res
