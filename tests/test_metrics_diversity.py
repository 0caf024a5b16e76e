"""PPD / mPPD: a hand-computed example, a naive loop reference, id types, errors, streaming object."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
import torch
import torch.nn.functional as F

from clip_t2i.errors import UserError
from clip_t2i.metrics import MPPD, mppd, per_prompt_distance


def _naive(x: torch.Tensor, ids: list, distance: str) -> dict:
    out = {}
    for pid in sorted(set(ids)):
        rows = [x[i].double() for i, p in enumerate(ids) if p == pid]
        ds = []
        for a, b in combinations(rows, 2):
            ds.append(1 - float(F.cosine_similarity(a, b, dim=0)) if distance == "cosine" else float((a - b).norm()))
        out[pid] = sum(ds) / len(ds)
    return out


def test_hand_computed_example() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [-1.0, 0.0]])
    ids = [0, 0, 0, 1, 1]
    s = 1 / math.sqrt(2)
    cos_p0 = (1.0 + 2 * (1 - s)) / 3  # pairs: (1,0)-(0,1): 1;  each with (1,1): 1 - 1/sqrt2
    cos_p1 = 2.0  # opposite directions
    res = per_prompt_distance(x, ids)
    assert res.as_dict() == pytest.approx({0: cos_p0, 1: cos_p1}, abs=1e-12)
    assert float(mppd(x, ids)) == pytest.approx((cos_p0 + cos_p1) / 2, abs=1e-12)
    l2_p0 = (math.sqrt(2) + 1 + 1) / 3
    l2_p1 = 3.0
    assert per_prompt_distance(x, ids, "l2").as_dict() == pytest.approx({0: l2_p0, 1: l2_p1}, abs=1e-12)
    assert res.counts.tolist() == [3, 2]


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_matches_naive_loops_with_unequal_groups(distance: str) -> None:
    g = torch.Generator().manual_seed(0)
    sizes = {"a cat": 2, "a dog": 5, "red car": 5, "blue sky": 3, "z": 9}
    ids = [p for p, k in sizes.items() for _ in range(k)]
    perm = torch.randperm(len(ids), generator=g).tolist()
    ids = [ids[i] for i in perm]
    x = torch.randn(len(ids), 7, generator=g)
    res = per_prompt_distance(x, ids, distance, chunk_elems=50)  # tiny chunks exercise the batching
    assert res.prompt_ids == sorted(sizes)
    assert res.as_dict() == pytest.approx(_naive(x, ids, distance), rel=1e-10)


def test_identical_images_have_zero_ppd() -> None:
    x = torch.randn(1, 5).repeat(4, 1)
    assert float(mppd(x, torch.zeros(4, dtype=torch.long))) == pytest.approx(0.0, abs=1e-12)
    assert float(mppd(x, [3, 3, 3, 3], distance="l2")) == pytest.approx(0.0, abs=1e-12)


def test_streaming_metric_matches_function() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 8, generator=g)
    ids = torch.arange(60) % 12  # prompts spread over batches
    metric = MPPD(distance="l2")
    for rows in torch.arange(60).split(16):
        metric.update(x[rows], ids[rows])
    assert float(metric.compute()) == pytest.approx(float(mppd(x, ids, "l2")), rel=1e-12)
    assert metric.per_prompt().prompt_ids == list(range(12))


def test_errors() -> None:
    x = torch.randn(5, 3)
    with pytest.raises(UserError, match=r"prompt 2 has 1 image.*at least 2"):
        per_prompt_distance(x, [0, 0, 1, 1, 2])
    with pytest.raises(UserError, match="one id per image"):
        per_prompt_distance(x, [0, 0, 1, 1])
    with pytest.raises(UserError, match="distance must be"):
        per_prompt_distance(x, [0] * 5, distance="cos")
    with pytest.raises(UserError, match="all be ints or all be strings"):
        per_prompt_distance(x, [0, "a", 0, "a", 0])
    with pytest.raises(UserError, match="integer prompt ids"):
        MPPD().update(x, ["a"] * 5)
    bad = x.clone()
    bad[1, 1] = float("inf")
    with pytest.raises(UserError, match="NaN/inf"):
        mppd(bad, [0] * 5)


def test_merged_cat_states_equal_single_pass() -> None:
    g = torch.Generator().manual_seed(2)
    x, ids = torch.randn(30, 4, generator=g), torch.arange(30) % 5
    a, b = MPPD(), MPPD()
    a.update(x[:13], ids[:13])
    b.update(x[13:], ids[13:])
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(mppd(x, ids)), rel=1e-12)
