"""CLI commands of the metrics package: ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clip_t2i.cli_options import ImageTower, Pretrained, Threads, path_or_none, set_threads


def register(app: typer.Typer) -> None:
    """Add the metrics commands to the ``clip-t2i`` app."""

    @app.command()
    def evaluate(
        folder: Annotated[Path, typer.Argument(help="Folder of generated PNGs with prompt metadata (or to fill)")],
        prompts: Annotated[Path | None, typer.Option(help="Prompt file: generate into FOLDER first")] = None,
        generator: Annotated[str, typer.Option(help="With --prompts: pixels (CLIP guidance) or gan")] = "pixels",
        model: Annotated[str, typer.Option(help="With --prompts: guiding CLIP (pixels) or GAN checkpoint (gan)")] = (
            "shapes-clipag"
        ),
        seeds: Annotated[int, typer.Option(help="With --prompts: images per prompt (seeds 0..N-1)")] = 4,
        metrics: Annotated[str, typer.Option(help="Comma list: fid,prdc,clip_score,mppd,vendi,judge")] = (
            "fid,prdc,clip_score,mppd,vendi,judge"
        ),
        features: Annotated[str, typer.Option(help="judge | clip:NAME | inception | dinov2")] = "judge",
        judge: Annotated[str, typer.Option(help="auto (analysis by synthesis / robust digits) | legacy")] = "auto",
        mppd_features: Annotated[
            str | None, typer.Option(help="Features for mPPD (default: pixels16 for shapes, else --features)")
        ] = None,
        eval_clip: Annotated[
            str, typer.Option(help="CLIP for the CLIP score: a different architecture and run than every guiding CLIP")
        ] = "shapes-clip-rn",
        reference: Annotated[str | None, typer.Option(help="shapes | digits | folder of real images")] = None,
        n_reference: Annotated[int, typer.Option(help="Reference images")] = 1000,
        size: Annotated[int | None, typer.Option(help="Resize all images to this side (default: most common)")] = None,
        out: Annotated[Path | None, typer.Option(help="Report folder (default: FOLDER/eval)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
        pretrained: Pretrained = None,
        image_tower: ImageTower = None,
        threads: Threads = 0,
        overwrite: Annotated[
            bool, typer.Option(help="Replace an earlier report (and, with --prompts, images)")
        ] = False,
    ) -> None:
        """FID, precision/recall, CLIP score, mPPD, Vendi and judge accuracy for a folder of images."""
        from clip_t2i.errors import UserError
        from clip_t2i.metrics.report import evaluate_folder, markdown_table, write_report
        from clip_t2i.utils.checks import check_int
        from clip_t2i.utils.paths import check_writable_dir, refuse_existing

        check_int(n_reference, "--n-reference", minimum=2, cap="seeds")
        if size is not None:
            check_int(size, "--size", minimum=8, cap="image_size")
        names = tuple(m.strip() for m in metrics.split(",") if m.strip())
        set_threads(threads)
        report_dir = out or folder / "eval"
        check_writable_dir(report_dir)
        refuse_existing(report_dir, REPORT_FILES, overwrite)
        if prompts is not None:
            sample_prompts(prompts, folder, generator=generator, model=model, seeds=seeds, overwrite=overwrite)
        elif not folder.is_dir():
            raise UserError(f"{folder} is not a folder of generated images; pass --prompts FILE to generate into it")
        report = evaluate_folder(
            folder,
            metrics=names,
            features=features,
            eval_clip=eval_clip
            if pretrained is None and image_tower is None
            else _load_eval_clip(eval_clip, pretrained, path_or_none(image_tower)),
            reference=reference,
            n_reference=n_reference,
            size=size,
            judge=judge,
            mppd_features=mppd_features,
            progress=True,
        )
        paths = write_report(report, report_dir)
        public = {k: v for k, v in report.items() if not k.startswith("_")}
        public["report"] = {k: str(v) for k, v in paths.items()}
        if as_json:
            from clip_t2i.utils.jsonout import print_json

            print_json(public)
        else:
            typer.echo(markdown_table(public))
            typer.echo(f"report: {paths['json']}, {paths['md']}, {paths['png']}")


REPORT_FILES = ("report.json", "report.md", "report.png")


def _load_eval_clip(name: str, pretrained: str | None, image_tower: str | None):
    from clip_t2i.backbones import load_clip

    clip = load_clip(name, pretrained, image_tower=image_tower)
    clip.config.setdefault("name", name)
    return clip


def sample_prompts(
    prompt_file: Path, folder: Path, *, generator: str, model: str, seeds: int, overwrite: bool = False
) -> None:
    """Fill ``folder`` with ``seeds`` images per prompt of ``prompt_file`` from the pixels renderer or a GAN."""
    from clip_t2i.errors import UserError
    from clip_t2i.utils.checks import check_choice, check_int

    check_choice(generator, ("pixels", "gan"), "--generator")
    check_int(seeds, "--seeds")
    if not prompt_file.is_file():
        raise UserError(f"prompt file {prompt_file} does not exist")
    try:
        text = prompt_file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"prompt file {prompt_file} cannot be read as text ({e})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise UserError(f"prompt file {prompt_file} holds no prompts")
    if generator == "pixels":
        from clip_t2i.pipeline import generate

        generate(lines, model=model, seeds=list(range(seeds)), out=folder, overwrite=overwrite)
    else:
        from clip_t2i.gan import sample

        sample(model, lines, n=seeds, seed=0, out=folder, overwrite=overwrite)
