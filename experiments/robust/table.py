"""Print results.jsonl as the README's markdown table rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.jsonl"))
for line in path.read_text().splitlines():
    r = json.loads(line)
    p, s, j = r["pag"], r["pag_smoothed"], r["synth"].get("judge", {})
    rob = " / ".join(f"{r['pgd10'][k]:.2f}" for k in ("1.5", "4", "8"))
    wall = f"{r['train_wall_s'] / 60:.0f} min" if r.get("train_wall_s") else "—"
    print(
        f"| {r.get('name', r['model'])} | {r['clean_seen']:.3f} / {r['clean_heldout']:.3f} | {rob} | "
        f"{p['colour']:.3f} / {p['shape']:.3f} / {p['position']:.3f} / **{p['mean']:.3f}** | {s['2']:.3f} | "
        f"{j.get('colour', 0):.2f} / {j.get('shape', 0):.2f} / {j.get('position', 0):.2f} / {j.get('all', 0):.2f} | "
        f"{wall} |"
    )
