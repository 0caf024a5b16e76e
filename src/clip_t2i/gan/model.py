"""Self-describing GAN checkpoints: one safetensors file holding the generator and naming its CLIP.

Tensors: ``G.<name>`` (the generator's trainable weights, usually the EMA copy) and, when the CLIP is embedded,
``clip.<name>`` (the whole CLIP: the text tower encodes prompts at sampling time). Metadata ``clip_t2i_gan``
(JSON): ``format``, ``config`` (the :class:`~clip_t2i.gan.variants.GanConfig`), ``resolution``, ``steps``,
and ``clip`` = ``{"ref", "embedded", "fingerprint", "config"}``. A referenced CLIP (a zoo name such as
``shapes-clip``, keeping the file small) is loaded with ``load_clip(ref)`` and must match the fingerprint
(SHA-1 of its fp16-rounded weights, so an fp16 zoo copy of an fp32 CLIP matches).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clip_t2i.errors import UserError
from clip_t2i.gan.config import EMBED_CHOICES
from clip_t2i.utils.io import atomic_write

GAN_META_KEY = "clip_t2i_gan"
FORMAT = 1


def clip_fingerprint(clip: nn.Module) -> str:
    """SHA-1 (16 hex) of the CLIP's weights rounded to fp16, in key order."""
    h = hashlib.sha1()
    for k, v in sorted(clip.model.state_dict().items()):
        h.update(k.encode())
        t = v.detach().cpu()
        h.update((t.half() if t.is_floating_point() else t).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def should_embed(clip_source: str, embed: str) -> bool:
    """Embed the CLIP unless it is a zoo model (``auto``), or as forced."""
    if embed not in EMBED_CHOICES:
        raise UserError(f"embed_clip must be one of {list(EMBED_CHOICES)}, got {embed!r}")
    if embed != "auto":
        return embed == "always"
    from clip_t2i import zoo

    return str(clip_source) not in zoo.list_zoo()


def save_gan(
    path: str | Path,
    G: nn.Module,
    clip: nn.Module,
    config: Any,
    clip_source: str,
    *,
    steps: int,
    embed_clip: str = "auto",
    half: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the generator (+ CLIP or its reference) as one safetensors file, atomically; NaN/inf are refused."""
    from safetensors.torch import save_file

    from clip_t2i.utils.io import require_finite

    embed = should_embed(clip_source, embed_clip)
    sd = {f"G.{k}": v for k, v in G.trainable_state_dict().items()}
    if embed:
        sd.update({f"clip.{k}": v for k, v in clip.model.state_dict().items()})
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in sd.items()}
    require_finite(sd, f"the generator to {path}")
    meta = {
        "format": FORMAT,
        "config": config.to_dict(),
        "resolution": int(G.resolution),
        "z_dim": int(G.z_dim),
        "steps": int(steps),
        "clip": {
            "ref": str(clip_source),
            "embedded": embed,
            "fingerprint": clip_fingerprint(clip),
            "config": clip.config,
        },
        **(extra or {}),
    }
    path = Path(path)
    with atomic_write(path) as tmp:
        save_file(sd, str(tmp), metadata={GAN_META_KEY: json.dumps(meta, default=str)})
    return path


@dataclass
class GanModel:
    """A loaded generator with its CLIP (for the text tower) and provenance."""

    G: nn.Module
    clip: nn.Module
    config: Any
    meta: dict[str, Any]
    source: str

    @property
    def resolution(self) -> int:
        return int(self.G.resolution)

    @property
    def steps(self) -> int:
        return int(self.meta.get("steps", 0))

    def to(self, device: str | torch.device) -> GanModel:
        self.clip.to(device)
        self.G.to(device)
        return self


def resolve_checkpoint(source: str | Path) -> Path:
    """A GAN weights file from a zoo name, a file, a run folder or a checkpoint folder."""
    from clip_t2i import zoo

    name = str(source)
    if name in zoo.list_zoo():
        return zoo.zoo_path(name)
    path = Path(name).expanduser()
    if path.is_dir():
        from clip_t2i.training.checkpoint import latest_checkpoint

        for cand in (path / "final.safetensors", path / "model.safetensors"):
            if cand.is_file():
                return cand
        ckpt = latest_checkpoint(path)
        if ckpt is not None and (ckpt / "model.safetensors").is_file():
            return ckpt / "model.safetensors"
        raise UserError(f"{path} holds no GAN checkpoint (final.safetensors or checkpoints/step_*/model.safetensors)")
    if not path.is_file():
        raise UserError(f"GAN checkpoint {name!r} is neither a zoo model nor an existing file or run folder")
    return path


def read_gan_meta(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(GAN_META_KEY)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise UserError(f"cannot read {path} as safetensors: {str(e)[:160]}") from None
    if raw is None:
        raise UserError(f"{path} is not a clip-t2i GAN checkpoint (no {GAN_META_KEY} metadata)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} has GAN checkpoint format {meta.get('format')}, this version reads {FORMAT}")
    return meta


def load_gan(
    source: str | Path,
    *,
    device: str | torch.device = "cpu",
    allow_untrained: bool = False,
    clip: nn.Module | None = None,
) -> GanModel:
    """Load a generator from a checkpoint (zoo name, file, run or checkpoint folder).

    Args:
        clip: use this CLIP instead of the embedded / referenced one (must match the fingerprint).
        allow_untrained: accept a checkpoint saved before any training step.

    Raises:
        UserError: not a GAN checkpoint, untrained, CLIP missing or different from the one trained with,
            weights that do not fit the stored config.
    """
    from safetensors.torch import load_file

    from clip_t2i.backbones import load_clip
    from clip_t2i.backbones.loading import build_from_config
    from clip_t2i.gan.networks import Generator
    from clip_t2i.gan.variants import GanConfig

    path = resolve_checkpoint(source)
    meta = read_gan_meta(path)
    if int(meta.get("steps", 0)) <= 0 and not allow_untrained:
        raise UserError(f"{path} is an untrained GAN checkpoint (0 training steps); train it with train-gan first")
    sd = load_file(str(path))
    info = meta["clip"]
    if clip is None:
        if info.get("embedded"):
            clip = build_from_config(info["config"])
            clip_sd = {k[5:]: v for k, v in sd.items() if k.startswith("clip.")}
            own = clip.model.state_dict()
            if set(clip_sd) != set(own) or any(clip_sd[k].shape != own[k].shape for k in own):
                raise UserError(f"{path}: the embedded CLIP weights do not fit its stored CLIP config")
            clip.model.load_state_dict({k: v.to(own[k].dtype) for k, v in clip_sd.items()})
        else:
            clip = load_clip(info["ref"])
    got = clip_fingerprint(clip)
    if got != info.get("fingerprint"):
        raise UserError(
            f"{path} was trained with a different CLIP than {info.get('ref')!r} (fingerprint {got} != "
            f"{info.get('fingerprint')}); pass the CLIP it was trained with"
        )
    clip.eval()
    config = GanConfig.from_dict(meta["config"])
    G = Generator(config.generator, clip)
    G.load_trainable_state_dict({k[2:]: v.float() for k, v in sd.items() if k.startswith("G.")})
    if G.resolution != int(meta.get("resolution", G.resolution)):
        raise UserError(f"{path}: stored resolution {meta['resolution']} does not match its generator")
    G.eval().requires_grad_(False).to(memory_format=torch.channels_last)  # ~1.5× faster convs on CPU
    return GanModel(G=G, clip=clip, config=config, meta=meta, source=str(source)).to(device)


def export_zoo(
    source: str | Path,
    name: str,
    folder: str | Path,
    *,
    clip_ref: str = "shapes-clip",
    metrics: dict | None = None,
    command: str = "",
    description: str = "",
) -> Path:
    """Write a zoo entry ``<name>.{safetensors,json,md}``: fp16 generator referencing the zoo CLIP ``clip_ref``.

    The referenced CLIP must have the fingerprint of the one the GAN was trained with (the file stays small:
    only the generator's weights are stored).
    """
    from clip_t2i.backbones import load_clip
    from clip_t2i.utils.io import atomic_write_text

    gan = load_gan(source)
    clip = load_clip(clip_ref)
    if clip_fingerprint(clip) != gan.meta["clip"]["fingerprint"]:
        raise UserError(f"{clip_ref} is not the CLIP {source} was trained with; cannot reference it")
    folder = Path(folder)
    weights = folder / f"{name}.safetensors"
    save_gan(
        weights,
        gan.G,
        clip,
        gan.config,
        clip_ref,
        steps=gan.steps,
        embed_clip="never",
        half=True,
        extra={
            k: v for k, v in gan.meta.items() if k not in ("format", "config", "resolution", "z_dim", "steps", "clip")
        },
    )
    n_params = sum(v.numel() for v in gan.G.trainable_state_dict().values())
    entry = {
        "file": weights.name,
        "kind": "gan",
        "description": description or gan.config.description,
        "variant": gan.config.name,
        "clip": clip_ref,
        "steps": gan.steps,
        "resolution": gan.resolution,
        "params": n_params,
        "size_bytes": weights.stat().st_size,
        "metrics": metrics or {},
        "command": command,
    }
    atomic_write_text(folder / f"{name}.json", json.dumps(entry, indent=2) + "\n")
    lines = [
        f"# {name}",
        "",
        entry["description"],
        "",
        f"- variant: `{gan.config.name}`; CLIP (frozen, referenced, not stored): `{clip_ref}`",
        f"- generator: {n_params:,} learnable parameters, {gan.resolution}×{gan.resolution} output, "
        f"{entry['size_bytes'] / 1024:.0f} KiB fp16",
        f"- training: {gan.steps} steps"
        + (f", {gan.meta['elapsed_s'] / 60:.1f} min" if "elapsed_s" in gan.meta else ""),
        "",
        "## Reproduce",
        "",
        "```",
        command,
        "```",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in (metrics or {}).items()]
    lines += [
        "",
        "## Use",
        "",
        "```",
        f'clip-t2i sample --gan {name} "a small red circle on the left" --n 16 --out outputs/' + name,
        "```",
    ]
    atomic_write_text(folder / f"{name}.md", "\n".join(lines) + "\n")
    return weights
