"""CLI commands of the metrics package: ``evaluate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the metrics commands to the ``clip-t2i`` app."""

    @app.command()
    def evaluate(
        folder: Annotated[Path, typer.Argument(help="Folder of generated PNGs with prompt metadata")],
        metrics: Annotated[str, typer.Option(help="Comma list: fid,prdc,clip_score,mppd,vendi,judge")] = (
            "fid,prdc,clip_score,mppd,vendi,judge"
        ),
        features: Annotated[str, typer.Option(help="judge | clip:NAME | inception | dinov2")] = "judge",
        eval_clip: Annotated[str, typer.Option(help="CLIP for the CLIP score (not the guiding one)")] = "shapes-clip",
        reference: Annotated[str | None, typer.Option(help="shapes | digits | folder of real images")] = None,
        n_reference: Annotated[int, typer.Option(help="Reference images")] = 1000,
        size: Annotated[int | None, typer.Option(help="Resize all images to this side (default: most common)")] = None,
        out: Annotated[Path | None, typer.Option(help="Report folder (default: FOLDER/eval)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """FID, precision/recall, CLIP score, mPPD, Vendi and judge accuracy for a folder of images."""
        from clip_t2i.errors import UserError
        from clip_t2i.metrics.report import evaluate_folder, markdown_table, write_report

        if n_reference < 2:
            raise UserError("--n-reference must be ≥ 2")
        names = tuple(m.strip() for m in metrics.split(",") if m.strip())
        report = evaluate_folder(folder, metrics=names, features=features, eval_clip=eval_clip, reference=reference,
                                 n_reference=n_reference, size=size)
        paths = write_report(report, out or folder / "eval")
        public = {k: v for k, v in report.items() if not k.startswith("_")}
        public["report"] = {k: str(v) for k, v in paths.items()}
        if as_json:
            sys.stdout.write(json.dumps(public) + "\n")
        else:
            typer.echo(markdown_table(public))
            typer.echo(f"report: {paths['json']}, {paths['md']}, {paths['png']}")
