"""Prompts: pixray-style weighted text prompts, negative prompts and a cached text encoder.

Syntax: sub-prompts separated by ``|``, each optionally followed by ``:weight`` (a float; default 1).
A negative weight makes a negative prompt: ``"a red circle:1 | blurry:-0.5"``. Whitespace around parts is
ignored. At least one sub-prompt must have a positive weight.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from clip_t2i.errors import UserError

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class WeightedPrompt:
    """One sub-prompt and its weight (negative = push away)."""

    text: str
    weight: float = 1.0


def parse_prompt(spec: str) -> list[WeightedPrompt]:
    """Parse ``"text[:weight] | text[:weight] ..."`` into weighted sub-prompts.

    Raises:
        UserError: empty prompt or part, a weight that is not a finite number (``"circle:abc"``, ``"a:1:2"``),
            or no sub-prompt with a positive weight.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("empty prompt: give some text, e.g. 'a red circle on the left'")
    parts = []
    for raw in spec.split("|"):
        part = raw.strip()
        if not part:
            raise UserError(f"empty part in prompt {spec!r}: remove the stray '|'")
        text, weight = part, 1.0
        if ":" in part:
            pieces = part.split(":")
            if len(pieces) != 2:
                raise UserError(f"malformed weight in {part!r}: use one ':' per part, as in 'a red circle:1'")
            text, w = pieces[0].strip(), pieces[1].strip()
            if not _NUMBER.match(w):
                raise UserError(f"malformed weight {w!r} in {part!r}: expected a number, as in 'blurry:-0.5'")
            weight = float(w)
            if not math.isfinite(weight):
                raise UserError(f"weight of {text!r} must be finite, got {w!r}")
            if not text:
                raise UserError(f"weight {w!r} without text in prompt {spec!r}")
        parts.append(WeightedPrompt(text, weight))
    if not any(p.weight > 0 for p in parts):
        raise UserError(f"prompt {spec!r} has no part with a positive weight (only negative prompts)")
    return parts


def format_prompt(parts: Sequence[WeightedPrompt]) -> str:
    """Inverse of :func:`parse_prompt` (canonical spacing; weight 1 omitted)."""
    return " | ".join(p.text if p.weight == 1.0 else f"{p.text}:{p.weight:g}" for p in parts)


class TextEmbeddingCache:
    """Encodes texts with a CLIP once and remembers them: ``cache(["a", "b"]) -> [2, D]`` (L2-normalised)."""

    def __init__(self, clip) -> None:
        self.clip = clip
        self._cache: dict[str, Tensor] = {}

    def __len__(self) -> int:
        return len(self._cache)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Tensor:
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            emb = self.clip.encode_text(missing).float()
            for t, e in zip(missing, emb, strict=True):
                self._cache[t] = e
        return torch.stack([self._cache[t] for t in texts])


@dataclass
class PromptTargets:
    """Padded per-image targets: ``embeddings [B, K, D]`` (unit norm) and ``weights [B, K]`` (0 = padding)."""

    embeddings: Tensor
    weights: Tensor
    specs: list[str]

    def __len__(self) -> int:
        return self.weights.shape[0]

    def positive_direction(self) -> Tensor:
        """Unit vector per image: weighted sum of the positive sub-prompts' embeddings, ``[B, D]``."""
        w = self.weights.clamp_min(0).unsqueeze(-1)
        return torch.nn.functional.normalize((w * self.embeddings).sum(1), dim=-1)

    def select(self, index: Sequence[int] | Tensor) -> PromptTargets:
        idx = torch.as_tensor(index, dtype=torch.long)
        return PromptTargets(self.embeddings[idx], self.weights[idx], [self.specs[i] for i in idx.tolist()])


def build_targets(specs: Sequence[str], encoder: TextEmbeddingCache) -> PromptTargets:
    """Parse one prompt spec per image and embed every sub-prompt (cached) into padded targets."""
    parsed = [parse_prompt(s) for s in specs]
    k = max(len(p) for p in parsed)
    texts = sorted({wp.text for p in parsed for wp in p})
    table = encoder(texts)
    index = {t: i for i, t in enumerate(texts)}
    emb = torch.zeros(len(specs), k, table.shape[1])
    weights = torch.zeros(len(specs), k)
    for b, parts in enumerate(parsed):
        for j, wp in enumerate(parts):
            emb[b, j] = table[index[wp.text]]
            weights[b, j] = wp.weight
    return PromptTargets(emb, weights, list(specs))
