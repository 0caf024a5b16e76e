"""Feature extractors for the metrics, one interface, and batched extraction with an on-disk cache.

Every extractor is a :class:`FeatureExtractor`: ``extractor(images) -> [B, D]`` with ``images`` a float
tensor ``[B, 3, H, W]`` in ``[0, 1]`` (any ``H, W``), plus the attributes ``name``, ``dim`` and ``version``.
Each documents its own resize / normalisation:

============================  =========================================================================
:class:`ClipFeatures`          anything with ``encode_image`` (our CLIP wrapper); resize/normalise is the
                               wrapped model's job, images are passed through unchanged.
:class:`ModuleFeatures`        any ``nn.Module`` returning a (penultimate) feature vector; resized to its
                               ``input_size`` (bilinear by default) and optionally mean/std normalised.
:class:`InceptionV3Features`   torchvision Inception-v3 pool3 (2048-d) from a local ``.pth`` file;
                               bilinear resize to 299, then ``2x - 1``.
:class:`DinoV2Features`        timm DINOv2 CLS token (post-LayerNorm) from a local file; bicubic resize to
                               224, then ImageNet mean/std.
============================  =========================================================================

:func:`extract_features` runs an extractor over a tensor or an iterable of images in batches and caches
the features per image under ``sha256(image bytes, shape, dtype)`` for a given extractor identity
(``name``, ``version`` and a hash of its weights).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.errors import UserError

__all__ = [
    "CACHE_ENV",
    "DINOV2_ENV",
    "INCEPTION_ENV",
    "ClipFeatures",
    "DinoV2Features",
    "FeatureExtractor",
    "InceptionV3Features",
    "ModuleFeatures",
    "as_feature_matrix",
    "extract_features",
    "check_images",
    "small_linalg_threads",
]

INCEPTION_ENV = "CLIP_T2I_INCEPTION"
DINOV2_ENV = "CLIP_T2I_DINOV2"
CACHE_ENV = "CLIP_T2I_FEATURE_CACHE"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RANGE_SLACK = 1e-3


SMALL_LINALG = 4096


@contextmanager
def small_linalg_threads(n: int) -> Iterator[None]:
    """Run eigensolvers on matrices up to ``SMALL_LINALG`` wide single-threaded, then restore the setting.

    LAPACK's tridiagonalisation synchronises threads at every step, and MKL's OpenMP threads spin while
    waiting: on a busy machine a 2-thread ``eigh`` of 1024 x 1024 took 19 s instead of 0.4 s, and the
    2048-d FD 18-32 s instead of 5 s. Single-threaded is slower only on an idle many-core machine.
    """
    before = torch.get_num_threads()
    if n > SMALL_LINALG or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- validation
def as_feature_matrix(x: Any, what: str = "features", dim: int | None = None, check_finite: bool = True) -> Tensor:
    """Check ``x`` is a finite ``[N, D]`` float tensor (``dim`` checks D) and return it detached."""
    if not isinstance(x, Tensor):
        raise UserError(f"{what} must be a torch.Tensor [N, D], got {type(x).__name__}")
    if x.ndim != 2:
        raise UserError(f"{what} must be 2-D [N, D], got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise UserError(f"{what} must be a real-valued tensor, got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise UserError(f"{what} have {x.shape[1]} dims but this metric was set up for {dim}")
    if check_finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise UserError(f"{what} contain NaN/inf in {bad} of {x.shape[0]} rows; fix the model or drop them")
    return x.detach()


def check_images(images: Any, what: str = "images") -> Tensor:
    """Check ``images`` is a float ``[B, 3, H, W]`` tensor in ``[0, 1]``; return it detached."""
    if not isinstance(images, Tensor):
        raise UserError(f"{what} must be a torch.Tensor [B, 3, H, W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise UserError(f"{what} must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise UserError(f"{what} must be float in [0, 1], got {images.dtype} (divide uint8 images by 255)")
    if images.numel():
        lo, hi = float(images.min()), float(images.max())
        if not (lo >= -_RANGE_SLACK and hi <= 1 + _RANGE_SLACK):  # also catches NaN
            raise UserError(f"{what} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] (map [-1,1] by (x+1)/2)")
    return images.detach()


def _resize(images: Tensor, size: int, mode: str) -> Tensor:
    """Resize ``[B, 3, H, W]`` to ``size x size`` (antialiased if shrinking; bicubic clamped to [0, 1])."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = min(images.shape[-2:]) > size
    out = F.interpolate(images, size=(size, size), mode=mode, align_corners=False, antialias=shrink)
    return out.clamp(0.0, 1.0) if mode == "bicubic" else out


