"""A word-level tokenizer for the small built-in CLIPs.

The bundled models live in a closed world (shapes, digits), so a few hundred words suffice and the
token-embedding table stays tiny (a 49k BPE table alone would outweigh the whole model).

Ids: ``0`` pad, ``1`` unknown word, ``2`` start of text, ``3 …`` the vocabulary words in file order,
and ``vocab_size - 1`` end of text. End of text holds the largest id so open_clip's ``argmax``
text pooling finds it, exactly as with OpenAI's BPE tokenizer.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from importlib import resources

import torch

PAD_ID, UNK_ID, SOT_ID = 0, 1, 2
_WORD_RE = re.compile(r"[a-z]+|[0-9]")


@lru_cache(maxsize=8)
def read_vocab(name: str) -> tuple[str, ...]:
    """Words of a bundled vocabulary file ``backbones/vocab/<name>.txt`` (one word a line)."""
    path = resources.files("clip_t2i.backbones") / "vocab" / f"{name}.txt"
    if not path.is_file():
        raise ValueError(f"unknown word vocabulary {name!r}")
    return tuple(w.strip() for w in path.read_text().splitlines() if w.strip())


class WordTokenizer:
    """Lower-cases, splits into words and digits, maps each to its id; callable like open_clip's tokenizers."""

    def __init__(self, vocab: str | list[str], vocab_size: int, context_length: int) -> None:
        words = list(read_vocab(vocab)) if isinstance(vocab, str) else list(vocab)
        if len(words) + 4 > vocab_size:
            raise ValueError(f"{len(words)} words do not fit vocab_size={vocab_size} (need words + 4)")
        self.vocab_name = vocab if isinstance(vocab, str) else None
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.eot_id = vocab_size - 1
        self.word_to_id = {w: i + 3 for i, w in enumerate(words)}

    def words(self, text: str) -> list[str]:
        """The words of ``text`` as the tokenizer sees them."""
        return _WORD_RE.findall(text.lower())

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` outside the vocabulary (they become the unknown token)."""
        return [w for w in self.words(text) if w not in self.word_to_id]

    def encode(self, text: str) -> list[int]:
        """Token ids of one text without start/end markers."""
        return [self.word_to_id.get(w, UNK_ID) for w in self.words(text)]

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        """Tokenise ``texts`` into a ``[N, context_length]`` LongTensor; too-long texts are truncated with a warning."""
        if isinstance(texts, str):
            texts = [texts]
        ctx = context_length or self.context_length
        out = torch.full((len(texts), ctx), PAD_ID, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [SOT_ID, *self.encode(text), self.eot_id]
            if len(ids) > ctx:
                warnings.warn(f"prompt longer than the context of {ctx} tokens, truncated: {text[:60]!r}", stacklevel=2)
                ids = ids[: ctx - 1] + [self.eot_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out
