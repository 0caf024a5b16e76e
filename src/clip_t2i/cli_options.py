"""Options shared by many commands, defined once (one flag, one help text, one meaning)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

PRETRAINED_HELP = (
    "Weights for the command's CLIP (--model, --clip or --eval-clip), as load_clip(pretrained=): an open_clip tag "
    "or a file (official CLIPAG .pt, open_clip checkpoint, state dict)"
)
IMAGE_TOWER_HELP = "A file replacing only the image tower (FARE / RobustVLM vision state dict, TeCoA checkpoint)"
THREADS_HELP = "CPU threads: 0 = auto (1 when the machine is busy, else all cores)"

Pretrained = Annotated[str | None, typer.Option("--pretrained", help=PRETRAINED_HELP)]
ImageTower = Annotated[Path | None, typer.Option("--image-tower", help=IMAGE_TOWER_HELP)]
Threads = Annotated[int, typer.Option("--threads", help=THREADS_HELP)]


def set_threads(threads: int) -> int:
    """Apply ``--threads`` (0 = auto) and return the thread count used."""
    from clip_t2i.training.common import auto_threads
    from clip_t2i.utils.checks import check_int

    check_int(threads, "--threads", minimum=0)
    return auto_threads(threads)


def path_or_none(p: Path | None) -> str | None:
    """``str(p)`` or None."""
    return None if p is None else str(p)


def config_from_params(ctx: typer.Context, cls: type, rename: dict[str, str] | None = None, **given: Any) -> Any:
    """Build config dataclass ``cls`` from the command's parsed parameters (``ctx.params``): each field takes the
    parameter of the same name (``rename``: field -> parameter where they differ; paths become strings), so the
    command lists its options once, in its signature, with the dataclass's defaults. ``given`` wins."""
    import dataclasses

    values = {}
    for f in dataclasses.fields(cls):
        param = (rename or {}).get(f.name, f.name)
        if f.name in given:
            values[f.name] = given[f.name]
        elif param in ctx.params:
            v = ctx.params[param]
            values[f.name] = str(v) if isinstance(v, Path) else v
    return cls(**values)


def resume_config(ctx: typer.Context, cfg: Any, rename: dict[str, str] | None = None) -> Any:
    """With ``--resume``, every option not given on the command line takes the run's own value from its
    ``config.json`` (so a resumed run continues to its own ``--steps``, lr, batch, ...); given ones win.

    ``rename`` maps a config field to its CLI parameter where the names differ (``clip_pretrained`` ->
    ``pretrained``). Returns a new config (validated by the one typed parser).
    """
    import dataclasses
    import json

    from typer._click.core import ParameterSource

    from clip_t2i.utils.config import dataclass_from_dict

    if not getattr(cfg, "resume", False):
        return cfg
    path = Path(cfg.out) / "config.json"
    try:
        saved = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        saved = {}
    if not isinstance(saved, dict) or not saved:
        return cfg
    merged = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    for name in merged:
        param = (rename or {}).get(name, name)
        if name in ("out", "resume") or name not in saved:
            continue
        source = ctx.get_parameter_source(param) if param in ctx.params else None
        if source in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            merged[name] = saved[name]
    return dataclass_from_dict(type(cfg), merged, f"{path}")
