"""Sampling from a trained GAN: ``sample(gan, prompts, n, seed)`` and PNGs that say how they were made.

Image ``i`` (0..n-1) of every prompt uses noise ``z = randn(z_dim)`` from a generator seeded with
``seed + i``: the same seed gives the same image in any batch, and one seed across prompts shares z.
PNG files carry ``prompt``, ``seed``, ``model`` (and a ``clip_t2i`` JSON chunk) as text chunks; a JSON
sidecar of the same name holds the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clip_t2i.errors import UserError

if TYPE_CHECKING:  # torch and the model code load on first use: `import clip_t2i.gan` stays light for the CLI
    import torch
    from torch import Tensor

    from clip_t2i.gan.model import GanModel


@dataclass
class Samples:
    """Generated images ``[N, 3, H, W]`` in [0, 1] with the prompt and seed of each."""

    images: Tensor
    prompts: list[str]
    seeds: list[int]
    model: str
    info: dict[str, Any] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        recs = [
            {"prompt": p, "seed": s, "model": self.model, **self.info}
            for p, s in zip(self.prompts, self.seeds, strict=True)
        ]
        for r, path in zip(recs, self.paths, strict=False):
            r["file"] = str(path)
        return recs


def check_prompts(prompts: str | Sequence[str]) -> list[str]:
    """A non-empty list of non-empty prompts (one-line errors otherwise)."""
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    if not items:
        raise UserError("no prompts given")
    for p in items:
        if not isinstance(p, str) or not p.strip():
            raise UserError("empty prompt: give some text, e.g. 'a red circle on the left'")
    return [p.strip() for p in items]


def read_prompt_file(path: str | Path) -> list[str]:
    """Prompts from a text file, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read prompt file {path}: {e}") from None
    prompts = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not prompts:
        raise UserError(f"prompt file {path} holds no prompts (one per line expected)")
    return prompts


def noise(seeds: Sequence[int], z_dim: int) -> Tensor:
    """``[len(seeds), z_dim]`` standard normal noise, row i from ``torch.Generator().manual_seed(seeds[i])``."""
    import torch

    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def generate(G: Any, clip: Any, prompts: Sequence[str], seeds: Sequence[int], batch_size: int = 256) -> Tensor:
    """Images ``[N, 3, S, S]`` in [0, 1] from generator ``G`` for aligned lists of prompts and seeds (no grad)."""
    import torch

    from clip_t2i.gan.networks import text_embedding

    device = next(G.parameters()).device
    uniq = sorted(set(prompts))
    row = {p: i for i, p in enumerate(uniq)}
    out = []
    with torch.inference_mode():
        emb = torch.cat([text_embedding(clip, uniq[i : i + 512]) for i in range(0, len(uniq), 512)])
        for s in range(0, len(prompts), batch_size):
            e = emb[[row[p] for p in prompts[s : s + batch_size]]].to(device)
            z = noise(seeds[s : s + batch_size], G.z_dim).to(device)
            out.append(G(z, e).float().clamp_(-1, 1).mul_(0.5).add_(0.5).cpu())
    return torch.cat(out)


def sample(
    gan: str | Path | GanModel,
    prompts: str | Sequence[str],
    n: int = 16,
    seed: int = 0,
    *,
    out: str | Path | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    allow_untrained: bool = False,
    overwrite: bool = False,
) -> Samples:
    """Generate ``n`` images per prompt (seeds ``seed .. seed + n - 1``); write PNGs + sidecars to ``out`` if set.

    Args:
        gan: a :class:`GanModel` or what :func:`~clip_t2i.gan.model.load_gan` accepts (zoo name, file, run folder).
        prompts: one prompt or a list.
        overwrite: replace files of the same names in ``out`` (else an existing one is an error before any work).

    Raises:
        UserError: empty prompts, ``n`` < 1, a bad or untrained checkpoint, an unusable output folder.
    """
    items = check_prompts(prompts)
    from clip_t2i.renderers.outputs import image_file_names
    from clip_t2i.utils.checks import check_cap, check_int
    from clip_t2i.utils.paths import check_writable_dir, refuse_existing

    check_int(n, "--n")
    check_int(seed, "--seed", minimum=0)
    check_cap(n * len(items), "seeds", "prompts x --n =")
    check_int(batch_size, "--batch-size", cap="batch")
    if out is not None:
        check_writable_dir(Path(out))
        refuse_existing(Path(out), image_file_names(items, range(seed, seed + n)), overwrite)
    from clip_t2i.gan.model import GanModel, load_gan

    model = gan if isinstance(gan, GanModel) else load_gan(gan, device=device, allow_untrained=allow_untrained)
    all_prompts = [p for p in items for _ in range(n)]
    all_seeds = [seed + i for _ in items for i in range(n)]
    images = generate(model.G, model.clip, all_prompts, all_seeds, batch_size)
    name = Path(model.source).name if Path(model.source).suffix else model.source
    info = {
        "variant": model.config.name,
        "steps": model.steps,
        "resolution": model.resolution,
        "clip": model.meta["clip"]["ref"],
    }
    result = Samples(images=images, prompts=all_prompts, seeds=all_seeds, model=name, info=info)
    if out is not None:
        result.paths = save_samples(result, out)
    return result


def save_samples(samples: Samples, out: str | Path) -> list[Path]:
    """PNG (record in text chunks) + JSON sidecar per image, named like every image-writing command's
    (:func:`~clip_t2i.renderers.outputs.image_stem`).

    Uses the project's image-record format (:func:`clip_t2i.renderers.outputs.save_png`: ``prompt``, ``seed``,
    ``model``, ``settings`` chunks and the whole record as JSON under ``clip_t2i``), so ``clip-t2i judge``
    reads GAN samples like any other generated image.
    """
    from clip_t2i.renderers.outputs import image_stem, save_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = {p: i for i, p in enumerate(dict.fromkeys(samples.prompts))}
    paths = []
    for img, rec in zip(samples.images, samples.records(), strict=True):
        stem = image_stem(order[rec["prompt"]], rec["prompt"], rec["seed"])
        record = {
            "prompt": rec["prompt"],
            "seed": rec["seed"],
            "model": rec["model"],
            "renderer": "gan",
            "settings": {k: rec[k] for k in ("variant", "steps", "resolution", "clip") if k in rec},
            "file": f"{stem}.png",
        }
        paths.append(save_png(out / f"{stem}.png", img, record))
    return paths
