"""Reading prompts back into what a judge must check: shapes attributes or a digit.

:func:`parse_shapes_prompt` understands any template or paraphrase of the one-object shapes world;
:func:`parse_digits_prompt` any digits caption. :func:`read_prompt` never guesses: a prompt that names a colour,
shape or digit *outside* the world ("a pink circle", "a red star", "the number 12") or two objects comes back
with ``domain=None`` and the offending words, so the caller can skip it with a count instead of giving a silent
verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from clip_t2i.errors import UserError


def _main_prompt(prompt: str) -> str:
    """The positive text of a (possibly weighted, ``a:1 | b:-0.5``) prompt with the largest weight."""
    from clip_t2i.guidance.prompts import parse_prompt

    try:
        parts = parse_prompt(prompt)
    except UserError:
        return prompt
    return max(parts, key=lambda p: p.weight).text


_COLOUR_WORDS = {"red": 0, "green": 1, "blue": 2, "yellow": 3, "purple": 4, "violet": 4, "orange": 5}
_SHAPE_WORDS = {
    "circle": 0,
    "circles": 0,
    "disc": 0,
    "disk": 0,
    "round": 0,
    "dot": 0,
    "ring": 0,
    "square": 1,
    "squares": 1,
    "box": 1,
    "triangle": 2,
    "triangles": 2,
    "cross": 3,
    "crosses": 3,
    "plus": 3,
}
_SIZE_WORDS = {"small": 0, "little": 0, "tiny": 0, "large": 1, "big": 1, "huge": 1}
_POSITION_WORDS = {
    "left": 0,
    "right": 1,
    "top": 2,
    "upper": 2,
    "bottom": 3,
    "lower": 3,
    "center": 4,
    "centre": 4,
    "middle": 4,
    "central": 4,
}
#: colour / shape words a person might write that the world does not have (the judge cannot score them)
UNKNOWN_COLOURS = frozenset(
    "pink magenta cyan teal turquoise aqua brown black white grey gray silver gold golden maroon navy lime olive "
    "beige indigo crimson scarlet lavender tan cream peach salmon".split()
)
UNKNOWN_SHAPES = frozenset(
    "star stars hexagon pentagon octagon heart hearts oval ellipse rectangle diamond rhombus line lines arrow "
    "crescent moon spiral trapezoid polygon blob cube sphere".split()
)
_WORD = re.compile(r"[a-z]+")
_DIGITS = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))}
_NUMBER_WORDS = frozenset(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty "
    "hundred thousand".split()
)
_DIGIT_CONTEXT = ("digit", "digits", "number", "numeral", "handwritten", "written", "scanned")


def parse_shapes_prompt(prompt: str) -> dict[str, int | None]:
    """Attribute indices named by a one-object shapes prompt (``None`` where the prompt is silent).

    Works on any template or paraphrase of the world ("a small red circle on the left", "near the upper edge
    there is a big yellow plus shape", "the disc in the middle of the image is tiny and green"). Raises
    :class:`UserError` if the prompt names two different values of one attribute (e.g. two objects).
    """
    words = _WORD.findall(_main_prompt(prompt).lower())
    out: dict[str, int | None] = {}
    for attr, table in (
        ("colour", _COLOUR_WORDS),
        ("shape", _SHAPE_WORDS),
        ("size", _SIZE_WORDS),
        ("position", _POSITION_WORDS),
    ):
        found = {table[w] for w in words if w in table}
        if len(found) > 1:
            raise UserError(f"prompt {prompt!r} names several {attr}s; the judge scores one-object prompts")
        out[attr] = found.pop() if found else None
    return out


def parse_digits_prompt(prompt: str) -> int | None:
    """The digit (0-9) a digits prompt asks for ("a handwritten digit seven", "the number 7"), else None."""
    text = _main_prompt(prompt).lower()
    words = re.findall(r"[a-z]+|[0-9]+", text)
    if not any(w in _DIGIT_CONTEXT for w in words):
        return None
    found = {_DIGITS[w] for w in words if w in _DIGITS} | {int(w) for w in words if w.isdigit() and len(w) == 1}
    return found.pop() if len(found) == 1 else None


def prompt_domain(prompt: str) -> str | None:
    """``"digits"``, ``"shapes"`` or None (neither could be parsed)."""
    return read_prompt(prompt).domain


@dataclass(frozen=True)
class ReadPrompt:
    """What a prompt asks for: ``domain`` (``shapes`` / ``digits`` / None = cannot be judged), the parsed
    ``target`` (attribute dict or digit) and, when it cannot be judged, the ``words`` that stopped it and why."""

    prompt: str
    domain: str | None
    target: Any = None
    words: tuple[str, ...] = ()
    reason: str = ""
    extra: dict = field(default_factory=dict)


def read_prompt(prompt: str) -> ReadPrompt:
    """Parse a prompt for judging; never guesses (see the module docstring)."""
    text = _main_prompt(prompt).lower()
    tokens = re.findall(r"[a-z]+|[0-9]+", text)
    has_digit_context = any(w in _DIGIT_CONTEXT for w in tokens)
    if has_digit_context:
        digit = parse_digits_prompt(prompt)
        if digit is not None:
            return ReadPrompt(prompt, "digits", digit)
        unknown = [w for w in tokens if w in _NUMBER_WORDS or (w.isdigit() and len(w) > 1)]
        named = sorted({w for w in tokens if w in _DIGITS or (w.isdigit() and len(w) == 1)})
        if unknown or len(named) > 1:
            return ReadPrompt(prompt, None, None, tuple(unknown or named), "no single digit 0-9")
    unknown_c = [w for w in tokens if w in UNKNOWN_COLOURS]
    unknown_s = [w for w in tokens if w in UNKNOWN_SHAPES]
    try:
        attrs = parse_shapes_prompt(prompt)
    except UserError:
        several = [w for w in tokens if w in _COLOUR_WORDS or w in _SHAPE_WORDS]
        return ReadPrompt(prompt, None, None, tuple(several), "names several objects (one-object prompts only)")
    if unknown_c or unknown_s:
        reason = "colour" if unknown_c and not unknown_s else "shape" if unknown_s and not unknown_c else "words"
        return ReadPrompt(prompt, None, None, tuple(unknown_c + unknown_s), f"{reason} not in the shapes world")
    if attrs["colour"] is None and attrs["shape"] is None:
        return ReadPrompt(prompt, None, None, (), "names no colour, shape or digit of the built-in data")
    return ReadPrompt(prompt, "shapes", attrs)


def shapes_eval_prompts(n: int = 100, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` one-object prompts over colour x shape x position (120 triples), every held-out triple included.

    Each entry: ``{"prompt", "colour", "shape", "size", "position", "heldout"}``; the prompt is the canonical
    caption ("a small red circle on the left") with a random size word. Triples are drawn without replacement
    while ``n <= 120`` (the 12 held-out ones first), then cycle.
    """
    import itertools

    from clip_t2i.data.shapes import _HELDOUT_TRIPLES, COLOURS, POSITIONS, SHAPES, SIZES, ShapesWorld

    if n < 1:
        raise UserError(f"need n >= 1 prompts, got {n}")
    g = torch.Generator().manual_seed(seed)
    held = set(_HELDOUT_TRIPLES)
    seen = [t for t in itertools.product(range(6), range(4), range(5)) if t not in held]
    order = [seen[i] for i in torch.randperm(len(seen), generator=g).tolist()]
    triples = list(_HELDOUT_TRIPLES) + order
    triples = (triples * (n // len(triples) + 1))[:n]
    triples = [triples[i] for i in torch.randperm(n, generator=g).tolist()]
    sizes = torch.randint(0, 2, (n,), generator=g).tolist()
    world = ShapesWorld(level="one", split="all")
    captions = world.canonical_caption_list()
    out = []
    for (c, s, p), z in zip(triples, sizes, strict=True):
        label = ((c * len(SHAPES) + s) * len(SIZES) + z) * len(POSITIONS) + p
        out.append(
            {
                "prompt": captions[label],
                "colour": COLOURS[c],
                "shape": SHAPES[s],
                "size": SIZES[z],
                "position": POSITIONS[p],
                "heldout": (c, s, p) in held,
            }
        )
    return out
