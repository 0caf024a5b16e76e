"""``generate``: text to images with CLIP guidance alone, batched over prompts x seeds.

Stages: :func:`check_inputs` (everything a user can get wrong, before any compute or file), load the CLIP,
build the renderer from a preset, embed the prompts (cached), initialise one image per (prompt, seed) from
that seed's generator, run :func:`~clip_t2i.guidance.loop.run_guidance` in chunks that fit memory, then
write PNGs with metadata (+ JSON sidecars, GIF / MP4 animations).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from clip_t2i.errors import UserError
from clip_t2i.renderers.presets import DEFAULT_PRESET

DEFAULT_MODEL = "shapes-clipag"
MAX_VIEWS_PER_FORWARD = 2048
DEMO_PROMPTS = (
    "a red circle on the left",
    "a blue square at the top",
    "a yellow triangle in the center",
    "a green cross on the right",
    "a purple circle at the bottom",
    "an orange square in the middle",
)


@dataclass
class GenerationResult:
    """Images ``[N, 3, H, W]`` (prompt-major: all seeds of prompt 0, then prompt 1, ...), one record per image
    (prompt, seed, model, renderer, preset, similarity, best step, settings, files), timings and snapshots."""

    images: Tensor
    records: list[dict[str, Any]]
    seconds: float
    snapshots: list[list[tuple[int, Tensor]]] = field(default_factory=list)
    svgs: list[str] = field(default_factory=list)  # one SVG document per image for vector renderers (strokes)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(1, self.images.shape[0])

    def __repr__(self) -> str:
        prompts = list(dict.fromkeys(r["prompt"] for r in self.records))
        shown = ", ".join(repr(p) for p in prompts[:3]) + (", ..." if len(prompts) > 3 else "")
        return (
            f"GenerationResult({self.images.shape[0]} images {tuple(self.images.shape[1:])}, prompts [{shown}], "
            f"{self.seconds:.1f} s)"
        )


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """Seeds from ``"0-7"``, ``"1,5,9"``, ``"3"``, an int or a list; :class:`UserError` if malformed."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        seeds = [spec]
    elif isinstance(spec, str):
        seeds = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                raise UserError(f"malformed seeds {spec!r}: use e.g. 0-7 or 1,5,9")
            lo, sep, hi = part.partition("-")
            try:
                ends = [int(lo), int(hi)] if sep else [int(part)]
            except ValueError:
                raise UserError(f"malformed seeds {spec!r}: use e.g. 0-7 or 1,5,9") from None
            if sep and ends[1] < ends[0]:
                raise UserError(f"seed range {part!r} runs backwards")
            if sep:
                from clip_t2i.utils.checks import check_cap

                check_cap(ends[1] - ends[0] + 1, "seeds", f"--seeds {part}:")
            seeds.extend(range(ends[0], ends[1] + 1) if sep else ends)
    else:
        seeds = [int(s) for s in spec]
    if not seeds:
        raise UserError("no seeds given")
    if any(s < 0 for s in seeds):
        raise UserError("seeds must be non-negative")
    return seeds


def check_inputs(
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int | None,
    out: str | Path | None,
    mp4: bool,
    init_image: str | None,
    size: int | None = None,
    batch_size: int | None = None,
) -> list[str]:
    """Validate user input before any compute; returns the prompt list."""
    from clip_t2i.guidance.prompts import parse_prompt

    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise UserError("empty prompt: give at least one prompt")
    for p in prompts:
        parse_prompt(p)
    from clip_t2i.utils.checks import check_cap, check_int

    if steps is not None:
        check_int(steps, "--steps", cap="steps")
    if not seeds:
        raise UserError("no seeds given")
    check_cap(len(prompts) * len(seeds), "seeds", "prompts x seeds =")
    if size is not None:
        check_int(size, "--size", minimum=8, cap="image_size")
    if batch_size is not None:
        check_int(batch_size, "--batch-size", cap="batch")
    if out is not None:
        from clip_t2i.utils.paths import check_writable_dir

        check_writable_dir(Path(out))
    if mp4:
        from clip_t2i.renderers.outputs import require_mp4_encoder

        require_mp4_encoder()
    if init_image is not None:
        from clip_t2i.renderers.priors import load_init_image

        load_init_image(init_image, 16)
    return prompts


