"""When does a fit *explain* an image? The recognition gates of the shapes judge, and where they come from.

An image is **recognised** only if its best fit (:mod:`clip_t2i.metrics.judges.synthesis`) passes every gate:

==============  =====================================================================================
gate            rule
==============  =====================================================================================
``object``      fitted coverage >= ``min_area`` of the frame and object-background contrast >= ``min_contrast``
``iou``         soft IoU of the image's coverage with the fitted render >= ``min_iou``
``residual``    RMS pixel error of the fitted render <= ``max_residual``
``hue``         hue distance to the nearest world colour <= ``hue_tolerance[colour]``
``saturation``  HSV saturation of the fitted colour >= ``min_saturation`` ("red drawn as pink" fails here)
==============  =====================================================================================

**Set from data** (``experiments/judges/calibrate.py``, numbers in ``experiments/judges/README.md``): the
*accept set* is 2,400 renders over all 240 combinations with the world's nuisance variation, passed through the
mild augmentation the legacy judge was trained with (:func:`~clip_t2i.metrics.judges.training.judge_augment`:
noise, blur <= 1 px, colour jitter); ``min_iou``, ``max_residual`` and ``min_saturation`` are its 0.5th / 99.5th
percentiles (so about 1 % of augmented renders fail, no clean render does), rounded to the permissive side. The
hue tolerance of a colour is 80 % of half the hue gap to the nearest other world colour (beyond it the hue is
closer to being another name; the accept set's 99.5th percentile hue distance lies inside every tolerance).
``min_area`` is half the smallest world object (a small triangle at scale 0.9, 0.0122 of the frame) and
``min_contrast`` half the accept set's minimum. The reject sets (grey, uniform noise, Gaussian blobs, stripes,
checkers, washed-out colours) are reported beside them, never used to pick a number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from clip_t2i.metrics.judges.synthesis import WORLD_HUES, ShapesFit, hue_distance


def _hue_tolerances(fraction: float = 0.8) -> tuple[float, ...]:
    """Per world colour: ``fraction`` x half the hue distance to the nearest other world colour (degrees)."""
    d = hue_distance(WORLD_HUES.view(-1, 1), WORLD_HUES.view(1, -1)) + torch.eye(len(WORLD_HUES)) * 360
    return tuple(round(float(v) * fraction / 2, 1) for v in d.min(1).values)


@dataclass(frozen=True)
class ShapesThresholds:
    """Recognition gates of the shapes judge (see the module docstring for where each number comes from)."""

    min_iou: float = 0.83  # accept set q0.5 = 0.8396
    max_residual: float = 0.06  # accept set q99.5 = 0.0598
    min_saturation: float = 0.68  # accept set q0.5 = 0.6815
    min_contrast: float = 0.13  # accept set min / 2 = 0.1354
    min_area: float = 0.0061  # smallest world object / 2
    hue_tolerance: tuple[float, ...] = _hue_tolerances()

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_THRESHOLDS = ShapesThresholds()
GATES = ("object", "iou", "residual", "hue", "saturation")


def gate_checks(fit: ShapesFit, thr: ShapesThresholds = DEFAULT_THRESHOLDS) -> dict[str, Tensor]:
    """``{gate: BoolTensor [n]}`` — True where the fit passes that gate."""
    tol = torch.tensor(thr.hue_tolerance)[fit.colour]
    return {
        "object": (fit.area >= thr.min_area) & (fit.contrast >= thr.min_contrast),
        "iou": fit.iou >= thr.min_iou,
        "residual": fit.residual <= thr.max_residual,
        "hue": fit.hue_distance <= tol,
        "saturation": fit.saturation >= thr.min_saturation,
    }


def recognise(fit: ShapesFit, thr: ShapesThresholds = DEFAULT_THRESHOLDS) -> ShapesFit:
    """Fill ``fit.recognised`` (all gates passed) and return the fit."""
    checks = gate_checks(fit, thr)
    fit.recognised = torch.stack(list(checks.values())).all(0)
    return fit


def failed_gates(fit: ShapesFit, thr: ShapesThresholds = DEFAULT_THRESHOLDS) -> list[list[str]]:
    """Per image, the names of the gates it fails (empty = recognised)."""
    checks = gate_checks(fit, thr)
    return [[g for g in GATES if not bool(checks[g][i])] for i in range(len(fit))]


EVIDENCE = ("iou", "iou_hard", "residual", "hue_distance", "saturation", "contrast", "area")


def evidence_quantiles(fit: ShapesFit, qs: tuple[float, ...] = (0.0, 0.005, 0.05, 0.5, 0.95, 0.995, 1.0)) -> dict:
    """``{evidence: {quantile: value}}`` of a batch of fits (for the calibration report)."""
    q = torch.tensor(qs)
    return {
        k: {f"{v:g}": round(float(x), 4) for v, x in zip(qs, getattr(fit, k).float().quantile(q), strict=True)}
        for k in EVIDENCE
    }
