"""Starting images: a per-class Gaussian prior fitted at low resolution, grey + noise, an init image.

:class:`GaussianPrior` is the CLIPAG / Santurkar et al. initialisation: one full-covariance Gaussian per class
over images flattened at ``resolution`` x ``resolution`` (in [-1, 1]), ``N(mu_c, Sigma_c + eps I)`` with
``Sigma_c = Xc^T Xc / n_c``. Samples are mapped back to [0, 1], clamped and upsampled. A *pool* is drawn
from **all** classes (balanced, every class ``n // C`` or one more times: the CLIPAG notebook's
``samplers[i // 50]`` used only the first 20 of 200 classes) and the start image is the pool member whose CLIP
embedding is closest to the prompt.

The prior follows the guiding CLIP: :func:`world_prior` maps the model's training world
(``clip.config["train_data"]``) to a prior source. Fitting the prior, sampling a pool and embedding it cost
seconds, so both are cached on disk (:mod:`clip_t2i.utils.cache`, safetensors): the prior keyed by its settings
and the code that makes its data, the pool (+ its CLIP embeddings and the generator state after drawing it)
keyed by the prior, the pool settings, the model's weights and the generator's state. A cached start equals an
uncached one bit for bit.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.errors import UserError

PRIOR_SOURCES = ("auto", "shapes", "digits", "<folder of class subfolders>")
WORLD_PRIORS = {"shapes": "shapes", "shapes2": "shapes", "digits": "digits"}  # train_data -> prior source
_CACHE_VERSION = 2  # 2: pool entries hold the embeddings only


class GaussianPrior:
    """Per-class full-covariance Gaussians over ``[3, r, r]`` images.

    Each class keeps its mean ``mu_c [d]`` and a factor ``A_c`` with ``A_c A_c^T = Sigma_c`` (``d = 3 r^2``):
    the centred data ``Xc^T / sqrt(n_c)`` when ``n_c <= d`` (exact and cheap), else the Cholesky factor of
    ``Sigma_c``. A sample is ``mu_c + A_c z + sqrt(eps) z'`` with ``z, z'`` standard normal, which has covariance
    exactly ``Sigma_c + eps I``.
    """

    def __init__(
        self, means: Tensor, factors: list[Tensor], low_rank: list[bool], resolution: int, eps: float = 1e-4
    ) -> None:
        self.means, self.factors, self.low_rank = means, factors, low_rank
        self.resolution, self.eps = int(resolution), float(eps)

    @property
    def n_classes(self) -> int:
        return self.means.shape[0]

    @classmethod
    def fit(cls, images: Tensor, labels: Tensor, resolution: int = 16, eps: float = 1e-4) -> GaussianPrior:
        """Fit on ``images [N, 3, H, W]`` in [0, 1] with integer ``labels [N]`` (area-downsampled to ``resolution``)."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] != labels.shape[0] or images.shape[0] == 0:
            raise UserError("GaussianPrior.fit needs images [N, 3, H, W] and labels [N] with N >= 1")
        x = (
            F.interpolate(images.float(), size=(resolution, resolution), mode="area")
            if images.shape[-1] != resolution
            else images.float()
        )
        x = (x * 2 - 1).flatten(1)  # [N, d] in [-1, 1]
        d = x.shape[1]
        means, factors, low_rank = [], [], []
        for c in torch.unique(labels).tolist():
            xc = x[labels == c]
            mu = xc.mean(0)
            centred = xc - mu
            n = xc.shape[0]
            low_rank.append(n <= d)
            if n <= d:
                factors.append((centred.T / math.sqrt(n)).contiguous())
            else:
                cov = centred.T @ centred / n + eps * torch.eye(d)
                factors.append(torch.linalg.cholesky(cov))
            means.append(mu)
        return cls(torch.stack(means), factors, low_rank, resolution, eps)

    def sample(self, classes: Tensor, generator: torch.Generator) -> Tensor:
        """One sample per entry of ``classes`` (class indices), ``[n, 3, r, r]`` clamped to [0, 1]."""
        d = self.means.shape[1]
        out = torch.empty(len(classes), d)
        for i, c in enumerate(classes.tolist()):
            a = self.factors[c]
            z = torch.randn(a.shape[1], generator=generator)
            s = self.means[c] + a @ z
            if self.low_rank[c]:  # the Cholesky factor already holds the eps I part
                s = s + math.sqrt(self.eps) * torch.randn(d, generator=generator)
            out[i] = s
        r = self.resolution
        return ((out.view(-1, 3, r, r) + 1) / 2).clamp(0.0, 1.0)

    def sample_pool(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` samples balanced over *all* classes (class ``i % C`` for ``i < n``, in a random order)."""
        classes = torch.arange(n) % self.n_classes
        classes = classes[torch.randperm(n, generator=generator)]
        return self.sample(classes, generator)

    def to_tensors(self) -> dict[str, Tensor]:
        """The prior as named tensors (for :mod:`clip_t2i.utils.cache`)."""
        out = {f"factor.{i}": f for i, f in enumerate(self.factors)}
        out.update(
            means=self.means,
            low_rank=torch.tensor(self.low_rank, dtype=torch.bool),
            settings=torch.tensor([float(self.resolution), self.eps], dtype=torch.float64),
        )
        return out

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> GaussianPrior:
        """Inverse of :meth:`to_tensors`."""
        n = t["means"].shape[0]
        resolution, eps = t["settings"].tolist()
        factors = [t[f"factor.{i}"] for i in range(n)]
        d = 3 * int(resolution) ** 2
        if (
            t["means"].shape != (n, d)
            or any(f.ndim != 2 or f.shape[0] != d for f in factors)
            or len(t["low_rank"]) != n
        ):
            raise ValueError("inconsistent prior tensors")
        return cls(t["means"], factors, [bool(b) for b in t["low_rank"].tolist()], int(resolution), eps)


def world_prior(clip: Any) -> str | None:
    """The prior source of the world ``clip`` was trained on (``clip.config["train_data"]``), None if unknown."""
    config = getattr(clip, "config", None)
    return WORLD_PRIORS.get(config.get("train_data")) if isinstance(config, dict) else None


def prior_key(source: str, resolution: int, eps: float, per_class: int = 24) -> str | None:
    """The disk-cache key of a built-in prior: its settings + the code that renders its data; None for folders."""
    if source not in ("shapes", "digits"):
        return None
    from clip_t2i import data as data_pkg
    from clip_t2i.utils.cache import digest, file_digest

    code = [Path(__file__), Path(data_pkg.__file__).parent / f"{source}.py"]
    return digest("prior", _CACHE_VERSION, source, resolution, eps, per_class, [file_digest(f) for f in code])


@lru_cache(maxsize=8)
def fit_prior(source: str, resolution: int = 16, eps: float = 1e-4, per_class: int = 24) -> GaussianPrior:
    """A prior fitted on a labelled dataset (cached per arguments in memory, built-in sources also on disk).

    ``source``: ``"shapes"`` (the 216 *seen* one-object combinations of the train split, ``per_class`` renders
    each, seed 0), ``"digits"`` (the digits train split, 10 classes) or a folder whose sub-folders are classes
    (images read at ``resolution``).
    """
    if resolution < 2:
        raise UserError(f"prior resolution must be >= 2, got {resolution}")
    from clip_t2i.utils import cache

    key = prior_key(source, resolution, eps, per_class)
    if key is not None and (hit := cache.load("prior", key)) is not None:
        try:
            return GaussianPrior.from_tensors(hit)
        except (KeyError, ValueError, RuntimeError):  # a damaged entry: refit and overwrite it
            pass
    prior = _fit_prior(source, resolution, eps, per_class)
    if key is not None:
        cache.save("prior", key, prior.to_tensors())
    return prior


def _fit_prior(source: str, resolution: int, eps: float, per_class: int) -> GaussianPrior:
    if source == "shapes":
        from clip_t2i.data.shapes import ShapesWorld

        world = ShapesWorld(size=64, level="one", split="train")
        labels = world.allowed_labels().repeat_interleave(per_class)
        scenes = world.sample_scenes(0, torch.Generator().manual_seed(0), labels=labels)
        return GaussianPrior.fit(world.render(scenes), labels, resolution, eps)
    if source == "digits":
        from clip_t2i.data.digits import DigitsDataset

        ds = DigitsDataset(split="train", size=32)
        return GaussianPrior.fit(ds.images.expand(-1, 3, -1, -1), ds.labels, resolution, eps)
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise UserError(f"unknown prior source {source!r}; choose one of {', '.join(PRIOR_SOURCES)}")
    from clip_t2i.data._common import IMAGE_EXTENSIONS, load_image

    images, labels = [], []
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    for ci, cdir in enumerate(classes):
        for f in sorted(cdir.iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                try:
                    images.append(load_image(f, resolution))
                    labels.append(ci)
                except Exception:  # noqa: BLE001 - unreadable images are skipped
                    continue
    if not images:
        raise UserError(f"{folder} has no class sub-folders with readable images (expected {folder}/<class>/*.png)")
    return GaussianPrior.fit(torch.stack(images), torch.tensor(labels), resolution, eps)


def load_init_image(path: str | Path, size: int) -> Tensor:
    """An init image as ``[3, size, size]`` in [0, 1] (shorter side resized, centre crop)."""
    from clip_t2i.data._common import load_image

    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"init image {p} does not exist")
    try:
        return load_image(p, size)
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
        raise UserError(f"cannot read init image {p}: {type(e).__name__}") from None


def hue_rotate(images: Tensor, angles: Tensor) -> Tensor:
    """Rotate the colours of ``images [n, 3, h, w]`` about the grey axis ``(1, 1, 1)/√3`` by ``angles [n]``
    (radians; Rodrigues' formula), clamped to [0, 1]. Greys are fixed points; 2π/3 permutes R→G→B."""
    # cross-product matrix of the unit grey axis
    K = (
        torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=images.dtype, device=images.device)
        * 3**-0.5
    )
    c, s_ = torch.cos(angles).view(-1, 1, 1), torch.sin(angles).view(-1, 1, 1)
    R = torch.eye(3, dtype=images.dtype, device=images.device) + s_ * K + (1 - c) * (K @ K)
    return torch.einsum("nij,njhw->nihw", R, images).clamp(0.0, 1.0)


def chroma_angle(rgb: Tensor) -> Tensor:
    """The angle of colours ``[..., 3]`` about the grey axis, in the sense :func:`hue_rotate` turns them (radians)."""
    e1 = torch.tensor([2.0, -1.0, -1.0], dtype=rgb.dtype) / 6**0.5  # orthonormal basis of the chromatic plane,
    e2 = torch.tensor([0.0, 1.0, -1.0], dtype=rgb.dtype) / 2**0.5  # e1 × e2 = grey axis (hue_rotate's sense)
    return torch.atan2(rgb @ e2, rgb @ e1)


_HUE_SCHEME = "world-hue-steps"  # part of the pool cache key: pools hue-rotated the older way are never reused


def world_hue_steps(source: str) -> Tensor | None:
    """For the shapes world: every rotation that turns one world colour's chroma onto another's (radians, in
    (−π, π], 0 included), so a hue-rotated pool member keeps a colour of the world ("red" never becomes pink).
    None for other sources (any rotation is as good as another)."""
    if source not in ("shapes", "shapes2"):
        return None
    from clip_t2i.data.shapes import COLOUR_RGB

    a = chroma_angle(torch.tensor(COLOUR_RGB, dtype=torch.float64))
    d = (a.view(-1, 1) - a.view(1, -1)).flatten()
    d = torch.remainder(d + torch.pi, 2 * torch.pi) - torch.pi
    return torch.unique(d.round(decimals=9)).float()


@torch.no_grad()
def pick_by_clip(pool: Tensor, clip, direction: Tensor, size: int, batch: int = 512) -> Tensor:
    """The pool member (upsampled to ``size``) whose CLIP embedding is closest to ``direction [D]``."""
    up = F.interpolate(pool, size=(size, size), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    sims = torch.cat([clip.encode_image(chunk) @ direction.to(chunk.device) for chunk in up.split(batch)])
    return up[int(sims.argmax())]


def model_key(clip: Any) -> str | None:
    """A content hash of a CLIP (weights + config + device + mode): the pool cache's model key; None for an
    object without a ``state_dict`` (not cached)."""
    from clip_t2i.utils.cache import digest, tensors_digest

    if not callable(getattr(clip, "state_dict", None)):
        return None
    config = getattr(clip, "config", {})
    device = str(next(iter(clip.parameters())).device) if hasattr(clip, "parameters") else "cpu"
    tensors = clip.state_dict()
    # hashing a large CLIP's weights takes ~1 s: reuse the hash while no tensor was replaced or changed in place
    stamp = tuple((k, v.data_ptr(), v._version) for k, v in tensors.items())
    memo = getattr(clip, "_clip_t2i_weights_digest", None)
    if memo is None or memo[0] != stamp:
        memo = (stamp, tensors_digest(tensors))
        try:
            clip._clip_t2i_weights_digest = memo
        except AttributeError:  # an object that refuses new attributes: hash every time
            pass
    return digest("model", memo[1], config, device, bool(getattr(clip, "training", False)))


@torch.no_grad()
def pool_start(
    source: str,
    *,
    resolution: int,
    eps: float,
    pool: int,
    hue: float,
    clip: Any,
    direction: Tensor,
    size: int,
    generator: torch.Generator,
    model: str | None = None,
    batch: int = 512,
) -> Tensor:
    """The start image ``[3, size, size]``: the member of a pool of ``pool`` prior samples (hue-rotated up to
    ``hue`` x 180 degrees; for the shapes world only by the rotations between world colours) whose CLIP
    embedding is closest to ``direction``; ``generator`` advances as the pool is drawn. The pool's CLIP
    embeddings come from the disk cache when ``(prior, pool settings, model, generator state)`` was seen before;
    ``model`` is :func:`model_key` of ``clip`` (computed when None)."""
    from clip_t2i.utils import cache

    pkey = prior_key(source, resolution, eps)
    key = None
    if pkey is not None and cache.cache_dir() is not None:
        mkey = model or model_key(clip)
        key = (
            None
            if mkey is None
            else digest_pool(pkey, pool, hue, _HUE_SCHEME, size, batch, mkey, generator.get_state().numpy().tobytes())
        )
        hit = None if key is None else cache.load("pool", key)
        if hit is not None and not _valid_pool(hit, pool):
            hit = None
    else:
        hit = None
    # The pool itself is re-drawn (0.4 s, bit-identical for the same generator state); only its CLIP embeddings
    # (the expensive part, ~1 MB) are cached — caching the images too would cost ~26 MB per model and seed.
    members = fit_prior(source, resolution, eps).sample_pool(pool, generator)
    if hue > 0:
        steps = world_hue_steps(source)
        if steps is not None:  # only rotations between world colours, up to hue x 180 degrees
            steps = steps[steps.abs() <= hue * torch.pi + 1e-6]
            angles = steps[torch.randint(len(steps), (len(members),), generator=generator)]
        else:
            angles = (torch.rand(len(members), generator=generator) * 2 - 1) * (hue * torch.pi)
        members = hue_rotate(members, angles)
    up = F.interpolate(members, size=(size, size), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    if hit is not None:
        embeddings = hit["embeddings"]
    else:
        embeddings = torch.cat([clip.encode_image(chunk) for chunk in up.split(batch)])
        if key is not None:
            cache.save("pool", key, {"embeddings": embeddings.detach().contiguous()})
    d = direction.to(embeddings.device)
    sims = torch.cat([e @ d for e in embeddings.split(batch)])
    return up[int(sims.argmax())]


def _valid_pool(hit: dict[str, Tensor], n: int) -> bool:
    """Whether a cached pool entry holds ``n`` embeddings (anything else is a miss)."""
    emb = hit.get("embeddings")
    return emb is not None and emb.ndim == 2 and emb.shape[0] == n


def digest_pool(*parts: Any) -> str:
    """The pool cache key of ``parts`` (prior key, pool settings, model key, generator state bytes)."""
    from clip_t2i.utils.cache import digest

    return digest("pool", _CACHE_VERSION, *parts)
