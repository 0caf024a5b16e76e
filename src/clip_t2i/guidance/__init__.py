"""The guidance engine shared by every renderer: prompts, views, losses and the optimisation loop.

* :mod:`~clip_t2i.guidance.prompts`: pixray-style weighted / negative prompts, cached text embeddings.
* :mod:`~clip_t2i.guidance.augment`: differentiable, per-image-seeded views (DiffAugment, patches, perspective,
  noise).
* :mod:`~clip_t2i.guidance.losses`: cosine and spherical distances, global + patch terms, patch rejection.
* :mod:`~clip_t2i.guidance.loop`: :class:`GuidanceConfig` and :func:`run_guidance` (batched over prompts x seeds).
"""

from __future__ import annotations

from clip_t2i.utils.lazy import lazy_getattr

# exports load lazily, so `clip_t2i.guidance.config` (read by presets at start-up) does not pull in torch
_EXPORTS = {
    "ViewMaker": "augment",
    "ViewSettings": "augment",
    "GuidanceConfig": "config",
    "GuidanceResult": "loop",
    "StepInfo": "loop",
    "dynamic_threshold": "loop",
    "run_guidance": "loop",
    "GuidanceLoss": "losses",
    "PromptDistance": "losses",
    "cosine_distance": "losses",
    "spherical_distance": "losses",
    "PromptTargets": "prompts",
    "TextEmbeddingCache": "prompts",
    "WeightedPrompt": "prompts",
    "build_targets": "prompts",
    "format_prompt": "prompts",
    "parse_prompt": "prompts",
}

__all__ = [
    "GuidanceConfig",
    "GuidanceLoss",
    "GuidanceResult",
    "PromptDistance",
    "PromptTargets",
    "StepInfo",
    "TextEmbeddingCache",
    "ViewMaker",
    "ViewSettings",
    "WeightedPrompt",
    "build_targets",
    "cosine_distance",
    "dynamic_threshold",
    "format_prompt",
    "parse_prompt",
    "run_guidance",
    "spherical_distance",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
