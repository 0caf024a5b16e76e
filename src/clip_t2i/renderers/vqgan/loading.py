"""Loading and saving VQGANs: taming Lightning checkpoints (``{"state_dict": ...}``) and clip-t2i safetensors.

* taming ``.ckpt`` (or ``.pt`` / ``.pth`` / ``.bin``): read with ``torch.load(weights_only=True)`` and a numpy
  scalar allow-list (never a full unpickle); the architecture comes from the run's YAML (``config=``, else a
  ``.yaml`` of the same stem beside the file, else ``../configs/*-project.yaml`` of taming's ``logs/<run>/``
  layout). Keys under ``loss.`` (LPIPS, discriminator) are ignored, and no loss is ever built, so nothing is
  downloaded; any other missing or unexpected key is an error naming them, and so is a tensor whose shape the
  config does not predict.
* clip-t2i ``.safetensors``: the config lives in the metadata (``vqgan_config``); a zoo name resolves to the
  bundled file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from clip_t2i.errors import UserError
from clip_t2i.renderers.vqgan.config import VQGANConfig, config_from_dict, read_config_file
from clip_t2i.renderers.vqgan.model import VQGAN

META_KEY = "vqgan_config"
IGNORED_PREFIXES = ("loss.",)  # taming's VQLPIPSWithDiscriminator: training only
_SHOW = 4  # key names shown in an error


def _names(keys: list[str]) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def check_state_dict(model: VQGAN, state: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """``state`` without ignored ``loss.*`` keys, checked against ``model``: missing / unexpected keys and shape
    mismatches raise one :class:`UserError` naming them."""
    sd = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = ([f"missing keys {_names(missing)}"] if missing else []) + (
            [f"unexpected keys {_names(unexpected)}"] if unexpected else []
        )
        raise UserError(f"{source} is not a VQGAN of this layout: {'; '.join(parts)}")
    wrong = [
        f"{k} {tuple(sd[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items()
        if not torch.is_tensor(sd[k]) or tuple(sd[k].shape) != tuple(v.shape)
    ]
    if wrong:
        more = f" (+{len(wrong) - 2} more)" if len(wrong) > 2 else ""
        raise UserError(f"the VQGAN config does not match the weights of {source}: {'; '.join(wrong[:2])}{more}")
    return sd


def build_from_state(cfg: VQGANConfig, state: dict[str, Any], source: str) -> VQGAN:
    """A VQGAN of ``cfg`` holding ``state`` (checked), in eval mode, float32."""
    model = VQGAN(cfg)
    sd = check_state_dict(model, state, source)
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    return model.eval()


def _find_taming_config(ckpt: Path) -> Path | None:
    same = [ckpt.with_suffix(s) for s in (".yaml", ".yml")]
    for p in same:
        if p.is_file():
            return p
    configs = sorted((ckpt.parent.parent / "configs").glob("*project.yaml"))
    return configs[-1] if configs else None


def load_vqgan(
    source: str | Path, config: str | Path | dict | VQGANConfig | None = None, device: str | torch.device = "cpu"
) -> VQGAN:
    """A VQGAN from a zoo name, a clip-t2i ``.safetensors`` or a taming checkpoint (see the module docstring)."""
    from clip_t2i import zoo

    name = str(source)
    if name in zoo.list_zoo():
        kind = zoo.zoo_entry(name).get("kind", "")
        if kind != "vqgan":
            raise UserError(f"zoo model {name} is a {kind or 'clip'}, not a VQGAN")
        path = zoo.zoo_path(name)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            vqgans = [n for n in zoo.list_zoo() if zoo.zoo_entry(n).get("kind") == "vqgan"]
            raise UserError(
                f"VQGAN {name!r} does not exist (a zoo name: {', '.join(vqgans) or 'none'}; or a .safetensors / "
                "taming .ckpt file)"
            )
        if path.is_dir():
            raise UserError(f"VQGAN {path} is a folder; give the .ckpt or .safetensors file")
    cfg = _resolve_config(config)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"cannot read {path} as safetensors: {str(e).splitlines()[0][:160]}") from None
        if cfg is None:
            if META_KEY not in meta:
                raise UserError(f"{path} carries no VQGAN config in its metadata; pass the taming YAML as config")
            cfg = config_from_dict(json.loads(meta[META_KEY]), f"VQGAN config in {path.name}")
    else:
        from clip_t2i.backbones.loading import read_checkpoint

        obj = read_checkpoint(path)
        state = obj.get("state_dict", obj)
        if not isinstance(state, dict):
            raise UserError(f"{path}: 'state_dict' is not a mapping of tensors")
        if cfg is None:
            found = _find_taming_config(path)
            if found is None:
                raise UserError(
                    f"{path} needs its taming config (the run's configs/*-project.yaml): pass it as vqgan_config"
                )
            cfg = read_config_file(found)
    return build_from_state(cfg, state, path.name).to(device)


def _resolve_config(config: str | Path | dict | VQGANConfig | None) -> VQGANConfig | None:
    if config is None or isinstance(config, VQGANConfig):
        return config.validate() if config is not None else None
    if isinstance(config, dict):
        return config_from_dict(config)
    return read_config_file(config)


def save_vqgan(path: str | Path, model: VQGAN, extra: dict[str, Any] | None = None, fp16: bool = False) -> Path:
    """Write ``model`` as a self-describing safetensors file (config in the metadata), atomically."""
    from safetensors.torch import save_file

    from clip_t2i.utils.io import atomic_write, require_finite

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    require_finite(state, f"VQGAN {path}")
    meta = {"clip_t2i_kind": "vqgan", META_KEY: json.dumps(model.config.to_dict())}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return Path(path)
