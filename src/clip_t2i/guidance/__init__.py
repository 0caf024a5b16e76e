"""The guidance engine shared by every renderer: prompts, views, losses and the optimisation loop.

* :mod:`~clip_t2i.guidance.prompts`: pixray-style weighted / negative prompts, cached text embeddings.
* :mod:`~clip_t2i.guidance.augment`: differentiable, per-image-seeded views (DiffAugment, patches, perspective,
  noise).
* :mod:`~clip_t2i.guidance.losses`: cosine and spherical distances, global + patch terms, patch rejection.
* :mod:`~clip_t2i.guidance.loop`: :class:`GuidanceConfig` and :func:`run_guidance` (batched over prompts x seeds).
"""

from clip_t2i.guidance.augment import ViewMaker, ViewSettings
from clip_t2i.guidance.loop import GuidanceConfig, GuidanceResult, StepInfo, dynamic_threshold, run_guidance
from clip_t2i.guidance.losses import GuidanceLoss, PromptDistance, cosine_distance, spherical_distance
from clip_t2i.guidance.prompts import (
    PromptTargets,
    TextEmbeddingCache,
    WeightedPrompt,
    build_targets,
    format_prompt,
    parse_prompt,
)

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
