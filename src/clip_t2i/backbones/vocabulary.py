"""What a small CLIP knows: prompts checked against the words its training captions used.

The bundled CLIPs live in closed worlds. A word outside the tokenizer's table becomes the unknown token,
and a word that is in the table but never appeared in a training caption ("star", "pink", "heart") has an
untrained embedding; either way the prompt silently means something else. :func:`check_prompts` names such
words in one warning line, refuses a prompt whose positive parts hold no content word the model knows, and
with ``strict`` refuses any unknown word. Models with open_clip's BPE tokenizer have no unknown token and no
closed world: they are not checked.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from clip_t2i.errors import UserError

_WORLD_OF_DATA = {"shapes": ("shapes", "one"), "shapes2": ("shapes", "two"), "digits": ("digits", None)}


def world_vocabulary(train_data: str | None) -> dict[str, frozenset[str]] | None:
    """Words of the training captions of a built-in world by role (content roles first, then ``other``)."""
    if train_data not in _WORLD_OF_DATA:
        return None
    world, level = _WORLD_OF_DATA[train_data]
    if world == "shapes":
        from clip_t2i.data.shapes import caption_vocabulary

        return caption_vocabulary(level)
    from clip_t2i.data.digits import caption_vocabulary as digits_vocabulary

    return digits_vocabulary()


def _known_summary(vocab: dict[str, frozenset[str]]) -> str:
    order = {"colour": "colours", "shape": "shapes", "size": "sizes", "position": "positions", "digit": "digits"}
    parts = [
        f"{order.get(role, role)} {', '.join(sorted(w for w in words if w.isalpha()))}"
        for role, words in vocab.items()
        if role in order
    ]
    return "; ".join(parts)


def check_prompts(clip: Any, prompts: Sequence[str], model_name: str | None = None, strict: bool = False) -> list[str]:
    """Check every prompt against what ``clip`` knows; returns the unknown words (also warned in one line).

    Raises:
        UserError: a prompt whose positive parts hold no content word the model knows, or (``strict``) any
            unknown word.
    """
    from clip_t2i.backbones.tokenizer import WordTokenizer
    from clip_t2i.guidance.prompts import parse_prompt

    tok = getattr(clip, "tokenizer", None)
    if not isinstance(tok, WordTokenizer):
        return []  # BPE: every string is some token sequence; there is no closed world to check against
    name = model_name or getattr(clip, "name", "the model")
    vocab = world_vocabulary(getattr(clip, "config", {}).get("train_data"))
    known = frozenset().union(*vocab.values()) if vocab else frozenset(tok.word_to_id)
    content = frozenset().union(*(w for r, w in vocab.items() if r not in ("other", "relation"))) if vocab else known
    unknown: list[str] = []
    for prompt in prompts:
        for part in parse_prompt(prompt):
            words = tok.words(part.text)
            unknown += [w for w in words if w not in known and w not in unknown]
            if part.weight > 0 and vocab is not None and not any(w in content for w in words):
                raise UserError(f"{name} knows no content word of {part.text!r}; it knows {_known_summary(vocab)}")
    if unknown:
        what = f"; it knows {_known_summary(vocab)}" if vocab else ""
        if strict:
            raise UserError(f"{name} does not know: {', '.join(unknown)}{what} (drop --strict to only warn)")
        warnings.warn(f"{name} does not know: {', '.join(unknown)}{what}", UserWarning, stacklevel=2)
    return unknown
