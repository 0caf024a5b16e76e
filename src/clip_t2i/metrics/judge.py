"""Compatibility module: the judges now live in :mod:`clip_t2i.metrics.judges` (split by concern).

Everything that used to be importable from here still is. Since issue #12 the default verdicts come from
analysis by synthesis (shapes) and a robust classifier behind a realism gate (digits); the CNN ``ShapesJudge`` /
``DigitsJudge`` remain for FID features and ``judge="legacy"``.
"""

from __future__ import annotations

from clip_t2i.metrics.judges.cards import write_zoo_entry, zoo_card
from clip_t2i.metrics.judges.cnn import (
    DIGITS_JUDGE,
    DIGITS_JUDGE_ROBUST,
    JUDGE_META_KEY,
    SHAPES_ATTRIBUTES,
    SHAPES_JUDGE,
    DigitsJudge,
    ShapesJudge,
    _conv,
    _JudgeBase,
    _Trunk,
    judge_feature_extractor,
    load_judge,
    save_judge,
)
from clip_t2i.metrics.judges.prompts import (
    _main_prompt,
    parse_digits_prompt,
    parse_shapes_prompt,
    prompt_domain,
    read_prompt,
    shapes_eval_prompts,
)
from clip_t2i.metrics.judges.scoring import JudgeReport, _fit, judge_digits, judge_directory, judge_shapes
from clip_t2i.metrics.judges.training import (
    JudgeTrainConfig,
    _gaussian_blur,
    evaluate_judge,
    judge_augment,
    train_judge,
)

__all__ = [
    "DIGITS_JUDGE",
    "DIGITS_JUDGE_ROBUST",
    "JUDGE_META_KEY",
    "SHAPES_ATTRIBUTES",
    "SHAPES_JUDGE",
    "DigitsJudge",
    "JudgeReport",
    "JudgeTrainConfig",
    "ShapesJudge",
    "_JudgeBase",
    "_Trunk",
    "_conv",
    "_fit",
    "_gaussian_blur",
    "_main_prompt",
    "evaluate_judge",
    "judge_augment",
    "judge_digits",
    "judge_directory",
    "judge_feature_extractor",
    "judge_shapes",
    "load_judge",
    "parse_digits_prompt",
    "parse_shapes_prompt",
    "prompt_domain",
    "read_prompt",
    "save_judge",
    "shapes_eval_prompts",
    "train_judge",
    "write_zoo_entry",
    "zoo_card",
]
