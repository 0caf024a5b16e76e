"""Judging generated images against their prompts: :class:`JudgeReport`, :func:`judge_shapes`,
:func:`judge_digits`, :func:`judge_directory`.

Default judges (issue #12): shapes by analysis-by-synthesis (:class:`~clip_t2i.metrics.judges.shapes.AbSShapesJudge`),
digits by the robust classifier behind a realism gate (:class:`~clip_t2i.metrics.judges.digits.RobustDigitsJudge`).
An unrecognisable image counts as wrong for every attribute; ``accuracy["recognised"]`` is the fraction of judged
images that were recognised. ``judge="legacy"`` (or passing a CNN judge) reproduces the old CNN verdicts and keys
exactly. A prompt that cannot be judged (a colour, shape or digit the data does not have; two objects) is skipped
and counted in ``skipped`` with the words that stopped it — never silently scored.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.metrics.judges.cnn import (
    DIGITS_JUDGE,
    SHAPES_ATTRIBUTES,
    SHAPES_JUDGE,
    DigitsJudge,
    ShapesJudge,
    load_judge,
)
from clip_t2i.metrics.judges.prompts import parse_digits_prompt, parse_shapes_prompt, read_prompt

JUDGE_CHOICES = ("auto", "legacy")
_DEFAULT: dict[str, Any] = {}


@dataclass
class JudgeReport:
    """Accuracies over the judged images (``n`` each); ``per_image`` lists every decision.

    ``judge``: which judge (``abs``, ``robust`` or ``legacy``); ``recognised``: fraction of judged images the judge
    recognised (None for legacy judges, which always answer); ``skipped``: prompts that could not be judged
    (``n``, ``reasons``, ``words``, ``items``); ``notes``: e.g. images that were resized.
    """

    domain: str
    n: int
    accuracy: dict[str, float]
    all_attributes: list[str]
    per_image: list[dict]
    judge: str = "legacy"
    recognised: float | None = None
    skipped: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def default_shapes_judge():
    """The cached default shapes judge (analysis by synthesis)."""
    if "shapes" not in _DEFAULT:
        from clip_t2i.metrics.judges.shapes import AbSShapesJudge

        _DEFAULT["shapes"] = AbSShapesJudge()
    return _DEFAULT["shapes"]


def default_digits_judge():
    """The cached default digits judge (robust classifier + realism gate)."""
    if "digits" not in _DEFAULT:
        from clip_t2i.metrics.judges.digits import RobustDigitsJudge

        _DEFAULT["digits"] = RobustDigitsJudge()
    return _DEFAULT["digits"]


def _skip_summary(items: list[tuple[str, Any]]) -> dict:
    """``{"n", "reasons": {reason: count}, "words": [...], "items": [...]}`` of skipped prompts."""
    if not items:
        return {}
    reasons = Counter(r.reason for _, r in items)
    words = sorted({w for _, r in items for w in r.words})
    return {"n": len(items), "reasons": dict(reasons), "words": words, "items": [name for name, _ in items][:20]}


def _check_count(images: Tensor, prompts: Sequence[str]) -> None:
    if len(prompts) != images.shape[0]:
        raise UserError(f"{images.shape[0]} images but {len(prompts)} prompts")


# ----------------------------------------------------------------------------------------------- shapes
def judge_shapes(
    images: Tensor,
    prompts: Sequence[str],
    judge: Any = None,
    all_attributes: Sequence[str] = ("colour", "shape", "position"),
    names: Sequence[str] | None = None,
) -> JudgeReport:
    """Score images against their one-object shapes prompts.

    Per attribute: accuracy over the images whose prompt names it. ``all``: fraction of images whose every attribute
    in ``all_attributes`` that the prompt names is right (default colour + shape + position; size is reported
    separately, add it with ``all_attributes=SHAPES_ATTRIBUTES``). ``judge``: None / ``"auto"`` (analysis by
    synthesis), ``"legacy"`` or a :class:`ShapesJudge` CNN (the old verdicts), or an ``AbSShapesJudge``.
    """
    _check_count(images, prompts)
    if judge == "legacy" or isinstance(judge, ShapesJudge):
        return _judge_shapes_legacy(
            images, prompts, judge if isinstance(judge, ShapesJudge) else None, all_attributes, names
        )
    if judge is not None and judge != "auto" and not hasattr(judge, "fit"):
        raise UserError(f"unknown shapes judge {judge!r}; use auto or legacy")
    judge = default_shapes_judge() if judge in (None, "auto") else judge
    from clip_t2i.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES

    label = [names[i] if names is not None else f"#{i}" for i in range(len(prompts))]
    reads = [read_prompt(p) for p in prompts]
    keep = [i for i, r in enumerate(reads) if r.domain == "shapes"]
    skipped = _skip_summary([(label[i], r) for i, r in enumerate(reads) if r.domain != "shapes"])
    notes = []
    if images.shape[-2:] != (64, 64):
        notes.append(f"{len(keep)} images resized from {images.shape[-2]}x{images.shape[-1]} to 64x64 for the fit")
    vocab = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}
    hits: dict[str, list[bool]] = {k: [] for k in SHAPES_ATTRIBUTES}
    all_hits: list[bool] = []
    rows: list[dict] = []
    n_rec = 0
    if keep:
        fit = judge.fit(images[keep])
        failed = judge.failed(fit)
        factors = fit.factors()
        for j, i in enumerate(keep):
            want = reads[i].target
            rec = bool(fit.recognised[j])
            n_rec += rec
            row: dict[str, Any] = {"prompt": prompts[i]}
            if names is not None:
                row["image"] = names[i]
            row["recognised"] = rec
            row["failed_gates"] = failed[j]
            ok_all = True
            for k in SHAPES_ATTRIBUTES:
                got = int(getattr(fit, k)[j])
                row[f"pred_{k}"] = vocab[k][got] if rec else None
                row[f"fit_{k}"] = vocab[k][got]
                if want[k] is None:
                    continue
                row[k] = vocab[k][want[k]]
                ok = rec and got == want[k]
                hits[k].append(ok)
                if k in all_attributes:
                    ok_all &= ok
            row["all"] = bool(ok_all)
            for ev in ("iou", "residual", "hue_distance", "saturation"):
                row[ev] = round(float(getattr(fit, ev)[j]), 4)
            row["factors"] = {
                k: (None if math.isnan(float(v[j])) else round(float(v[j]), 4)) for k, v in factors.items()
            }
            all_hits.append(bool(ok_all))
            rows.append(row)
    acc = {k: round(sum(v) / len(v), 4) for k, v in hits.items() if v}
    acc["all"] = round(sum(all_hits) / max(1, len(all_hits)), 4)
    recognised = round(n_rec / len(keep), 4) if keep else None
    if recognised is not None:
        acc["recognised"] = recognised
    report = JudgeReport("shapes", len(keep), acc, list(all_attributes), rows, judge.name, recognised, skipped, notes)
    report.fit = fit if keep else None  # type: ignore[attr-defined]  # the ShapesFit of the judged images (not serialised)
    report.judged = keep  # type: ignore[attr-defined]  # their indices into ``prompts``
    return report


def _judge_shapes_legacy(
    images: Tensor,
    prompts: Sequence[str],
    judge: ShapesJudge | None,
    all_attributes: Sequence[str],
    names: Sequence[str] | None,
) -> JudgeReport:
    """The pre-#12 verdicts of the CNN ``shapes-judge`` (kept to reproduce old tables)."""
    from clip_t2i.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES

    judge = judge or load_judge(SHAPES_JUDGE)  # type: ignore[assignment]
    pred = judge.predict(images)
    vocab = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}
    hits: dict[str, list[bool]] = {k: [] for k in SHAPES_ATTRIBUTES}
    all_hits: list[bool] = []
    rows = []
    for i, prompt in enumerate(prompts):
        want = parse_shapes_prompt(prompt)
        row: dict[str, Any] = {"prompt": prompt}
        if names is not None:
            row["image"] = names[i]
        ok_all = True
        for k in SHAPES_ATTRIBUTES:
            got = int(pred[k][i])
            row[f"pred_{k}"] = vocab[k][got]
            if want[k] is None:
                continue
            row[k] = vocab[k][want[k]]
            ok = got == want[k]
            hits[k].append(ok)
            if k in all_attributes:
                ok_all &= ok
        row["all"] = ok_all
        all_hits.append(ok_all)
        rows.append(row)
    acc = {k: round(sum(v) / len(v), 4) for k, v in hits.items() if v}
    acc["all"] = round(sum(all_hits) / max(1, len(all_hits)), 4)
    return JudgeReport("shapes", len(prompts), acc, list(all_attributes), rows, "legacy")


