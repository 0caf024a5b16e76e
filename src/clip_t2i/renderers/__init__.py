"""Renderers (what is optimised) behind one protocol, their registry, presets and output files.

Built in: ``pixels`` (raw pixels) and ``pyramid`` (a Laplacian pyramid of pixels), see
:mod:`~clip_t2i.renderers.pixels`. Add one with :func:`register_renderer` on a class with ``name``,
an ``Options`` dataclass and ``init`` / ``render`` / ``project`` / ``param_groups``.

Exports are loaded lazily so that ``clip_t2i.renderers.commands`` (imported by the CLI at start-up) stays light.
"""

from __future__ import annotations

from clip_t2i.utils.lazy import lazy_getattr

_EXPORTS = {
    "InitContext": "base",
    "Renderer": "base",
    "build_renderer": "base",
    "list_renderers": "base",
    "register_renderer": "base",
    "renderer_class": "base",
    "Preset": "presets",
    "add_preset": "presets",
    "get_preset": "presets",
    "list_presets": "presets",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
