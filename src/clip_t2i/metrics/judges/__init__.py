"""Judges of generated images for the built-in data, split by concern.

==========================  ========================================================================================
:mod:`.synthesis`           analysis by synthesis: fit the shapes world's renderer to an image (:func:`fit_shapes`)
:mod:`.calibration`         recognition gates of the shapes fit and where their thresholds come from
:mod:`.shapes`              the default shapes judge (:class:`AbSShapesJudge`)
:mod:`.digits`              the default digits judge: robust classifier + realism gate (:class:`RobustDigitsJudge`)
:mod:`.scoring`             :func:`judge_shapes`, :func:`judge_digits`, :func:`judge_directory`, :class:`JudgeReport`
:mod:`.diversity`           per-prompt spread of the fitted nuisance factors (:func:`factor_diversity`)
:mod:`.prompts`             reading prompts back into attributes / digits; unknown words are named, never guessed
:mod:`.probes`              images with nothing to recognise (grey, noise, blobs, stripes, checkers, washed-out)
:mod:`.cnn`                 the CNN judges (legacy verdicts, FID features) and the robust digits classifier
:mod:`.training`            training / clean and robust evaluation of the CNN judges
:mod:`.cards`               their zoo files and model cards
==========================  ========================================================================================

Submodules are imported on first use (the CLI stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clip_t2i.utils.lazy import lazy_getattr

if TYPE_CHECKING:
    from clip_t2i.metrics.judges.calibration import DEFAULT_THRESHOLDS, ShapesThresholds, failed_gates, recognise
    from clip_t2i.metrics.judges.cards import write_zoo_entry, zoo_card
    from clip_t2i.metrics.judges.cnn import (
        DIGITS_JUDGE,
        DIGITS_JUDGE_ROBUST,
        JUDGE_META_KEY,
        SHAPES_ATTRIBUTES,
        SHAPES_JUDGE,
        DigitsJudge,
        ShapesJudge,
        judge_feature_extractor,
        load_judge,
        save_judge,
    )
    from clip_t2i.metrics.judges.digits import REALISM_THRESHOLD, DigitsRealism, RobustDigitsJudge
    from clip_t2i.metrics.judges.diversity import FACTORS, factor_diversity
    from clip_t2i.metrics.judges.probes import PROBE_KINDS, all_probes, probe_images, washed_out_renders
    from clip_t2i.metrics.judges.prompts import (
        parse_digits_prompt,
        parse_shapes_prompt,
        prompt_domain,
        read_prompt,
        shapes_eval_prompts,
    )
    from clip_t2i.metrics.judges.scoring import JudgeReport, judge_digits, judge_directory, judge_shapes
    from clip_t2i.metrics.judges.shapes import AbSShapesJudge
    from clip_t2i.metrics.judges.synthesis import ShapesFit, ShapesFitter, fit_shapes
    from clip_t2i.metrics.judges.training import (
        DIGITS_ROBUST_EPS,
        JudgeTrainConfig,
        evaluate_judge,
        judge_augment,
        robust_digits_accuracy,
        train_judge,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    "calibration": ("DEFAULT_THRESHOLDS", "ShapesThresholds", "failed_gates", "recognise"),
    "cards": ("write_zoo_entry", "zoo_card"),
    "cnn": (
        "DIGITS_JUDGE",
        "DIGITS_JUDGE_ROBUST",
        "JUDGE_META_KEY",
        "SHAPES_ATTRIBUTES",
        "SHAPES_JUDGE",
        "DigitsJudge",
        "ShapesJudge",
        "judge_feature_extractor",
        "load_judge",
        "save_judge",
    ),
    "digits": ("REALISM_THRESHOLD", "DigitsRealism", "RobustDigitsJudge"),
    "diversity": ("FACTORS", "factor_diversity"),
    "probes": ("PROBE_KINDS", "all_probes", "probe_images", "washed_out_renders"),
    "prompts": ("parse_digits_prompt", "parse_shapes_prompt", "prompt_domain", "read_prompt", "shapes_eval_prompts"),
    "scoring": ("JudgeReport", "judge_digits", "judge_directory", "judge_shapes"),
    "shapes": ("AbSShapesJudge",),
    "synthesis": ("ShapesFit", "ShapesFitter", "fit_shapes"),
    "training": (
        "DIGITS_ROBUST_EPS",
        "JudgeTrainConfig",
        "evaluate_judge",
        "judge_augment",
        "robust_digits_accuracy",
        "train_judge",
    ),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__getattr__ = lazy_getattr(__name__, _WHERE, globals())

__all__ = [
    "AbSShapesJudge",
    "DEFAULT_THRESHOLDS",
    "DIGITS_JUDGE",
    "DIGITS_JUDGE_ROBUST",
    "DIGITS_ROBUST_EPS",
    "DigitsJudge",
    "DigitsRealism",
    "FACTORS",
    "JUDGE_META_KEY",
    "JudgeReport",
    "JudgeTrainConfig",
    "PROBE_KINDS",
    "REALISM_THRESHOLD",
    "RobustDigitsJudge",
    "SHAPES_ATTRIBUTES",
    "SHAPES_JUDGE",
    "ShapesFit",
    "ShapesFitter",
    "ShapesJudge",
    "ShapesThresholds",
    "all_probes",
    "evaluate_judge",
    "factor_diversity",
    "failed_gates",
    "fit_shapes",
    "judge_augment",
    "judge_digits",
    "judge_directory",
    "judge_feature_extractor",
    "judge_shapes",
    "load_judge",
    "parse_digits_prompt",
    "parse_shapes_prompt",
    "probe_images",
    "prompt_domain",
    "read_prompt",
    "recognise",
    "robust_digits_accuracy",
    "save_judge",
    "shapes_eval_prompts",
    "train_judge",
    "washed_out_renders",
    "write_zoo_entry",
    "zoo_card",
]
