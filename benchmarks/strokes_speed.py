"""Forward + backward time of the strokes rasteriser: 64 strokes at 64x64 and 256 strokes at 224x224 (one image).

Prints one JSON object. diffvg is timed only if ``pydiffvg`` imports (it is not on PyPI).
"""

from __future__ import annotations

import time

import torch

from clip_t2i.renderers.strokes import StrokeOptions, StrokeRenderer, diffvg_available
from clip_t2i.utils import jsonout


def _time(n: int, size: int, backend: str, repeats: int = 3) -> float:
    r = StrokeRenderer(size=size, options=StrokeOptions(num_paths=n, backend=backend))
    params = r.init(1, torch.Generator().manual_seed(0))
    r.render(params).sum().backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        for p in params[:3]:
            p.grad = None
        r.render(params).sum().backward()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    out: dict = {"threads": torch.get_num_threads(), "torch": {}}
    for n, size in ((64, 64), (256, 224)):
        out["torch"][f"{n}x{size}"] = {"seconds_fwd_bwd": round(_time(n, size, "torch"), 4)}
    if diffvg_available():
        out["diffvg"] = {
            f"{n}x{s}": {"seconds_fwd_bwd": round(_time(n, s, "diffvg"), 4)} for n, s in ((64, 64), (256, 224))
        }
    else:
        out["diffvg"] = "not installable (not on PyPI; build BachiLi/diffvg from source)"
    print(jsonout.dumps(out))


if __name__ == "__main__":
    main()