# ----------------------------------------------------------------------------------------------- digits
def judge_digits(
    images: Tensor, prompts: Sequence[str], judge: Any = None, names: Sequence[str] | None = None
) -> JudgeReport:
    """Score images against their digits prompts: accuracy of the predicted digit (and, by default, whether the
    image looks like a real digit at all). ``judge``: None / ``"auto"`` (robust + realism gate), ``"legacy"`` or a
    :class:`DigitsJudge` CNN (the old verdicts), or a ``RobustDigitsJudge``."""
    _check_count(images, prompts)
    if judge == "legacy" or isinstance(judge, DigitsJudge):
        return _judge_digits_legacy(images, prompts, judge if isinstance(judge, DigitsJudge) else None, names)
    if judge is not None and judge != "auto" and not hasattr(judge, "verdict"):
        raise UserError(f"unknown digits judge {judge!r}; use auto or legacy")
    judge = default_digits_judge() if judge in (None, "auto") else judge
    label = [names[i] if names is not None else f"#{i}" for i in range(len(prompts))]
    reads = [read_prompt(p) for p in prompts]
    keep = [i for i, r in enumerate(reads) if r.domain == "digits"]
    skipped = _skip_summary([(label[i], r) for i, r in enumerate(reads) if r.domain != "digits"])
    notes = []
    if images.shape[-2:] != (32, 32):
        notes.append(f"{len(keep)} images resized from {images.shape[-2]}x{images.shape[-1]} to 32x32 for the judge")
    rows, hits, n_rec = [], [], 0
    if keep:
        v = judge.verdict(images[keep])
        for j, i in enumerate(keep):
            want = reads[i].target
            rec = bool(v.recognised[j])
            n_rec += rec
            got = int(v.digit[j])
            ok = rec and got == want
            hits.append(ok)
            row = {
                "prompt": prompts[i],
                "digit": want,
                "pred_digit": got if rec else None,
                "fit_digit": got,
                "recognised": rec,
                "distance": round(float(v.distance[j]), 3),
                "all": ok,
            }
            if names is not None:
                row["image"] = names[i]
            rows.append(row)
    acc_v = round(sum(hits) / max(1, len(hits)), 4)
    recognised = round(n_rec / len(keep), 4) if keep else None
    acc = {"digit": acc_v, "all": acc_v}
    if recognised is not None:
        acc["recognised"] = recognised
    return JudgeReport("digits", len(keep), acc, ["digit"], rows, judge.name, recognised, skipped, notes)


