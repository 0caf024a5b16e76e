"""The bundled CLIPs load by name and do what their model cards say."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from clip_t2i import zoo
from clip_t2i.backbones import load_clip
from clip_t2i.metrics.zeroshot import zero_shot_digits, zero_shot_shapes

torch.set_num_threads(1)


def test_zoo_entries_have_cards_and_fit_the_budget():
    names = zoo.list_zoo()
    assert "shapes-clip" in names
    total = 0
    for name in names:
        entry = zoo.zoo_entry(name)
        path = zoo.zoo_path(name)
        total += path.stat().st_size
        assert (zoo.zoo_dir() / f"{name}.md").is_file()
        assert entry["command"] and entry["metrics"]
    assert total < 30e6


def test_shapes_clip_zero_shot():
    clip = load_clip("shapes-clip")
    r = zero_shot_shapes(clip, n=240, with_retrieval=False)
    assert r["seen"]["exact"] > 0.95
    assert r["heldout"]["exact"] > 0.9


@pytest.mark.skipif("digits-clip" not in zoo.list_zoo(), reason="digits-clip not bundled")
def test_digits_clip_zero_shot():
    r = zero_shot_digits(load_clip("digits-clip"), with_retrieval=False)
    assert r["accuracy"] > 0.9


def test_eval_clip_cli_json():
    r = subprocess.run(
        [sys.executable, "-m", "clip_t2i.cli", "eval-clip", "--model", "shapes-clip", "--n", "48", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["shapes"]) == {"seen", "heldout", "retrieval"}
    assert {"exact", "colour", "shape", "size", "position"} <= set(out["shapes"]["seen"])
    assert out["shapes"]["retrieval"]["i2t_r5"] >= out["shapes"]["retrieval"]["i2t_r1"]
