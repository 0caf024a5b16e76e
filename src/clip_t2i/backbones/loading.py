"""`load_clip`: every way users hold a CLIP, one entry point.

Accepted sources (first match wins):

1. a zoo name (``shapes-clip``), see ``clip_t2i.zoo``;
2. a ``.safetensors`` file written by clip-t2i (self-describing: config in its metadata);
3. ``local-dir:PATH`` or a folder holding open_clip's ``open_clip_config.json`` + weights;
4. a project config name (``vit-t64``, see ``backbones/model_configs``), random init or ``pretrained=FILE``;
5. an open_clip architecture (``ViT-B-32``) with ``pretrained`` = an open_clip tag (downloaded by open_clip,
   needs network) or a local file: open_clip checkpoint, safetensors, the official CLIPAG file
   (``{'state_dict': ...}`` with ``module.`` prefixes and numpy scalars), or ``hf-hub:ORG/REPO``.

``image_tower=FILE`` then overwrites the image tower only: FARE / RobustVLM (a vision-only state dict) and
TeCoA (``{'vision_encoder_state_dict': ...}``) checkpoints are applied on top of the base CLIP this way.

Unpickling is never unrestricted: ``.pt``/``.pth``/``.bin`` files are read with ``torch.load(weights_only=True)``
and an explicit allow-list of numpy scalar types (what the CLIPAG file needs); anything else is refused.

Activation: OpenAI's original weights use QuickGELU; open_clip's ``ViT-B-32`` config builds nn.GELU unless
the name ends in ``-quickgelu`` or ``quick_gelu=True`` is passed. A checkpoint fine-tuned from OpenAI weights
(e.g. possibly CLIPAG's — its base is unverified) must be loaded with ``quick_gelu=True``.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from clip_t2i.backbones.clip import METADATA_KEY, ClipModel
from clip_t2i.backbones.registry import get_model_config, list_models, suggest, validate_config
from clip_t2i.errors import UserError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_VISION_ONLY_MARKERS = ("conv1.weight", "class_embedding", "attnpool.c_proj.weight")
_TEXT_MARKERS = ("token_embedding.weight", "text_projection", "text.token_embedding.weight")


def _numpy_safe_globals() -> list[Any]:
    """numpy objects allowed inside a weights-only unpickle (scalars and dtypes, no code)."""
    allowed: list[Any] = [np.dtype, np.ndarray]
    for mod_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            mod = __import__(mod_name, fromlist=["scalar", "_reconstruct"])
            allowed += [mod.scalar, mod._reconstruct]
            break
        except (ImportError, AttributeError):
            continue
    for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "BoolDType"):
        if hasattr(np.dtypes, name):
            allowed.append(getattr(np.dtypes, name))
    return allowed


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a weights file without executing code: safetensors, or a restricted torch unpickle."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist or is not a file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"cannot read {path} as safetensors: {e}") from None
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        import re

        found = re.search(r"(unsupported GLOBAL [\w.]+|Unsupported global: [^\n]+)", str(e))
        if found is None:
            raise UserError(f"cannot read checkpoint {path}: not a torch or safetensors weights file") from None
        raise UserError(
            f"refusing to load {path}: it holds Python objects beyond tensors and numpy scalars "
            f"({found.group(1)[:120]}); convert it to safetensors with code you trust"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise UserError(f"cannot read checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(obj, dict):
        raise UserError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict of tensors")
    return obj


def unwrap_state_dict(obj: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    """Find the state dict inside a checkpoint; return it and its kind: ``"full"`` or ``"vision"``."""
    kind = None
    if "vision_encoder_state_dict" in obj:  # TeCoA
        obj, kind = obj["vision_encoder_state_dict"], "vision"
    elif "state_dict" in obj and isinstance(obj["state_dict"], dict):  # CLIPAG / open_clip training runs
        obj = obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        sd[k] = v
    if not sd:
        raise UserError("checkpoint holds no tensors (expected a CLIP state dict)")
    if kind is None:
        has_text = any(k in sd for k in _TEXT_MARKERS)
        if has_text:
            kind = "full"
        elif all(k.startswith("visual.") for k in sd):
            sd, kind = {k[len("visual.") :]: v for k, v in sd.items()}, "vision"
        elif any(k in sd for k in _VISION_ONLY_MARKERS):
            kind = "vision"  # FARE / RobustVLM: model.visual.state_dict()
        else:
            kind = "full"
    return sd, kind


def _load_into(module: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Strict load with a one-line error naming what does not fit."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"shape mismatches: {'; '.join(shapes[:3])}")
        raise UserError(f"checkpoint does not fit {what}: {', '.join(parts)}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)


def _apply_file(clip: ClipModel, path: str | Path, expect: str | None = None) -> None:
    sd, kind = unwrap_state_dict(read_checkpoint(path))
    if expect == "vision" or kind == "vision":
        if expect == "full":
            raise UserError(f"{path} holds only an image tower; pass it as image_tower= on top of a base CLIP")
        _load_into(clip.model.visual, sd, f"the image tower of {clip.name} ({path})")
    else:
        sd = _fix_open_clip_quirks(clip.model, sd)
        _load_into(clip.model, sd, f"{clip.name} ({path})")


def _fix_open_clip_quirks(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if "logit_scale" in sd and sd["logit_scale"].ndim != model.logit_scale.ndim:
        sd["logit_scale"] = sd["logit_scale"].reshape(model.logit_scale.shape)
    if getattr(model, "logit_bias", None) is not None and "logit_bias" not in sd:
        sd["logit_bias"] = torch.zeros_like(model.logit_bias)
    return sd


GROUP_NORM_CHANNELS = 16  # channels per group when a config asks for vision_norm "group"
STEM_NORM = "bn1"  # open_clip ModifiedResNet: the norm right after the first convolution (conv1 has no bias)


class FixedBatchNorm2d(nn.BatchNorm2d):
    """A ``BatchNorm2d`` that normalises with its stored statistics in train mode too: a fixed per-channel affine.

    ``y = (x − running_mean) / sqrt(running_var + eps) · weight + bias``; the statistics are never updated.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def swap_batchnorm(module: nn.Module, fixed: tuple[str, ...] = ()) -> int:
    """Replace every ``BatchNorm2d`` under ``module`` by ``GroupNorm(max(1, C // 16), C)``; return how many.

    The affine weight and bias are copied, so open_clip's zero-initialised last norm of each residual block
    (``bn3.weight = 0``) stays zero. GroupNorm has no running statistics: the tower computes the same function in
    train and eval mode, which BatchNorm does not (a gradient trained on batch statistics is not the gradient
    the tower gives at generation time, in eval mode).

    Children of ``module`` named in ``fixed`` become :class:`FixedBatchNorm2d` instead. A GroupNorm right after a
    bias-free first convolution makes the tower exactly invariant to the input's contrast about the
    normalisation mean, ``f(μ + α (x − μ)) = f(x)``, so its input gradient satisfies ``∇f · (x − μ) = 0``: from a
    flat start the gradient has zero total mass (every bright stroke is paid for by an equal dark mass). A fixed
    affine there breaks the invariance (vision_norm "group-fixed-stem").
    """
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, FixedBatchNorm2d):
            c = child.num_features
            if name in fixed:
                new: nn.Module = FixedBatchNorm2d(c, eps=child.eps, affine=child.affine)
                new.load_state_dict(child.state_dict())
            else:
                groups = max(1, c // GROUP_NORM_CHANNELS)
                while c % groups:
                    groups -= 1
                new = nn.GroupNorm(groups, c, eps=child.eps, affine=child.affine)
                if child.affine:
                    with torch.no_grad():
                        new.weight.copy_(child.weight)
                        new.bias.copy_(child.bias)
            setattr(module, name, new)
            count += 1
        else:
            count += swap_batchnorm(child)
    return count


@torch.no_grad()
def fix_stem_norm(clip: Any, images: torch.Tensor) -> None:
    """Turn a ``vision_norm "group"`` tower into ``"group-fixed-stem"`` in place, keeping its function on ``images``.

    The stem GroupNorm's per-group mean and variance, averaged over ``images`` ``[N, 3, H, W]`` in [0, 1], become
    the running statistics of a :class:`FixedBatchNorm2d` with the same affine weights, so on typical inputs the
    tower computes nearly what it did; the config is updated so that saving and loading rebuild it.
    """
    if clip.config.get("vision_norm") != "group":
        raise UserError(f"fix_stem_norm needs a vision_norm 'group' tower, not {clip.config.get('vision_norm')!r}")
    vis = clip.visual
    gn = getattr(vis, STEM_NORM)
    captured: list[torch.Tensor] = []
    handle = gn.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
    try:
        clip.encode_image(images)
    finally:
        handle.remove()
    h = captured[0].float()  # [N, C, H, W], the stem conv's output
    n, c = h.shape[:2]
    grouped = h.reshape(n, gn.num_groups, -1)
    mean = grouped.mean(-1).mean(0).repeat_interleave(c // gn.num_groups)
    var = grouped.var(-1, unbiased=False).mean(0).repeat_interleave(c // gn.num_groups)
    fixed = FixedBatchNorm2d(c, eps=gn.eps, affine=gn.affine).to(h.device)
    fixed.running_mean.copy_(mean)
    fixed.running_var.copy_(var)
    if gn.affine:
        fixed.weight.copy_(gn.weight)
        fixed.bias.copy_(gn.bias)
    setattr(vis, STEM_NORM, fixed)
    clip.config["vision_norm"] = "group-fixed-stem"


def build_from_config(config: dict[str, Any], quick_gelu: bool | None = None) -> ClipModel:
    """A randomly initialised ``ClipModel`` from a project config dict."""
    config = copy.deepcopy(config)
    if quick_gelu is not None:
        config["model_cfg"]["quick_gelu"] = bool(quick_gelu)
    model_cfg = copy.deepcopy(config["model_cfg"])
    custom_text = model_cfg.pop("custom_text", False)
    cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    model = cls(**model_cfg)
    norm = config.get("vision_norm", "batch")
    if norm != "batch":
        fixed = (STEM_NORM,) if norm == "group-fixed-stem" else ()
        if fixed and not isinstance(getattr(model.visual, STEM_NORM, None), nn.BatchNorm2d):
            raise UserError(f"vision_norm {norm!r} needs a ResNet image tower with a stem norm {STEM_NORM!r}")
        if swap_batchnorm(model.visual, fixed) == 0:
            raise UserError(
                f"vision_norm {norm!r} needs an image tower with BatchNorm layers (a ResNet); this one has none"
            )
    return ClipModel(model, config)


def _load_self_describing(path: Path, quick_gelu: bool | None) -> ClipModel:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - any parse failure is a user-facing bad file
        raise UserError(f"cannot read {path} as safetensors: {str(e)[:200]}") from None
    if METADATA_KEY not in meta:
        raise UserError(
            f"{path} carries no clip-t2i config; pass its architecture as the name and the file as "
            f"pretrained=, e.g. load_clip('ViT-B-32', pretrained='{path}')"
        )
    config = validate_config(json.loads(meta[METADATA_KEY]), str(path))
    clip = build_from_config(config, quick_gelu)
    _apply_file(clip, path, expect="full")
    return clip


def _open_clip_config(name: str, model: nn.Module, quick_gelu: bool) -> dict[str, Any]:
    pre = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = pre.get("size", getattr(model.visual, "image_size", 224))
    cfg = open_clip.get_model_config(name) or {}
    if quick_gelu:
        cfg["quick_gelu"] = True
    return {
        "name": name,
        "model_cfg": cfg,
        "preprocess_cfg": {
            "size": size if isinstance(size, int) else list(size),
            "mean": list(pre.get("mean", OPENAI_MEAN)),
            "std": list(pre.get("std", OPENAI_STD)),
            "interpolation": pre.get("interpolation", "bicubic"),
        },
        "tokenizer": {"type": "open_clip", "name": name},
    }


def _hub_source(name: str, tag: str) -> tuple[str, list[str], str]:
    """(kind, candidates, human-readable source) of an open_clip pretrained tag; kind is hf or url."""
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(name, tag)
    if cfg.get("hf_hub"):
        repo, filename = (
            cfg["hf_hub"].rstrip("/").rsplit("/", 1)
            if not cfg["hf_hub"].endswith("/")
            else (cfg["hf_hub"].rstrip("/"), "")
        )
        files = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return "hf", [f"{repo}/{f}" for f in files], f"hf-hub:{repo}"
    if cfg.get("url"):
        return "url", [cfg["url"]], cfg["url"]
    return "none", [], ""


def _cached_file(kind: str, candidates: list[str], cache_dir: str | None) -> Path | None:
    """A previously downloaded copy of a tag's weights, without touching the network."""
    import os

    for cand in candidates:
        if kind == "hf":
            from huggingface_hub import try_to_load_from_cache

            repo, filename = cand.rsplit("/", 1)
            hit = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
        elif kind == "url":
            root = Path(cache_dir or os.path.expanduser("~/.cache/clip"))
            hit = root / os.path.basename(cand)
            if hit.is_file():
                return hit
    return None


def _reachable(kind: str, candidates: list[str], timeout_s: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    host = "huggingface.co" if kind == "hf" else urlparse(candidates[0]).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _load_open_clip(
    name: str, pretrained: str | None, quick_gelu: bool, cache_dir: str | None, weights_follow: bool = False
) -> ClipModel:
    """An open_clip architecture with ``pretrained`` = a tag (cache or download) or None (random init).

    ``weights_follow``: the caller loads a weights file into the model next, so open_clip's "No pretrained
    weights loaded ... initialized randomly" warning would be false and is dropped.
    """
    import logging

    if pretrained is not None and not name.startswith("hf-hub:"):
        from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

        tag_cfg = get_pretrained_cfg(name, pretrained)
        if not tag_cfg:
            tags = list_pretrained_tags_by_model(name)
            raise UserError(
                f"{pretrained!r} is neither a file nor a pretrained tag of {name}{suggest(pretrained, tags)}"
            )
        kind, cands, source = _hub_source(name, pretrained)
        cached = _cached_file(kind, cands, cache_dir)
        if cached is not None:  # offline-safe path: build, then read the cached file with the safe loader
            clip = _load_open_clip(
                name, None, quick_gelu or bool(tag_cfg.get("quick_gelu")), cache_dir, weights_follow=True
            )
            for key in ("mean", "std", "interpolation"):
                if key in tag_cfg:
                    clip.config["preprocess_cfg"][key] = tag_cfg[key]
            clip = ClipModel(clip.model, clip.config)
            _apply_file(clip, cached)
            return clip
        if not _reachable(kind, cands):
            raise UserError(
                f"pretrained weights {name}/{pretrained} are not cached and {source} cannot be reached "
                f"(no network): download it elsewhere and pass the file as pretrained=PATH"
            )
    hub_log = logging.getLogger("huggingface_hub")
    old_level = hub_log.level
    hub_log.setLevel(logging.ERROR)

    def drop_random_init_note(record: logging.LogRecord) -> bool:
        return not (weights_follow and str(record.msg).startswith("No pretrained weights loaded"))

    root = logging.getLogger()
    root.addFilter(drop_random_init_note)
    try:
        model = open_clip.create_model(
            name, pretrained=pretrained, force_quick_gelu=quick_gelu, cache_dir=cache_dir, require_pretrained=False
        )
    except Exception as e:  # noqa: BLE001 - network / hub failures of all kinds become one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = name if pretrained is None else f"{name} / {pretrained}"
        raise UserError(
            f"could not fetch pretrained weights for {where} ({msg[:160]}); download the file "
            f"elsewhere and pass its path as pretrained="
        ) from None
    finally:
        hub_log.setLevel(old_level)
        root.removeFilter(drop_random_init_note)
    return ClipModel(model, _open_clip_config(name, model, quick_gelu))


def load_clip(
    name_or_path: str | Path,
    pretrained: str | Path | None = None,
    *,
    image_tower: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    quick_gelu: bool | None = None,
    cache_dir: str | None = None,
) -> ClipModel:
    """Load a CLIP as a :class:`ClipModel` (see module docstring for every accepted source).

    Args:
        name_or_path: zoo name, clip-t2i ``.safetensors`` file, open_clip folder, project config or
            open_clip architecture name (``/`` is read as ``-``).
        pretrained: open_clip tag or weights file for an architecture name.
        image_tower: weights file replacing the image tower only (FARE, TeCoA, our robust fine-tunes).
        device, dtype: where and in which precision the model lives.
        quick_gelu: force QuickGELU (True) or GELU (False); None keeps the config's choice.
        cache_dir: open_clip download cache.

    Raises:
        UserError: unknown name (with suggestions), missing/unreadable file, keys that do not fit, failed download.
    """
    from clip_t2i import zoo

    name = str(name_or_path)
    path = Path(name)
    clip: ClipModel
    if path.is_dir() and not name.startswith("local-dir:") and not (path / "open_clip_config.json").is_file():
        hint = next((f for f in ("final.safetensors", "model.safetensors") if (path / f).is_file()), None)
        raise UserError(
            f"{path} is a folder, not a CLIP checkpoint; "
            + (f"pass {path / hint}" if hint else "pass a .safetensors file, a zoo name or local-dir:PATH")
        )
    if name in zoo.list_zoo() and not zoo.zoo_entry(name).get("kind", "clip").startswith("clip"):
        kind = zoo.zoo_entry(name).get("kind", "")
        clips = [n for n in zoo.list_zoo() if zoo.zoo_entry(n).get("kind", "clip").startswith("clip")]
        raise UserError(f"zoo model {name} is a {kind} model, not a CLIP; CLIPs in the zoo: {', '.join(clips)}")
    if name in zoo.list_zoo():
        if pretrained is not None:
            raise UserError(f"zoo model {name} already has weights; drop pretrained=")
        clip = _load_self_describing(zoo.zoo_path(name), quick_gelu)
    elif name.startswith("local-dir:") or (path.is_dir() and (path / "open_clip_config.json").is_file()):
        clip = _load_local_dir(Path(name.removeprefix("local-dir:")), quick_gelu)
    elif path.suffix == ".safetensors" or (path.is_file() and pretrained is None):
        if not path.is_file():
            raise UserError(f"checkpoint {path} does not exist")
        if path.suffix != ".safetensors":
            raise UserError(
                f"{path} is not self-describing; pass its architecture as the name and the file as pretrained="
            )
        clip = _load_self_describing(path, quick_gelu)
    elif name.startswith("hf-hub:"):
        if not _reachable("hf", []):
            raise UserError(
                f"{name} cannot be reached (no network): download the repository (open_clip_config.json + "
                f"weights) elsewhere and pass local-dir:PATH"
            )
        clip = _load_open_clip(name, None, bool(quick_gelu), cache_dir)
    else:
        arch = name.replace("/", "-")
        config = get_model_config(arch)
        pre_is_file = pretrained is not None and (Path(str(pretrained)).suffix or Path(str(pretrained)).exists())
        if config is not None:
            config["name"] = arch
            clip = build_from_config(config, quick_gelu)
            if pretrained is not None:
                _apply_file(clip, pretrained)
        elif arch in open_clip.list_models():
            if pre_is_file:
                clip = _load_open_clip(arch, None, bool(quick_gelu), cache_dir, weights_follow=True)
                _apply_file(clip, pretrained)
            else:
                clip = _load_open_clip(arch, pretrained and str(pretrained), bool(quick_gelu), cache_dir)
        else:
            if any(c in name for c in "/\\.") or name.endswith((".pt", ".pth", ".bin")):
                raise UserError(f"checkpoint {name} does not exist")
            choices = zoo.list_zoo() + list_models() + open_clip.list_models()
            raise UserError(f"unknown model {name!r}{suggest(name, choices)}; see `clip-t2i models`")
    if image_tower is not None:
        _apply_file(clip, image_tower, expect="vision")
    clip = clip.to(device=device)
    if dtype != torch.float32:
        clip.model.to(dtype=dtype)
    return clip.eval()


def _load_local_dir(folder: Path, quick_gelu: bool | None) -> ClipModel:
    cfg_path = folder / "open_clip_config.json"
    if not cfg_path.is_file():
        raise UserError(f"{folder} has no open_clip_config.json")
    raw = json.loads(cfg_path.read_text())
    if "model_cfg" not in raw:
        raise UserError(f"{cfg_path} lacks 'model_cfg'")
    pre = raw.get("preprocess_cfg", {})
    config = {
        "name": folder.name,
        "model_cfg": raw["model_cfg"],
        "preprocess_cfg": {
            "size": pre.get("size", raw["model_cfg"]["vision_cfg"].get("image_size", 224)),
            "mean": list(pre.get("mean", OPENAI_MEAN)),
            "std": list(pre.get("std", OPENAI_STD)),
            "interpolation": pre.get("interpolation", "bicubic"),
        },
        "tokenizer": raw.get("clip_t2i_tokenizer", {"type": "open_clip", "name": folder.name}),
    }
    if config["tokenizer"]["type"] == "open_clip":
        config["tokenizer"]["name"] = f"local-dir:{folder}"
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pt"))
    if not weights:
        raise UserError(f"{folder} has no weights file (.safetensors/.bin/.pt)")
    clip = build_from_config(config, quick_gelu)
    _apply_file(clip, weights[0], expect="full")
    return clip
