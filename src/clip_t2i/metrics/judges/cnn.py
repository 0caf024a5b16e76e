"""Small CNN classifiers: the legacy shapes/digits judges, the robust digits classifier, and their features.

* :class:`ShapesJudge` — one-object shapes world, four heads (colour 6, shape 4, size 2, position 5), trained on
  clean renders. Since issue #12 it is no longer the default judge (it is fooled like the guiding CLIP); it stays
  as a *feature extractor* for FID (:func:`judge_feature_extractor`) and behind ``--judge legacy``.
* :class:`DigitsJudge` — ten-way digit classifier on the luminance of the image (so coloured generations are
  judged by shape alone). The same class holds the legacy ``digits-judge`` and the adversarially trained
  ``digits-judge-robust`` (see :mod:`clip_t2i.metrics.judges.training`).

Files are fp16 safetensors with the kind and input size in the metadata (:func:`save_judge`, :func:`load_judge`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.errors import UserError

SHAPES_ATTRIBUTES = ("colour", "shape", "size", "position")
SHAPES_JUDGE = "shapes-judge"
DIGITS_JUDGE = "digits-judge"
DIGITS_JUDGE_ROBUST = "digits-judge-robust"
JUDGE_META_KEY = "clip_t2i_judge"


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2 if stride == 1 else 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _Trunk(nn.Module):
    """Conv trunk: stride-2 4x4 stem, three conv stages, 4x4 average grid, 128-d penultimate layer.

    The 4x4 grid (not a global pool) keeps *where* things are, which the position head needs.
    """

    def __init__(self, *, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(3, width, 4, stride=2),  # [B, w, S/2, S/2]
            _conv(width, width),
            nn.MaxPool2d(2),  # S/4
            _conv(width, 2 * width),
            nn.MaxPool2d(2),  # S/8
            _conv(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(4),  # [B, 2w, 4, 4]
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(2 * width * 16, feature_dim), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x))


class _JudgeBase(nn.Module):
    """Shared input handling: any ``[B, 3, H, W]`` in [0, 1] is resized to ``input_size`` and centred."""

    input_size: int
    feature_dim: int = 128
    trunk: _Trunk

    def _prepare(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"judge input must be [B, 3, H, W], got {tuple(images.shape)}")
        images = images.float().clamp(0.0, 1.0)
        if images.shape[-2:] != (self.input_size, self.input_size):
            shrink = min(images.shape[-2:]) > self.input_size
            images = F.interpolate(
                images,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=shrink,
            )
        return (images - 0.5) / 0.25

    def features(self, images: Tensor) -> Tensor:
        """Penultimate features ``[B, 128]`` of images in [0, 1] (any size)."""
        return self.trunk(self._prepare(images))


class ShapesJudge(_JudgeBase):
    """Attribute classifier for the one-object shapes world: ``forward -> {attribute: logits}``."""

    def __init__(self, *, input_size: int = 64, width: int = 32) -> None:
        super().__init__()
        from clip_t2i.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES

        self.input_size = input_size
        self.trunk = _Trunk(width=width, feature_dim=self.feature_dim)
        sizes = {"colour": len(COLOURS), "shape": len(SHAPES), "size": len(SIZES), "position": len(POSITIONS)}
        self.heads = nn.ModuleDict({k: nn.Linear(self.feature_dim, n) for k, n in sizes.items()})

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        f = self.features(images)
        return {k: head(f) for k, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
        """Predicted attribute indices ``{attribute: LongTensor [B]}``."""
        self.eval()
        outs = [self(chunk) for chunk in images.split(batch_size)]
        return {k: torch.cat([o[k] for o in outs]).argmax(1) for k in SHAPES_ATTRIBUTES}


class DigitsJudge(_JudgeBase):
    """Ten-way digit classifier on the luminance of the image: ``forward -> logits [B, 10]``."""

    def __init__(self, *, input_size: int = 32, width: int = 32) -> None:
        super().__init__()
        self.input_size = input_size
        self.trunk = _Trunk(width=width, feature_dim=self.feature_dim)
        self.head = nn.Linear(self.feature_dim, 10)

    def _prepare(self, images: Tensor) -> Tensor:
        if images.ndim == 4 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"judge input must be [B, 3, H, W] or [B, 1, H, W], got {tuple(images.shape)}")
        lum = (images[:, :1] * 0.299 + images[:, 1:2] * 0.587 + images[:, 2:3] * 0.114).expand(-1, 3, -1, -1)
        return super()._prepare(lum)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """Predicted digit ``LongTensor [B]``."""
        self.eval()
        return torch.cat([self(chunk).argmax(1) for chunk in images.split(batch_size)])


def judge_kind(judge: nn.Module) -> str:
    """``"shapes"`` or ``"digits"`` for a CNN judge."""
    return "shapes" if isinstance(judge, ShapesJudge) else "digits"


def judge_feature_extractor(judge: _JudgeBase, name: str | None = None):
    """The judge's penultimate layer as a :class:`~clip_t2i.metrics.features.ModuleFeatures` extractor."""
    from clip_t2i.metrics.features import ModuleFeatures

    class _Penultimate(nn.Module):
        def __init__(self, j: _JudgeBase) -> None:
            super().__init__()
            self.judge = j

        def forward(self, x: Tensor) -> Tensor:
            return self.judge.features(x)

    kind = judge_kind(judge)
    return ModuleFeatures(_Penultimate(judge.eval()), name=name or f"{kind}-judge-penultimate", dim=judge.feature_dim)


def save_judge(model: _JudgeBase, path: str | Path, extra: dict | None = None) -> Path:
    """Write the judge as fp16 safetensors with its kind and input size in the metadata (atomically)."""
    from safetensors.torch import save_file

    from clip_t2i.utils.io import atomic_write

    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    meta = {JUDGE_META_KEY: json.dumps({"kind": judge_kind(model), "input_size": model.input_size, **(extra or {})})}
    path = Path(path)
    with atomic_write(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path


def read_judge_metadata(path: str | Path) -> dict:
    """The judge metadata of a ``.safetensors`` file (``{}`` when it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get(JUDGE_META_KEY, "null")) or {}


def load_judge(name_or_path: str | Path = SHAPES_JUDGE) -> _JudgeBase:
    """Load a CNN judge by zoo name (``shapes-judge``, ``digits-judge``, ``digits-judge-robust``) or file."""
    from safetensors.torch import load_file

    from clip_t2i import zoo

    name = str(name_or_path)
    path = zoo.zoo_path(name) if name in zoo.list_zoo() else Path(name)
    if not path.is_file():
        raise UserError(
            f"judge {name!r} is neither a zoo model ({', '.join(zoo.list_zoo()) or 'none'}) nor a file; "
            "train one with `clip-t2i train-judge`"
        )
    try:
        meta = read_judge_metadata(path)
        sd = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise UserError(f"cannot read judge {path}: {str(e)[:160]}") from None
    if not meta:
        raise UserError(f"{path} is not a clip-t2i judge (no {JUDGE_META_KEY} metadata)")
    cls = ShapesJudge if meta["kind"] == "shapes" else DigitsJudge
    model: _JudgeBase = cls(input_size=meta["input_size"], width=int(meta.get("width", 32)))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return model.eval()