def _judge_digits_legacy(
    images: Tensor, prompts: Sequence[str], judge: DigitsJudge | None, names: Sequence[str] | None
) -> JudgeReport:
    """The pre-#12 verdicts of the CNN ``digits-judge``."""
    judge = judge or load_judge(DIGITS_JUDGE)  # type: ignore[assignment]
    pred = judge.predict(images).tolist()
    rows, hits = [], []
    for i, prompt in enumerate(prompts):
        want = parse_digits_prompt(prompt)
        if want is None:
            raise UserError(f"cannot read a digit from prompt {prompt!r}")
        ok = pred[i] == want
        hits.append(ok)
        row = {"prompt": prompt, "digit": want, "pred_digit": pred[i], "all": ok}
        if names is not None:
            row["image"] = names[i]
        rows.append(row)
    acc = round(sum(hits) / max(1, len(hits)), 4)
    return JudgeReport("digits", len(prompts), {"digit": acc, "all": acc}, ["digit"], rows, "legacy")


# -------------------------------------------------------------------------------------------- directories
def _fit(image: Tensor, size: int = 64) -> Tensor:
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(
        image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=min(image.shape[-2:]) > size
    )[0].clamp(0, 1)


def judge_directory(
    path: str | Path, all_attributes: Sequence[str] = ("colour", "shape", "position"), judge: str = "auto"
) -> dict:
    """Judge every PNG in ``path`` by the prompt in its metadata; ``{domain: JudgeReport dict}`` plus ``skipped``
    (prompts no judge can read: count, reasons, words) when there are any.

    ``judge``: ``auto`` (analysis by synthesis / robust digits) or ``legacy`` (the old CNNs). Images are resized to
    the judge's side (64 shapes, 32 digits) with a note in the report. Raises :class:`UserError` if the folder has
    no PNG, if an image carries no prompt (neither a PNG text chunk nor a JSON sidecar), or if no image at all
    could be judged.
    """
    from clip_t2i.renderers.outputs import read_image_record

    if judge not in JUDGE_CHOICES:
        raise UserError(f"--judge must be one of {', '.join(JUDGE_CHOICES)}, not {judge!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a directory")
    files = sorted(folder.glob("*.png"))
    if not files:
        raise UserError(f"{folder} holds no .png images")
    groups: dict[str, list[tuple[Path, str, Tensor]]] = {"shapes": [], "digits": []}
    unread: list[tuple[str, Any]] = []
    for f in files:
        record, image = read_image_record(f)
        if record and record.get("kind") == "grid":
            continue
        prompt = record.get("prompt") if record else None
        if not prompt:
            raise UserError(f"{f.name} carries no prompt (no PNG text chunk, no {f.stem}.json sidecar)")
        read = read_prompt(prompt)
        if read.domain is None:
            if judge == "legacy":
                raise UserError(f"{f.name}: prompt {prompt!r} is neither a one-object shapes nor a digits prompt")
            unread.append((f.name, read))
            continue
        groups[read.domain].append((f, prompt, image))
    if not any(groups.values()):
        s = _skip_summary(unread)
        raise UserError(
            f"none of the {s['n']} images in {folder} can be judged ({'; '.join(s['reasons'])}; words: "
            f"{', '.join(s['words']) or 'none'})"
        )
    out: dict[str, Any] = {}
    for domain, items in groups.items():
        if not items:
            continue
        side = 64 if domain == "shapes" else 32
        sizes = Counter(f"{img.shape[-2]}x{img.shape[-1]}" for _, _, img in items if img.shape[-2:] != (side, side))
        images = torch.stack([_fit(img, side) for _, _, img in items])
        prompts = [p for _, p, _ in items]
        names = [f.name for f, _, _ in items]
        report = (
            judge_shapes(images, prompts, judge=judge, names=names, all_attributes=all_attributes)
            if domain == "shapes"
            else judge_digits(images, prompts, judge=judge, names=names)
        )
        if sizes:
            report.notes.append(
                f"resized {sum(sizes.values())} image(s) ({', '.join(f'{k}: {v}' for k, v in sizes.items())}) "
                f"to {side}x{side}"
            )
        out[domain] = report.to_dict()
    if unread:
        out["skipped"] = _skip_summary(unread)
    return out
