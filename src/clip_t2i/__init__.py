"""clip-t2i: text-to-image with CLIP alone (robust CLIP / CLIPAG) or with a small CLIP-aided GAN (SCAD)."""

from __future__ import annotations

from clip_t2i.errors import UserError

__version__ = "0.1.0"


def load_clip(*args, **kwargs):  # noqa: D103 - thin lazy re-export, see backbones.load_clip
    from clip_t2i.backbones import load_clip as _load_clip

    return _load_clip(*args, **kwargs)


load_clip.__doc__ = "Load any CLIP; see :func:`clip_t2i.backbones.load_clip`."


def generate(*args, **kwargs):  # noqa: D103 - thin lazy re-export, see pipeline.generate
    from clip_t2i.pipeline import generate as _generate

    return _generate(*args, **kwargs)


generate.__doc__ = "Text to images with CLIP guidance; see :func:`clip_t2i.pipeline.generate`."


def stylize(*args, **kwargs):  # noqa: D103 - thin lazy re-export, see renderers.style.stylize
    from clip_t2i.renderers.style import stylize as _stylize

    return _stylize(*args, **kwargs)


stylize.__doc__ = "Text-driven style transfer (CLIPStyler); see :func:`clip_t2i.renderers.style.stylize`."

__all__ = ["UserError", "generate", "load_clip", "stylize", "__version__"]
