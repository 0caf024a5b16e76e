"""`ClipModel`: one wrapper around any open_clip CLIP with differentiable preprocessing.

Every renderer, attack and metric talks to this interface only:
``encode_image(pixels in [0, 1], any size)``, ``encode_text(list[str])``, ``tokenizer``, ``image_size``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from clip_t2i.backbones.tokenizer import WordTokenizer
from clip_t2i.utils.io import atomic_write

METADATA_KEY = "clip_t2i_config"


def build_tokenizer(config: dict[str, Any]):
    """The tokenizer a config names: our word tokenizer, or open_clip's for the architecture."""
    tok = config["tokenizer"]
    text_cfg = config["model_cfg"]["text_cfg"]
    ctx = text_cfg.get("context_length", 77)
    if tok["type"] == "words":
        return WordTokenizer(tok["vocab"], vocab_size=text_cfg["vocab_size"], context_length=ctx)
    return open_clip.get_tokenizer(tok.get("name", config.get("name", "")), context_length=ctx)


class ClipModel(nn.Module):
    """A CLIP (open_clip module) plus its preprocessing and tokenizer.

    Args:
        model: an ``open_clip`` CLIP / CustomTextCLIP.
        config: ``{"name", "model_cfg", "preprocess_cfg", "tokenizer"}`` describing it (saved with weights).
        tokenizer: callable ``list[str] -> LongTensor``; built from ``config`` when None.
    """

    def __init__(self, model: nn.Module, config: dict[str, Any], tokenizer=None) -> None:
        super().__init__()
        self.model = model
        self.config = copy.deepcopy(config)
        self.tokenizer = tokenizer if tokenizer is not None else build_tokenizer(config)
        pre = config["preprocess_cfg"]
        size = pre["size"]
        self.image_size: int = int(size if isinstance(size, int) else size[0])
        self.interpolation: str = pre.get("interpolation", "bicubic")
        self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(pre["std"], dtype=torch.float32).view(1, 3, 1, 1), False)

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self.config.get("name", "clip")

    @property
    def visual(self) -> nn.Module:
        """The image tower."""
        return self.model.visual

    @property
    def token_fraction(self) -> float | None:
        """Side of one image token as a fraction of the input side (ViT: patch / image size); None without
        patches (ResNet towers)."""
        patch = getattr(self.model.visual, "patch_size", None)
        if patch is None:
            return None
        side = patch if isinstance(patch, int) else patch[0]
        return float(side) / self.image_size

    @property
    def embed_dim(self) -> int:
        return int(self.config["model_cfg"]["embed_dim"])

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale

    def text_parameters(self) -> list[nn.Parameter]:
        """Parameters of the text tower (everything but the image tower and the logit scale/bias)."""
        vis = {id(p) for p in self.model.visual.parameters()}
        skip = {id(self.model.logit_scale)}
        if getattr(self.model, "logit_bias", None) is not None:
            skip.add(id(self.model.logit_bias))
        return [p for p in self.model.parameters() if id(p) not in vis and id(p) not in skip]

    # ------------------------------------------------------------------ encoding
    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable resize to ``image_size`` + mean/std normalisation of images in [0, 1]."""
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(pixels.shape)}")
        if pixels.shape[-2:] != (self.image_size, self.image_size):
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            shrink = min(pixels.shape[-2:]) > self.image_size
            pixels = F.interpolate(
                pixels, size=(self.image_size, self.image_size), mode=mode, align_corners=False, antialias=shrink
            )
        dtype = next(self.model.parameters()).dtype
        return ((pixels - self.mean) / self.std).to(dtype)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image embeddings of ``pixels`` ([B, 3, H, W] in [0, 1], any H, W); L2-normalised by default."""
        feats = self.model.encode_image(self.preprocess(pixels))
        return F.normalize(feats.float(), dim=-1) if normalize else feats.float()

    def tokenize(self, texts: str | list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer(list(texts)).to(self.mean.device)

    def encode_text(self, texts: str | list[str] | torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Text embeddings of strings (or of already-tokenised ids); L2-normalised by default."""
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        feats = self.model.encode_text(tokens.to(self.mean.device))
        return F.normalize(feats.float(), dim=-1) if normalize else feats.float()

    def forward(self, pixels: torch.Tensor, texts: list[str] | torch.Tensor) -> torch.Tensor:
        """Logits ``exp(s) · cos(img, txt)`` of every image against every text, [B_img, B_txt]."""
        return self.logit_scale.exp() * self.encode_image(pixels) @ self.encode_text(texts).T

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path, half: bool = False, extra: dict[str, str] | None = None) -> Path:
        """Write weights + config as one self-describing safetensors file (atomically); NaN/inf weights are refused."""
        from safetensors.torch import save_file

        from clip_t2i.utils.io import require_finite

        sd = {k: v.detach().to("cpu").contiguous() for k, v in self.model.state_dict().items()}
        require_finite(sd, f"the CLIP weights to {path}")
        if half:
            sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
        meta = {METADATA_KEY: json.dumps(self.config), **(extra or {})}
        path = Path(path)
        with atomic_write(path) as tmp:
            save_file(sd, str(tmp), metadata=meta)
        return path
