"""The ``Options`` dataclasses of the built-in renderers, in a module without torch.

Presets validate their ``renderer_options`` against these at start-up (``clip-t2i presets`` must not import
torch); the renderer modules (:mod:`~clip_t2i.renderers.pixels`, :mod:`~clip_t2i.renderers.strokes`)
re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PixelOptions:
    """Initialisation options of the pixel renderers."""

    init: str = "grey"  # grey | gmm | image
    init_grey: float = 0.5  # grey level of the grey init
    init_noise: float = 0.1  # std of Gaussian noise added to the grey / image init
    init_coarse: float = 0.0  # std of 8x8 Gaussian noise, bilinearly upsampled, added to the grey / image init
    init_image: str | None = None  # path of the image init
    gmm_data: str = "auto"  # auto (the guiding CLIP's world) | shapes | digits | folder of class sub-folders
    gmm_resolution: int = 16  # side of the prior's images
    gmm_pool: int = 256  # pool size per image, drawn from all classes
    gmm_eps: float = 1e-4  # covariance ridge
    gmm_hue: float = 0.0  # pool colour variants: random hue rotation up to gmm_hue * 180 degrees (0 = off)


@dataclass(frozen=True)
class PyramidOptions(PixelOptions):
    """Pixel options plus the pyramid's shape."""

    levels: int = 4  # number of levels (finest = the image size)
    level_lr: tuple[float, ...] | None = None  # lr multiplier per level, finest first; None = all 1


@dataclass(frozen=True)
class StrokeOptions:
    """Options of the ``strokes`` renderer (lengths in 224-units)."""

    num_paths: int = 64  # N paths per image
    max_segments: int = 3  # each path has 1..max_segments cubic segments (uniform at random)
    radius: float = 0.1  # random-walk step of the control points, fraction of the canvas
    init_width: float = 1.0  # starting width
    min_width: float = 1.0  # width clamp, lower
    max_width: float = 50.0  # width clamp, upper
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB composited under the strokes
    samples: int = 8  # chords per segment of the torch rasteriser
    tile: int = 16  # side of the pixel tiles a path's bounding box is tested against
    backend: str = "auto"  # auto | torch | diffvg
    width_lr: float = 0.1  # width lr as a fraction of the guidance lr (CLIPDraw: 0.1 / 1.0)
    colour_lr: float = 0.01  # colour lr as a fraction of the guidance lr (CLIPDraw: 0.01 / 1.0)
    fixed_alpha: float | None = None  # if set, every stroke's alpha is fixed to this value (no alpha gradient)
    init_alpha: float | None = None  # if set, every stroke starts at this alpha (still learnt); None = uniform random
    alpha_l1: float = 0.0  # λ of the prior λ·mean_i α_i added to the loss: strokes the guide does not need fade out
    polygon: bool = False  # straight segments: only every 3rd control point (the anchors) is free
    fill: bool = False  # closed, filled paths (even-odd rule, widths unused) instead of open strokes; torch backend
    convexity: float = 0.0  # λ of a penalty on each closed control polygon's reflex turns (meant for fill)


@dataclass(frozen=True)
class VQGANOptions:
    """Options of the ``vqgan`` renderer (VQGAN+CLIP: the latent z is optimised, quantised, decoded)."""

    vqgan: str = "shapes-vqgan"  # zoo name, clip-t2i .safetensors or taming .ckpt
    vqgan_config: str | None = None  # taming YAML of a .ckpt (default: found beside it / in ../configs)
    init: str = "random_codes"  # random_codes | random_image (uniform noise, encoded) | image (init_image, encoded)
    init_image: str | None = None  # path of the image init
    init_noise: float = 0.0  # std of Gaussian noise added to the start z, in units of the codebook's std
    quantize: bool = True  # straight-through quantisation to the nearest code (False: decode z itself)
    clamp: bool = True  # after each step, clamp z per dimension to the codebook's [min, max]
    decode_size: int | None = None  # decode at this side, then resize (bilinear) to the image size; None = image size
    # precondition z so one step changes the decoded pixels equally at every code position (see the renderer)
    equalize: bool = False
    equalize_probes: int = 8  # random pixel cotangents per image for the sensitivity map
    equalize_max: float = 10.0  # the per-position step factor is kept within [1/max, max]
