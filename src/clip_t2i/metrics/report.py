"""`clip-t2i evaluate`: every metric on a folder of generated images, as JSON + Markdown + a PNG figure.

Images are read with their prompt metadata (PNG text chunk or JSON sidecar, as ``generate`` and ``sample``
write them). Images of mixed sizes are resized to one side (``size``, default: the most common side) with
antialiased bilinear interpolation before any feature extractor sees them.

Metrics (choose with ``metrics``):

* ``fid`` — Fréchet distance between generated and reference features (``features``: ``judge`` = the
  shapes/digits judge's penultimate layer, ``clip:NAME`` = any CLIP's image embedding, ``inception``,
  ``dinov2`` with local weights);
* ``prdc`` — precision / recall / density / coverage on the same features (k = 3 / 5);
* ``clip_score`` — 100·max(cos, 0) under an *evaluating* CLIP (``eval_clip``) that should differ from the
  guiding one (read from each image's ``model`` field): the report warns when they coincide;
* ``mppd`` — per-prompt diversity (mean pairwise cosine distance of the features of a prompt's images), on
  ``mppd_features`` (default for the shapes world: centred 16x16 pixels, which see the world's nuisance factors
  that judge and CLIP features are nearly blind to; otherwise ``features``); the report names them;
* ``vendi`` — Vendi score overall and per prompt;
* ``judge`` — recognised fraction, per-attribute and all-attributes accuracy of the default judges (shapes:
  analysis by synthesis; digits: robust classifier + realism gate) or, with ``judge="legacy"``, of the old CNN
  judges; for the shapes world also ``factor_diversity``: per nuisance factor, the spread over seeds of the fitted
  values of each prompt's recognised images relative to real renders of the same caption (mean over prompts).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from clip_t2i.errors import UserError

ALL_METRICS = ("fid", "prdc", "clip_score", "mppd", "vendi", "judge")


@dataclass
class ImageSet:
    """Images [N, 3, S, S] in [0, 1] with their metadata records (prompt, seed, model, ...)."""

    images: torch.Tensor
    records: list[dict[str, Any]]
    names: list[str] = field(default_factory=list)

    @property
    def prompts(self) -> list[str]:
        return [str(r.get("prompt", "")) for r in self.records]


def read_folder(folder: str | Path, size: int | None = None) -> ImageSet:
    """Read every generated PNG of ``folder`` (grids skipped); resize all to one side."""
    from clip_t2i.renderers.outputs import read_image_record

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a directory")
    files = sorted(folder.glob("*.png"))
    items = []
    for f in files:
        record, image = read_image_record(f)
        if record and record.get("kind") == "grid":
            continue
        items.append((f.name, record or {}, image))
    if not items:
        raise UserError(f"{folder} holds no generated .png images")
    if size is None:
        size = Counter(img.shape[-1] for _, _, img in items).most_common(1)[0][0]
    images = torch.stack([_fit(img, size) for _, _, img in items])
    return ImageSet(images, [r for _, r, _ in items], [n for n, _, _ in items])


def _fit(image: torch.Tensor, size: int) -> torch.Tensor:
    if image.shape[-2:] == (size, size):
        return image
    x = F.interpolate(
        image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=min(image.shape[-2:]) > size
    )
    return x[0].clamp(0, 1)


def domain_of(prompts: list[str]) -> str:
    """``shapes``, ``digits`` or ``other`` — what the prompts describe (for the judge and references)."""
    from clip_t2i.metrics.judges.prompts import prompt_domain

    kinds = {prompt_domain(p) for p in prompts}
    if kinds == {"shapes"}:
        return "shapes"
    if kinds == {"digits"}:
        return "digits"
    return "other"


def reference_images(reference: str, n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Real images: ``shapes`` (all combinations), ``digits`` (test split) or a folder of images."""
    if reference == "shapes":
        from clip_t2i.data.shapes import shapes_eval_set

        return shapes_eval_set(level="one", split="all", n=n, seed=seed, size=size)["image"]
    if reference == "digits":
        from clip_t2i.data.digits import DigitsDataset

        ds = DigitsDataset(split="test", size=size, seed=0)
        return torch.stack([ds[i % len(ds)]["image"] for i in range(min(n, len(ds)))])
    path = Path(reference)
    if not path.is_dir():
        raise UserError(f"--reference must be shapes, digits or a folder of images, not {reference!r}")
    from clip_t2i.data._common import IMAGE_EXTENSIONS, load_image

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:n]
    if not files:
        raise UserError(f"reference folder {path} holds no images")
    return torch.stack([load_image(f, size) for f in files])


