"""The default shapes judge: analysis-by-synthesis fit + recognition gates (one-object scenes)."""

from __future__ import annotations

from torch import Tensor

from clip_t2i.metrics.judges.calibration import DEFAULT_THRESHOLDS, ShapesThresholds, failed_gates, recognise
from clip_t2i.metrics.judges.synthesis import FIT_SIZE, ShapesFit, fit_shapes, resize_for_fit


class AbSShapesJudge:
    """Reads colour, shape, size, position and the nuisance factors from the world renderer's best fit; an image
    whose fit fails a gate (:mod:`~clip_t2i.metrics.judges.calibration`) is unrecognisable."""

    name = "abs"

    def __init__(self, thresholds: ShapesThresholds = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = thresholds

    def fit(self, images: Tensor, batch_size: int = 256) -> ShapesFit:
        """Fit ``[B, 3, H, W]`` images in [0, 1] (resized to 64x64 if needed); ``recognised`` filled in."""
        return recognise(fit_shapes(resize_for_fit(images, FIT_SIZE), batch_size=batch_size), self.thresholds)

    def failed(self, fit: ShapesFit) -> list[list[str]]:
        """Per image, the gates its fit fails."""
        return failed_gates(fit, self.thresholds)
