"""Images with nothing to recognise: both default judges must call them unrecognisable (issue bar <= 5 %)."""

from __future__ import annotations

import pytest
import torch

from clip_t2i.metrics.judges.probes import PROBE_KINDS, probe_images, washed_out_renders
from clip_t2i.metrics.judges.scoring import default_digits_judge, default_shapes_judge, judge_digits, judge_shapes

torch.set_num_threads(1)


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_shapes_judge_rejects_probes(kind):
    images = probe_images(kind, 120, seed=7)  # calibration used seed 2024
    fit = default_shapes_judge().fit(images)
    assert float(fit.recognised.float().mean()) <= 0.05  # measured 0 / 200 for every kind at seeds 7 and 11
    report = judge_shapes(images, ["a large red square in the center"] * len(images))
    assert report.accuracy["recognised"] <= 0.05 and report.accuracy["all"] <= 0.05


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_digits_judge_rejects_probes(kind):
    images = probe_images(kind, 120, size=32, seed=7, colour=False)
    verdict = default_digits_judge().verdict(images)
    assert float(verdict.recognised.float().mean()) <= 0.05
    report = judge_digits(images, ["a handwritten digit three"] * len(images))
    assert report.accuracy["digit"] <= 0.05


def test_red_drawn_as_pink_is_not_red():
    data = washed_out_renders(120, seed=7)
    fit = default_shapes_judge().fit(data["image"])
    assert float(fit.recognised.float().mean()) <= 0.05  # saturation 0.22-0.59 < 0.68
    assert "saturation" in default_shapes_judge().failed(fit)[0]


def test_probes_are_deterministic_and_in_range():
    a, b = probe_images("stripes", 4, seed=3), probe_images("stripes", 4, seed=3)
    assert torch.equal(a, b) and a.shape == (4, 3, 64, 64) and float(a.min()) >= 0 and float(a.max()) <= 1
    with pytest.raises(Exception, match="unknown probe kind"):
        probe_images("plaid", 1)
