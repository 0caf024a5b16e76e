"""clip_t2i.metrics: image-generation metrics on features, as functions and torchmetrics objects.

============================  ==========================================================================
Fréchet distance              :func:`frechet_distance`, :class:`FrechetDistance` (lower is better)
Precision/recall/density/cov. :func:`compute_prdc`, :func:`precision_recall`, :func:`density_coverage`,
                              :class:`PRDC`
Vendi score                   :func:`vendi_score`, :func:`per_prompt_vendi`, :class:`VendiScore`
PPD / mPPD                    :func:`per_prompt_distance`, :func:`mppd`, :class:`MPPD`
CLIP score                    :func:`compute_clip_score`, :class:`CLIPScore` (needs guide and eval model ids)
Feature extractors            :class:`FeatureExtractor` and :class:`ClipFeatures`, :class:`ModuleFeatures`,
                              :class:`InceptionV3Features`, :class:`DinoV2Features`; :func:`extract_features`
============================  ==========================================================================

Functions take feature tensors ``[N, D]``; metric objects take features, or images when built with a
``feature_extractor``. Bad input raises :class:`clip_t2i.errors.UserError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clip_t2i.utils.lazy import lazy_getattr

if TYPE_CHECKING:
    from clip_t2i.metrics.clip_score import (
        CLIPScore,
        CLIPScoreResult,
        SameModelWarning,
        compute_clip_score,
        same_model_id,
    )
    from clip_t2i.metrics.diversity import MPPD, PerPromptResult, mppd, per_prompt_distance, prompt_groups
    from clip_t2i.metrics.features import (
        ClipFeatures,
        DinoV2Features,
        FeatureExtractor,
        InceptionV3Features,
        ModuleFeatures,
        extract_features,
    )
    from clip_t2i.metrics.frechet import (
        FrechetDistance,
        frechet_distance,
        frechet_distance_from_stats,
        mean_and_covariance,
        trace_sqrt_product,
    )
    from clip_t2i.metrics.prdc import (
        PRDC,
        PRDCResult,
        compute_prdc,
        density_coverage,
        knn_radii,
        precision_recall,
    )
    from clip_t2i.metrics.vendi import VendiScore, per_prompt_vendi, vendi_from_eigenvalues, vendi_score

_EXPORTS: dict[str, tuple[str, ...]] = {
    "clip_score": ("CLIPScore", "CLIPScoreResult", "SameModelWarning", "compute_clip_score", "same_model_id"),
    "diversity": ("MPPD", "PerPromptResult", "mppd", "per_prompt_distance", "prompt_groups"),
    "features": (
        "ClipFeatures",
        "DinoV2Features",
        "FeatureExtractor",
        "InceptionV3Features",
        "ModuleFeatures",
        "extract_features",
    ),
    "frechet": (
        "FrechetDistance",
        "frechet_distance",
        "frechet_distance_from_stats",
        "mean_and_covariance",
        "trace_sqrt_product",
    ),
    "prdc": ("PRDC", "PRDCResult", "compute_prdc", "density_coverage", "knn_radii", "precision_recall"),
    "vendi": ("VendiScore", "per_prompt_vendi", "vendi_from_eigenvalues", "vendi_score"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}


# submodules are imported on first use (torchmetrics takes seconds to import; the CLI need not)
__getattr__ = lazy_getattr(__name__, _WHERE, globals())


__all__ = [
    "CLIPScore",
    "CLIPScoreResult",
    "ClipFeatures",
    "DinoV2Features",
    "FeatureExtractor",
    "FrechetDistance",
    "InceptionV3Features",
    "MPPD",
    "ModuleFeatures",
    "PRDC",
    "PRDCResult",
    "PerPromptResult",
    "SameModelWarning",
    "VendiScore",
    "compute_clip_score",
    "density_coverage",
    "extract_features",
    "frechet_distance",
    "frechet_distance_from_stats",
    "knn_radii",
    "mean_and_covariance",
    "mppd",
    "per_prompt_distance",
    "per_prompt_vendi",
    "compute_prdc",
    "precision_recall",
    "prompt_groups",
    "same_model_id",
    "trace_sqrt_product",
    "vendi_from_eigenvalues",
    "vendi_score",
]
