"""A taming-transformers-compatible VQGAN: model, config, loading, training and the ``vqgan`` renderer.

Exports are lazy (``clip-t2i --help`` and the presets never import torch through here).
"""

from __future__ import annotations

from clip_t2i.utils.lazy import lazy_getattr

_EXPORTS = {
    "VQGAN": "model",
    "VQGANConfig": "config",
    "config_from_dict": "config",
    "read_config_file": "config",
    "load_vqgan": "loading",
    "save_vqgan": "loading",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