def load_guide(
    model: str,
    device: str | torch.device = "cpu",
    pretrained: str | None = None,
    image_tower: str | Path | None = None,
):
    """The guiding CLIP (``load_clip(model, pretrained, image_tower=...)``); a one-line error if the default robust
    model is not in the zoo yet."""
    from clip_t2i import zoo
    from clip_t2i.backbones import load_clip

    if model == DEFAULT_MODEL and model not in zoo.list_zoo():
        available = [n for n in zoo.list_zoo() if "judge" not in n]
        raise UserError(
            f"the default model {DEFAULT_MODEL} is not in the zoo yet; pass --model "
            f"{available[0] if available else 'PATH.safetensors'} (zoo: {', '.join(available) or 'empty'})"
        )
    return load_clip(model, pretrained, image_tower=image_tower, device=device)


def generate(
    prompts: str | Sequence[str],
    *,
    model: str | Any = DEFAULT_MODEL,
    seeds: int | str | Sequence[int] = (0,),
    steps: int | None = None,
    preset: str = DEFAULT_PRESET,
    renderer: str | None = None,
    size: int | None = None,
    init_image: str | None = None,
    guidance: dict[str, Any] | None = None,
    renderer_options: dict[str, Any] | None = None,
    out: str | Path | None = None,
    gif: bool = False,
    mp4: bool = False,
    progress: bool | Callable[[int, int, float], None] = False,
    preview: Callable[[int, int, Tensor], None] | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    strict: bool = False,
    pretrained: str | None = None,
    image_tower: str | Path | None = None,
) -> GenerationResult:
    """Generate one image per (prompt, seed) with CLIP guidance.

    Args:
        prompts: a prompt or a list; each may weight sub-prompts pixray-style (``"a red circle:1 | blurry:-0.5"``).
        model: zoo name, ``.safetensors`` file or any name :func:`~clip_t2i.backbones.load_clip` accepts, or an
            already loaded ``ClipModel``.
        seeds: ints, ``"0-7"`` or ``"1,5"``; seed ``s`` fixes the start image and every random view of its image.
        steps: overrides the preset's step count.
        preset: a preset name (:func:`~clip_t2i.renderers.presets.list_presets`) or a ``.json`` file.
        renderer: overrides the preset's renderer (``pixels``, ``pyramid``, ...).
        size: image side (default: the CLIP's input size).
        init_image: start from this image file (sets the renderer's ``init`` to ``image``).
        guidance, renderer_options: field overrides of the preset.
        out: folder for PNGs (+ JSON sidecars, animations); nothing is written if None.
        gif, mp4: also write the optimisation as an animation per image (mp4 needs ffmpeg).
        progress: show a progress bar (True) or call ``progress(step, total, similarity)``.
        preview: called after every step as ``preview(step, total, images)`` with the images that step scored
            (``[B, 3, H, W]`` of the current chunk, detached): for streaming the drawing as it forms.
        batch_size: images optimised together (default: as many as keep one forward <= 2048 views).
        pretrained, image_tower: weights for ``model`` as in :func:`~clip_t2i.backbones.load_clip`.
        strict: refuse prompts with words the model never saw in training (default: warn and go on).
        overwrite: replace files of the same names in ``out``; without it an existing file is an error (raised
            before any compute), files with other names are left alone.

    Returns:
        :class:`GenerationResult`.

    Raises:
        UserError: bad prompt / weights / seeds / steps, unwritable ``out``, unreadable init image, missing model,
            mp4 without an encoder; all checked before any compute or file is written.
    """
    from clip_t2i.guidance.loop import run_guidance
    from clip_t2i.guidance.prompts import TextEmbeddingCache, build_targets
    from clip_t2i.renderers.base import InitContext, build_renderer
    from clip_t2i.renderers.presets import get_preset

    t0 = time.perf_counter()
    seed_list = parse_seeds(seeds)
    prompt_list = check_inputs(
        prompts if not isinstance(prompts, str) else [prompts], seed_list, steps, out, mp4, init_image, size, batch_size
    )
    g_over = dict(guidance or {})
    if steps is not None:
        g_over["steps"] = steps
    if gif or mp4:
        g_over.setdefault("snapshot_every", 0)
    r_over = dict(renderer_options or {})
    if init_image is not None:
        r_over.update(init="image", init_image=str(init_image))
    cfg = get_preset(preset).with_overrides(guidance=g_over, renderer=renderer, renderer_options=r_over)
    if (gif or mp4) and cfg.guidance.snapshot_every == 0:
        import dataclasses

        cfg = dataclasses.replace(
            cfg, guidance=dataclasses.replace(cfg.guidance, snapshot_every=max(1, cfg.guidance.steps // 30))
        )
    if out is not None:
        from clip_t2i.utils.paths import refuse_existing

        svg = _writes_svg(cfg.renderer)
        refuse_existing(Path(out), output_names(prompt_list, seed_list, gif=gif, mp4=mp4, svg=svg), overwrite)
    clip = load_guide(model, device, pretrained, image_tower) if isinstance(model, str) else model
    model_name = model if isinstance(model, str) else getattr(model, "name", "clip")
    from clip_t2i.backbones.vocabulary import check_prompts

    check_prompts(clip, prompt_list, str(model_name), strict=strict)
    from clip_t2i.guidance.loop import resolve_translation

    resolve_translation(cfg.guidance, clip)  # a shift in tokens this CLIP cannot take fails before any work
    side = int(size or clip.image_size)
    rend = build_renderer(cfg.renderer, side, cfg.renderer_options)
    encoder = TextEmbeddingCache(clip)
    pairs = [(p, s) for p in prompt_list for s in seed_list]
    views = cfg.guidance.global_views + cfg.guidance.patch_views
    chunk = batch_size or max(1, MAX_VIEWS_PER_FORWARD // views)
    total_steps = cfg.guidance.steps * math.ceil(len(pairs) / chunk)
    bar = _progress_bar(progress, total_steps, len(pairs))
    done = 0
    images, snaps, records, svgs = [], [], [], []
    try:
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            targets = build_targets([p for p, _ in part], encoder)
            gens = [torch.Generator().manual_seed(s) for _, s in part]
            if bar is not None:  # the start (prior fit, pool scoring) can take seconds: say so instead of 0/N
                bar.set_description_str(f"preparing {len(part)} start image{'s' * (len(part) != 1)}")
            params = rend.init(len(part), gens, InitContext(clip=clip, targets=targets))
            if bar is not None:
                bar.set_description_str(f"generating {len(pairs)} image{'s' * (len(pairs) != 1)}")

            def on_step(info, _base=done) -> None:
                sim = float(info.similarity.mean())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(sim=f"{sim:.3f}")
                elif callable(progress):
                    progress(_base + info.step + 1, total_steps, sim)
                if preview is not None and info.images is not None:
                    preview(_base + info.step + 1, total_steps, info.images)

            res = run_guidance(rend, params, clip, targets, gens, cfg.guidance, callback=on_step)
            done += cfg.guidance.steps
            images.append(res.images.detach().cpu())
            if hasattr(rend, "to_svg"):  # vector renderers: the final strokes as SVG
                svgs.extend(rend.to_svg(params, i) for i in range(len(part)))
            for i, (p, s) in enumerate(part):
                snaps.append([(st, im[i]) for st, im in res.snapshots])
                records.append(
                    {
                        "prompt": p,
                        "seed": s,
                        "model": str(model_name),
                        "renderer": cfg.renderer,
                        "preset": cfg.name,
                        "steps": cfg.guidance.steps,
                        "size": side,
                        "similarity": round(float(res.best_similarity[i]), 5),
                        "best_step": int(res.best_step[i]),
                        "global_loss": round(float(res.best_loss[i]), 5),
                        "settings": {"renderer_options": cfg.renderer_options, "guidance": cfg.to_dict()["guidance"]},
                    }
                )
    finally:
        if bar is not None:
            bar.close()
    all_images = torch.cat(images)
    seconds = time.perf_counter() - t0
    for r in records:
        r["seconds_per_image"] = round(seconds / len(records), 3)
    result = GenerationResult(all_images, records, seconds, snaps, svgs)
    if out is not None:
        write_outputs(result, Path(out), gif=gif, mp4=mp4)
    return result


def output_names(
    prompts: Sequence[str], seeds: Sequence[int], gif: bool = False, mp4: bool = False, svg: bool = False
) -> list[str]:
    """Every file name :func:`write_outputs` will write for these prompts and seeds."""
    from clip_t2i.renderers.outputs import image_file_names

    return image_file_names(prompts, seeds, [".png", ".json"] + [".gif"] * gif + [".mp4"] * mp4 + [".svg"] * svg)


def _writes_svg(renderer: str) -> bool:
    """Whether ``renderer`` exports SVG (has ``to_svg``)."""
    from clip_t2i.renderers.base import renderer_class

    return hasattr(renderer_class(renderer), "to_svg")


def _progress_bar(progress: Any, total: int, n_images: int):
    if progress is not True:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=f"generating {n_images} image{'s' * (n_images != 1)}", unit="step", dynamic_ncols=True
    )


def write_outputs(result: GenerationResult, out: Path, gif: bool = False, mp4: bool = False) -> None:
    """PNG (+ text chunks) and JSON sidecar per image, optional GIF / MP4; file names recorded in the records."""
    from clip_t2i.renderers.outputs import image_stem, save_gif, save_mp4, save_png, save_svg

    out.mkdir(parents=True, exist_ok=True)
    prompt_index: dict[str, int] = {}
    for i, rec in enumerate(result.records):
        pi = prompt_index.setdefault(rec["prompt"], len(prompt_index))
        stem = image_stem(pi, rec["prompt"], rec["seed"])
        rec["file"] = f"{stem}.png"
        if gif:
            rec["gif"] = f"{stem}.gif"
        if mp4:
            rec["mp4"] = f"{stem}.mp4"
        if result.svgs:
            rec["svg"] = f"{stem}.svg"
            save_svg(out / rec["svg"], result.svgs[i])
        save_png(out / rec["file"], result.images[i], rec)
        frames = [im for _, im in result.snapshots[i]] if result.snapshots else []
        if gif and frames:
            save_gif(out / rec["gif"], frames)
        if mp4 and frames:
            save_mp4(out / rec["mp4"], frames)


DEMO_COMPARE = "shapes-clip"  # the vanilla CLIP the robust default is compared with
DEMO_PRESET = DEFAULT_PRESET  # a neutral (dark-grey) start: shapes can only come from the gradients
# `clip-t2i demo --world W`: (robust model, vanilla model, prompts); digits is the default (its gradients draw)
DEMO_WORLDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "digits": (
        "digits-clipag",
        "digits-clip",
        tuple(f"a handwritten digit {w}" for w in ("zero", "one", "two", "three", "four", "five", "six", "seven")),
    ),
    "shapes": ("shapes-clipag", "shapes-clip", DEMO_PROMPTS),
}


def demo_grid(
    model: str | Any = DEFAULT_MODEL,
    out: str | Path = "outputs/demo",
    prompts: Sequence[str] = DEMO_PROMPTS,
    preset: str = DEMO_PRESET,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
    compare: str | Any | None = DEMO_COMPARE,
    **generate_kwargs: Any,
) -> Path:
    """Draw a handful of shapes prompts (one seed each) with ``model`` and, side by side, with ``compare`` (same
    preset, prompts and seed); returns the path of the labelled grid ``out/grid.png`` (one row per model).

    The default compares the robust ``shapes-clipag`` with the vanilla ``shapes-clip`` from the ``pag`` preset's
    dark-grey start, so what the grid shows is what each CLIP's gradients draw (``preset="retrieval"`` starts from a
    retrieved prior sample instead). Each model's PNGs (with metadata) go to ``out/<model>/``. Files already in
    ``out`` are left alone; one this call would write is an error before any work, unless ``overwrite``.
    """
    from clip_t2i.renderers.outputs import make_grid, save_png, slugify
    from clip_t2i.utils.paths import check_writable_dir, refuse_existing

    models = [model] + ([compare] if compare is not None else [])
    names = [m if isinstance(m, str) else getattr(m, "name", "clip") for m in models]
    slugs = [slugify(n) for n in names]
    slugs = [s if slugs.index(s) == i else f"{s}-{i + 1}" for i, s in enumerate(slugs)]  # same model twice
    folders = [Path(out) / s for s in slugs] if len(models) > 1 else [Path(out)]
    check_writable_dir(Path(out))
    refuse_existing(Path(out), ["grid.png"], overwrite)
    for folder in folders:
        refuse_existing(folder, output_names(list(prompts), [seed]), overwrite)
    results = [
        generate(
            list(prompts),
            model=m,
            seeds=[seed],
            preset=preset,
            out=folder,
            progress=progress,
            overwrite=overwrite,
            **generate_kwargs,
        )
        for m, folder in zip(models, folders, strict=True)
    ]
    images = torch.cat([r.images for r in results])
    labels = [f"{n}: {p}" if len(models) > 1 else p for n in names for p in prompts]
    ncol = len(prompts) if len(models) > 1 else min(len(prompts), 3)
    grid = make_grid(images, ncol=ncol, labels=labels)
    record = {
        "kind": "grid",
        "prompts": list(prompts),
        "model": names[0],
        "models": names,
        "preset": preset,
        "seed": seed,
        "seconds": round(sum(r.seconds for r in results), 2),
        "files": [
            str(f.relative_to(out) / r["file"]) for f, res in zip(folders, results, strict=True) for r in res.records
        ],
    }
    return save_png(Path(out) / "grid.png", grid, record, sidecar=False)