def _module_device(module: Any) -> torch.device:
    if isinstance(module, nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return torch.device("cpu")


def _resolve_weights(weights_path: str | os.PathLike | None, env: str, what: str) -> Path:
    """A weights file from the argument or the environment variable ``env``; UserError if missing."""
    raw = weights_path if weights_path is not None else os.environ.get(env)
    if not raw:
        raise UserError(f"{what} weights are not bundled: pass weights_path=FILE or set {env}=FILE")
    path = Path(raw).expanduser()
    if not path.is_file():
        src = "weights_path" if weights_path is not None else env
        raise UserError(f"{what} weights file {path} (from {src}) does not exist; point {env} to the file")
    return path


# ---------------------------------------------------------------------------------------------- extractors
class FeatureExtractor(nn.Module):
    """Base class: ``forward(images [B,3,H,W] in [0,1]) -> [B, dim]`` float features.

    Subclasses implement :meth:`features` on already-validated images; ``forward`` checks the input and
    casts the output to float32. ``name`` + ``version`` (+ a hash of the weights) key the feature cache.
    """

    name: str
    dim: int
    version: str

    def __init__(self, name: str, dim: int, version: str = "1") -> None:
        super().__init__()
        self.name = name
        self.dim = int(dim)
        self.version = str(version)

    @property
    def num_features(self) -> int:
        """Alias of ``dim`` (the attribute torchmetrics' FID looks for)."""
        return self.dim

    def features(self, images: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        images = check_images(images)
        out = self.features(images.to(_module_device(self)))
        if out.ndim != 2 or out.shape[1] != self.dim:
            raise UserError(f"extractor {self.name} returned shape {tuple(out.shape)}, expected [B, {self.dim}]")
        return out.float()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}, version={self.version!r}"


class ClipFeatures(FeatureExtractor):
    """Image embeddings from anything with ``encode_image(pixels in [0, 1], any size) -> [B, D]``.

    No resize or normalisation here: that is the wrapped model's job (our ``ClipModel`` resizes to its
    own size and applies its own mean/std, and L2-normalises the embedding unless ``encode_kwargs``
    says ``{"normalize": False}``). ``dim`` is read from ``embed_dim`` or probed with one 64x64 image.
    """

    def __init__(
        self,
        model: Any,
        name: str | None = None,
        dim: int | None = None,
        version: str = "1",
        encode_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not callable(getattr(model, "encode_image", None)):
            raise UserError(f"ClipFeatures needs a model with encode_image(), got {type(model).__name__}")
        name = name or str(getattr(model, "name", type(model).__name__))
        if dim is None:
            dim = getattr(model, "embed_dim", None)
            if not isinstance(dim, int):
                with torch.no_grad():
                    dim = int(model.encode_image(torch.rand(1, 3, 64, 64, device=_module_device(model))).shape[-1])
        kwargs = dict(encode_kwargs or {})
        extra = ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
        super().__init__(name=f"clip:{name}", dim=dim, version=f"{version};{extra}" if extra else version)
        self.encode_kwargs = kwargs
        self.model = model  # registered as a submodule when it is an nn.Module

    def features(self, images: Tensor) -> Tensor:
        return self.model.encode_image(images, **self.encode_kwargs)


class ModuleFeatures(FeatureExtractor):
    """Features from any ``nn.Module`` that returns a penultimate feature vector ``[B, D]``.

    Resize: to ``input_size`` x ``input_size`` with ``interpolation`` (``bilinear`` default, antialiased
    when shrinking); ``None`` keeps the size. Normalisation: ``(x - mean) / std`` if given, else the module
    sees ``[0, 1]`` pixels. ``dim`` is probed with one image if not given.
    """

    def __init__(
        self,
        module: nn.Module,
        name: str,
        input_size: int | None = None,
        dim: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        interpolation: str = "bilinear",
        version: str = "1",
    ) -> None:
        if interpolation not in ("bilinear", "bicubic"):
            raise UserError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")
        if (mean is None) != (std is None):
            raise UserError("give both mean and std (or neither) to ModuleFeatures")
        if dim is None:
            probe = torch.rand(1, 3, input_size or 64, input_size or 64, device=_module_device(module))
            with torch.no_grad():
                was = module.training
                module.eval()
                dim = int(module(probe).reshape(1, -1).shape[1])
                module.train(was)
        super().__init__(name=name, dim=dim, version=version)
        self.module = module
        self.input_size = input_size
        self.interpolation = interpolation
        self.register_buffer("mean", None if mean is None else torch.tensor(mean).view(1, 3, 1, 1), False)
        self.register_buffer("std", None if std is None else torch.tensor(std).view(1, 3, 1, 1), False)

    def features(self, images: Tensor) -> Tensor:
        if self.input_size is not None:
            images = _resize(images, self.input_size, self.interpolation)
        if self.mean is not None:
            images = (images - self.mean) / self.std
        return self.module(images).reshape(images.shape[0], -1)


class InceptionV3Features(FeatureExtractor):
    """Inception-v3 pool3 features (2048-d) with **torchvision's** architecture and weights file.

    Pipeline: bilinear resize to 299x299 (antialiased when shrinking), ``x -> 2x - 1`` (the [-1, 1] input the
    Google weights expect; equal to ImageNet mean/std followed by torchvision's ``transform_input``), then
    the network up to global average pooling. The weights are torchvision's ``inception_v3_google-*.pth``
    from a local file (``weights_path`` or ``$CLIP_T2I_INCEPTION``).

    This is *not* the TF-FID Inception (``pt_inception-2015-12-05``) that clean-fid / torch-fidelity use,
    and the resize differs, so FIDs from it are not comparable to published FIDs; use it for relative
    comparisons only.
    """

    input_size = 299

    def __init__(self, weights_path: str | os.PathLike | None = None) -> None:
        from torchvision.models import inception_v3

        path = _resolve_weights(weights_path, INCEPTION_ENV, "Inception-v3 (torchvision)")
        st = path.stat()
        super().__init__(name="inception_v3-torchvision-pool3", dim=2048, version=f"{path.name}:{st.st_size}")
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            net.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad file from the user
            raise UserError(f"{path} is not a torchvision inception_v3 state dict ({type(exc).__name__})") from None
        net.fc = nn.Identity()
        net.AuxLogits = None
        net.aux_logits = False
        self.net = net.eval()

    def train(self, mode: bool = True) -> InceptionV3Features:
        """Stays in eval mode (batch-norm statistics and dropout must not change)."""
        return super().train(False)

    def features(self, images: Tensor) -> Tensor:
        x = _resize(images, self.input_size, "bilinear") * 2.0 - 1.0
        return self.net(x)


_DINOV2_ARCHS = {
    "vits14": ("vit_small_patch14_dinov2.lvd142m", 384),
    "vitb14": ("vit_base_patch14_dinov2.lvd142m", 768),
    "vitl14": ("vit_large_patch14_dinov2.lvd142m", 1024),
    "vitg14": ("vit_giant_patch14_dinov2.lvd142m", 1536),
}


class DinoV2Features(FeatureExtractor):
    """DINOv2 CLS-token features (post-LayerNorm, as ``x_norm_clstoken``) through timm.

    Pipeline: bicubic resize to 224x224 (antialiased when shrinking, clamped to [0, 1]), ImageNet
    mean/std, then timm's ``vit_*_patch14_dinov2.lvd142m`` built for 224 input (its 37x37 position grid is
    resampled to 16x16 once at load; Meta's hub model interpolates at run time instead, so values differ
    slightly from dgm-eval's). Weights: a local timm or Meta ``.pth``/``.safetensors`` file given as
    ``weights_path`` or ``$CLIP_T2I_DINOV2``. ``arch``: vits14 (384-d), vitb14 (768), vitl14 (1024),
    vitg14 (1536).
    """

    input_size = 224

    def __init__(self, arch: str = "vits14", weights_path: str | os.PathLike | None = None) -> None:
        if arch not in _DINOV2_ARCHS:
            raise UserError(f"unknown DINOv2 arch {arch!r}; choose one of {', '.join(_DINOV2_ARCHS)}")
        path = _resolve_weights(weights_path, DINOV2_ENV, f"DINOv2 {arch}")
        import timm

        timm_name, dim = _DINOV2_ARCHS[arch]
        super().__init__(name=f"dinov2-{arch}", dim=dim, version=f"{path.name}:{path.stat().st_size}")
        try:
            net = timm.create_model(
                timm_name,
                pretrained=True,
                num_classes=0,
                img_size=self.input_size,
                pretrained_cfg_overlay={"file": str(path)},
            )
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad file from the user
            raise UserError(f"{path} is not a DINOv2 {arch} checkpoint ({type(exc).__name__})") from None
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> DinoV2Features:
        """Stays in eval mode."""
        return super().train(False)

    def features(self, images: Tensor) -> Tensor:
        x = (_resize(images, self.input_size, "bicubic") - self.mean) / self.std
        return self.net(x)


# ---------------------------------------------------------------------------------------------- extraction
def _extractor_identity(extractor: Callable[[Tensor], Tensor]) -> str:
    """sha256 of name, version and (for modules) every parameter/buffer: the cache namespace."""
    h = hashlib.sha256()
    name = getattr(extractor, "name", type(extractor).__name__)
    h.update(f"{name}\0{getattr(extractor, 'version', '')}\0".encode())
    if isinstance(extractor, nn.Module):
        for key, t in extractor.state_dict().items():
            h.update(key.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:32]


def _image_key(image: Tensor) -> str:
    """Content hash of one image: sha256 of its dtype, shape and raw bytes."""
    img = image.detach().cpu().contiguous()
    h = hashlib.sha256(f"{img.dtype}{tuple(img.shape)}".encode())
    h.update(img.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _to_image_tensor(item: Any) -> Tensor:
    if isinstance(item, Tensor):
        return item
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None  # noqa: N806
    if Image is not None and isinstance(item, Image.Image):
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(item.convert("RGB"))
    raise UserError(f"cannot read an image from a {type(item).__name__}; give tensors or PIL images")


def _iter_batches(images: Tensor | Iterable[Any], batch_size: int) -> Iterator[Tensor]:
    """Yield same-size ``[b, 3, H, W]`` batches (b <= batch_size) from a tensor or an iterable."""
    if isinstance(images, Tensor):
        if images.ndim != 4:
            raise UserError(f"images must be [N, 3, H, W], got shape {tuple(images.shape)}")
        yield from images.split(batch_size)
        return
    pending: list[Tensor] = []
    for item in images:
        if isinstance(item, (tuple, list)) and item and not isinstance(item[0], (int, float)):
            item = item[0]  # (images, labels, ...) batches from a DataLoader
        t = _to_image_tensor(item)
        for img in t if t.ndim == 4 else [t]:
            if img.ndim != 3:
                raise UserError(f"each image must be [3, H, W], got shape {tuple(img.shape)}")
            if pending and (img.shape != pending[0].shape or len(pending) == batch_size):
                yield torch.stack(pending)
                pending = []
            pending.append(img)
    if pending:
        yield torch.stack(pending)


class _FeatureCache:
    """Per-image feature cache: shard files ``<dir>/<extractor-id>/<uuid>.pt`` of {keys, features}."""

    def __init__(self, root: Path, extractor_id: str) -> None:
        self.dir = root / extractor_id
        self.index: dict[str, Tensor] = {}
        self.new_keys: list[str] = []
        self.new_feats: list[Tensor] = []
        if self.dir.is_dir():
            for shard in sorted(self.dir.glob("*.pt")):
                try:
                    data = torch.load(shard, map_location="cpu", weights_only=True)
                    self.index.update(zip(data["keys"], data["features"], strict=True))
                except Exception:  # noqa: BLE001 - a truncated/foreign shard is skipped, not fatal
                    continue

    def add(self, keys: list[str], feats: Tensor) -> None:
        for k, f in zip(keys, feats, strict=True):
            self.index[k] = f
        self.new_keys += keys
        self.new_feats.append(feats)

    def flush(self) -> None:
        if not self.new_keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"{uuid.uuid4().hex}.pt"
        tmp = final.with_suffix(".tmp")
        torch.save({"keys": self.new_keys, "features": torch.cat(self.new_feats)}, tmp)
        os.replace(tmp, final)
        self.new_keys, self.new_feats = [], []


def extract_features(
    extractor: Callable[[Tensor], Tensor],
    images: Tensor | Iterable[Any],
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Run ``extractor`` over ``images`` in batches; return float32 features ``[N, D]`` on the CPU.

    ``images``: a tensor ``[N, 3, H, W]`` or an iterable of tensors (``[3, H, W]`` or ``[B, 3, H, W]``), PIL
    images or DataLoader tuples whose first element is the images. uint8 images are divided by 255; float
    images must be in ``[0, 1]``. Cache: if ``cache_dir`` (or ``$CLIP_T2I_FEATURE_CACHE``) is set, each
    image's features are stored under ``sha256(image bytes)`` in a folder named by the extractor's name,
    version and weights hash, so re-runs only compute new images.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    root = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV)
    cache = _FeatureCache(Path(root).expanduser(), _extractor_identity(extractor)) if root else None
    if device is None:
        device = _module_device(extractor)
    was_training = extractor.training if isinstance(extractor, nn.Module) else None
    if isinstance(extractor, nn.Module):
        extractor.eval()
    out: list[Tensor] = []
    try:
        with torch.inference_mode():
            for batch in _iter_batches(images, batch_size):
                keys = [_image_key(img) for img in batch] if cache is not None else []
                todo = [i for i, k in enumerate(keys) if k not in cache.index] if cache is not None else None
                feats: Tensor | None = None
                if todo is None or todo:
                    sub = batch if todo is None or len(todo) == len(batch) else batch[todo]
                    sub = sub.float() / 255.0 if sub.dtype == torch.uint8 else sub
                    feats = as_feature_matrix(extractor(sub.to(device)), "extracted features").float().cpu()
                    if cache is not None:
                        cache.add([keys[i] for i in todo], feats)
                if cache is not None:
                    feats = torch.stack([cache.index[k] for k in keys]).float()
                out.append(feats)
    finally:
        if cache is not None:
            cache.flush()
        if was_training:
            extractor.train(True)
    if not out:
        raise UserError("no images were given to extract_features")
    return torch.cat(out)