def feature_extractor(spec: str, domain: str):
    """Build the extractor named by ``spec`` (``judge``, ``clip:NAME``, ``inception``, ``dinov2``)."""
    from clip_t2i.metrics import features as feats

    if spec == "judge":
        from clip_t2i.metrics.judges.cnn import judge_feature_extractor, load_judge

        if domain not in ("shapes", "digits"):
            raise UserError("--features judge needs shapes or digits prompts; use clip:NAME, inception or dinov2")
        return judge_feature_extractor(load_judge(f"{domain}-judge"))
    if spec.startswith("clip:"):
        from clip_t2i.backbones import load_clip

        return feats.ClipFeatures(load_clip(spec[5:]), name=spec)
    if spec == "inception":
        return feats.InceptionV3Features()
    if spec == "dinov2":
        return feats.DinoV2Features()
    raise UserError(f"--features must be judge, clip:NAME, inception or dinov2, not {spec!r}")


class _Stages:
    """A progress bar over the evaluation's stages (features, FID/PRDC, mPPD, Vendi, CLIP score, judge)."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="evaluate", unit="stage", disable=not enabled, dynamic_ncols=True)
        self.started = False

    def stage(self, name: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description_str(f"evaluate: {name}")

    def close(self) -> None:
        if self.started:
            self.bar.update(1)
        self.bar.close()


SMALL_N_FID = 1000  # below this many images FID is strongly biased upward: compare only at equal N


def _skip(report: dict[str, Any], metric: str, reason: str) -> None:
    """Record that ``metric`` could not be computed and why (report + one warning); the rest goes on."""
    report.setdefault("skipped", {})[metric] = reason
    report["warnings"].append(f"{metric} skipped: {reason}")


def evaluate_folder(
    folder: str | Path,
    *,
    metrics: tuple[str, ...] = ALL_METRICS,
    features: str = "judge",
    eval_clip: Any = "shapes-clip-rn",
    reference: str | None = None,
    n_reference: int = 1000,
    size: int | None = None,
    seed: int = 0,
    judge: str = "auto",
    mppd_features: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compute the requested metrics for the images of ``folder``; returns one JSON-able dict.

    ``judge``: ``auto`` (the default judges) or ``legacy`` (the old CNN judges' verdicts, to reproduce old
    tables). ``mppd_features``: features for mPPD (default: ``pixels16`` for the shapes world, else ``features``).
    """
    from clip_t2i.metrics.features import extract_features
    from clip_t2i.metrics.judges.scoring import JUDGE_CHOICES

    if judge not in JUDGE_CHOICES:
        raise UserError(f"--judge must be one of {', '.join(JUDGE_CHOICES)}, not {judge!r}")
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise UserError(f"unknown metric {unknown[0]!r}; choose from {', '.join(ALL_METRICS)}")
    data = read_folder(folder, size)
    n = len(data.records)
    prompts = data.prompts
    needs_prompts = bool({"mppd", "clip_score", "judge", "vendi"} & set(metrics))
    if needs_prompts and any(not p for p in prompts):
        missing = next(nm for nm, p in zip(data.names, prompts, strict=True) if not p)
        raise UserError(f"{missing} carries no prompt metadata (needed for {', '.join(sorted(metrics))})")
    domain = domain_of(prompts)
    report: dict[str, Any] = {
        "folder": str(folder),
        "n_images": n,
        "n_prompts": len(set(prompts)),
        "size": int(data.images.shape[-1]),
        "domain": domain,
        "features": features,
        "metrics": {},
        "warnings": [],
    }
    wanted = set(metrics)
    bar = _Stages(1 + bool({"fid", "prdc"} & wanted) + len(wanted & {"mppd", "vendi", "clip_score", "judge"}), progress)
    bar.stage("features")
    feat = None
    if {"fid", "prdc", "mppd", "vendi"} & set(metrics):
        extractor = feature_extractor(features, domain)
        feat = extract_features(extractor, data.images, batch_size=128)
        if not torch.isfinite(feat).all():
            raise UserError(f"the {features} features of some images are NaN or infinite")
    out = report["metrics"]
    if "mppd" in metrics:
        from clip_t2i.metrics.judges.diversity import PIXEL_FEATURES

        mppd_features = mppd_features or (PIXEL_FEATURES if domain == "shapes" else features)
        report["mppd_features"] = mppd_features
    if {"fid", "prdc"} & set(metrics):
        bar.stage("reference + FID / PRDC")
    if {"fid", "prdc"} & set(metrics):
        ref_name = reference or (domain if domain in ("shapes", "digits") else None)
        if ref_name is None:
            raise UserError("FID / PRDC need --reference (a folder of real images) for prompts outside built-in data")
        ref = reference_images(ref_name, n_reference, int(data.images.shape[-1]), seed)
        ref_feat = extract_features(extractor, ref, batch_size=128)
        report["reference"] = {"source": ref_name, "n": int(ref.shape[0])}
        if "fid" in metrics:
            from clip_t2i.metrics.frechet import frechet_distance

            if n < 2:
                _skip(report, "fid", f"FID needs at least 2 images, the folder has {n}")
            else:
                out["fid"] = float(frechet_distance(ref_feat, feat))
                if n < SMALL_N_FID:
                    report["warnings"].append(
                        f"FID on {n} images (< {SMALL_N_FID}) is biased upward and noisy: compare it only with FIDs "
                        f"at the same N and features"
                    )
        if "prdc" in metrics:
            from clip_t2i.metrics.prdc import compute_prdc

            if n < 4:
                _skip(
                    report, "prdc", f"precision/recall (k = 3 neighbours) needs at least 4 images, the folder has {n}"
                )
            else:
                r = compute_prdc(ref_feat, feat, k=3)
                out["prdc"] = {k: float(getattr(r, k)) for k in ("precision", "recall", "density", "coverage")}
    if "mppd" in metrics:
        bar.stage("mPPD")
    if "mppd" in metrics:
        from clip_t2i.metrics.diversity import per_prompt_distance

        mfeat = feat
        if mppd_features != features:
            if mppd_features == "pixels16":
                from clip_t2i.metrics.judges.diversity import pixel_feature_extractor

                mext = pixel_feature_extractor()
            else:
                mext = feature_extractor(mppd_features, domain)
            mfeat = extract_features(mext, data.images, batch_size=128)
        counts: dict[str, int] = {}
        for p in prompts:
            counts[str(p)] = counts.get(str(p), 0) + 1
        keep = [i for i, p in enumerate(prompts) if counts[str(p)] >= 2]
        single = sorted(p for p, c in counts.items() if c < 2)
        if not keep:
            _skip(
                report, "mppd", "per-prompt diversity needs at least 2 images (seeds) of one prompt; every prompt has 1"
            )
        else:
            if single:
                report["warnings"].append(
                    f"mppd over {len(counts) - len(single)} of {len(counts)} prompts: {len(single)} prompt(s) have a "
                    f"single image (e.g. {single[0]!r}) and are left out"
                )
            res = per_prompt_distance(mfeat[keep], [prompts[i] for i in keep], distance="cosine")
            out["mppd"] = float(res.mean)
            out["ppd_per_prompt"] = {str(p): float(v) for p, v in zip(res.prompt_ids, res.values, strict=True)}
    if "vendi" in metrics:
        bar.stage("Vendi")
    if "vendi" in metrics:
        from clip_t2i.metrics.vendi import per_prompt_vendi, vendi_score

        out["vendi"] = float(vendi_score(feat))
        pv = per_prompt_vendi(feat, prompts)
        out["vendi_per_prompt_mean"] = float(pv.mean)
    if "clip_score" in metrics:
        bar.stage("CLIP score")
    if "clip_score" in metrics:
        from clip_t2i.backbones import load_clip
        from clip_t2i.metrics.clip_score import compute_clip_score

        guides = sorted({str(r.get("model")) for r in data.records if r.get("model")})
        guide = guides[0] if len(guides) == 1 else (",".join(guides) or None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ev = load_clip(eval_clip) if isinstance(eval_clip, str) else eval_clip
            eval_clip = eval_clip if isinstance(eval_clip, str) else getattr(ev, "name", "clip")
            res = compute_clip_score(data.images, prompts, ev, eval_model_id=eval_clip, guide_model_id=guide)
        out["clip_score"] = {
            "value": float(res.score),
            "eval_clip": eval_clip,
            "guide": guide,
            "same_model": bool(res.same_model),
        }
        report["warnings"] += [str(w.message) for w in caught]
    if "judge" in metrics:
        bar.stage("judge")
    if "judge" in metrics:
        from clip_t2i.metrics.judges.scoring import judge_digits, judge_shapes

        if domain in ("shapes", "digits"):
            fn = judge_shapes if domain == "shapes" else judge_digits
            rep = fn(data.images, prompts, judge=judge)
            out["judge"] = rep.accuracy
            report["judge"] = {"name": rep.judge, "n": rep.n, "skipped": rep.skipped, "notes": rep.notes}
            if domain == "shapes" and getattr(rep, "fit", None) is not None:
                from clip_t2i.metrics.judges.diversity import factor_diversity

                fd = factor_diversity(rep.fit, [prompts[i] for i in rep.judged], seed=seed)
                out["factor_diversity"] = {**fd["ratio"], "mean": fd["mean"], "mean_capped": fd["mean_capped"]}
                out["factor_std"] = fd["std"]
                out["factor_std_real"] = fd["std_real"]
                out["factor_diversity_per_prompt"] = fd["per_prompt"]
                report["factor_diversity"] = {k: fd[k] for k in ("n_prompts", "n_prompts_skipped", "n_real_per_prompt")}
        else:
            from clip_t2i.metrics.judges.prompts import read_prompt

            words = sorted({w for p in prompts for w in read_prompt(p).words})
            report["warnings"].append(
                "judge skipped: prompts are not all shapes or all digits prompts"
                + (f" (words the judges cannot read: {', '.join(words)})" if words else "")
            )
    report["_data"] = data
    bar.close()
    return report


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.png`` (sample grid per prompt + metric bars)."""
    from clip_t2i.utils.io import atomic_write, atomic_write_text

    out_dir = Path(out_dir)
    data: ImageSet = report["_data"]
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    atomic_write_text(paths["json"], json.dumps(public, indent=2) + "\n")
    atomic_write_text(paths["md"], markdown_table(public))
    figure = render_figure(data, public)
    with atomic_write(paths["png"]) as tmp:
        figure.save(tmp, format="PNG")
    return paths


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics with dotted names (per-prompt tables left out)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if k.endswith("_per_prompt"):
            continue
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if isinstance(v2, int | float) and not isinstance(v2, bool):
                    out[f"{k}.{k2}"] = float(v2)
        elif isinstance(v, int | float):
            out[k] = float(v)
    return out


def markdown_table(report: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in flat_metrics(report["metrics"]).items())
    warn = "".join(f"\n> warning: {w}\n" for w in report.get("warnings", []))
    return (
        f"# Evaluation of `{report['folder']}`\n\n{report['n_images']} images, {report['n_prompts']} prompts, "
        f"{report['size']}×{report['size']}, features: {report['features']}"
        + (f", mPPD features: {report['mppd_features']}" if report.get("mppd_features") else "")
        + (f", judge: {report['judge']['name']}" if isinstance(report.get("judge"), dict) else "")
        + f"\n{warn}\n"
        f"| metric | value |\n|---|---|\n{rows}\n"
    )


def render_figure(data: ImageSet, report: dict[str, Any], per_prompt: int = 8, max_prompts: int = 12):
    """A PIL image: one row of samples per prompt, then one bar per metric in [0, 1] (others as text)."""
    from PIL import Image, ImageDraw

    from clip_t2i.renderers.outputs import to_uint8

    tile, pad, label_w = 64, 2, 260
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(data.prompts):
        groups.setdefault(p, []).append(i)
    prompts = list(groups)[:max_prompts]
    scalars = flat_metrics(report["metrics"])
    width = label_w + per_prompt * (tile + pad) + pad
    height = len(prompts) * (tile + pad) + pad + 20 * len(scalars) + 30
    fig = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(fig)
    for r, p in enumerate(prompts):
        y = pad + r * (tile + pad)
        draw.text((4, y + tile // 2 - 6), p[:40], fill="black")
        for c, idx in enumerate(groups[p][:per_prompt]):
            img = data.images[idx]
            img = F.interpolate(img[None], size=(tile, tile), mode="nearest")[0]
            fig.paste(Image.fromarray(to_uint8(img)), (label_w + c * (tile + pad), y))
    y0 = len(prompts) * (tile + pad) + 20
    for j, (k, v) in enumerate(scalars.items()):
        y = y0 + j * 20
        draw.text((4, y), f"{k}: {v:.4f}", fill="black")
        if 0.0 <= v <= 1.0:
            draw.rectangle([label_w, y + 2, label_w + int(v * (width - label_w - 10)), y + 14], fill=(70, 110, 200))
    return fig
