"""A procedural, captioned world of coloured shapes, rendered in batches with anti-aliased SDFs in torch.

Geometry is resolution independent: every length is a fraction of the image side, so the same scene renders
consistently at 32, 64 or 128 px.

**One-object level** (``level="one"``): one object with a colour, shape, size and position; 6 x 4 x 2 x 5 =
240 attribute combinations, label = index into :meth:`ShapesWorld.all_combinations` (order: colour, shape,
size, position; position varies fastest).

**Two-object level** (``level="two"``): two objects related by ``left of`` / ``right of`` / ``above`` /
``below``. A label is the canonical description "<left/top object> left of|above <right/bottom object>", so a
scene "A right of B" has the same label as "B left of A". Objects differ in (colour, shape); sizes are random
and not part of the label. 24 x 2 x 23 = 1104 combinations.

**Held-out combinations** (fixed, seed independent; never rendered by ``split="train"``):

* one-object: the 12 (colour, shape, position) triples ``(k mod 6, k mod 4, k mod 5)`` for ``k = 0..11``, in
  both sizes (24 of 240 labels). Each colour is held out twice, each shape 3 times, positions left/right 3
  times and top/bottom/center twice; no (colour, shape), (colour, position) or (shape, position) pair repeats,
  so every value and every pair of values still occurs in training.
* two-object: with object id ``o = 4 * colour + shape`` (0..23), the 24 unordered object pairs with
  ``(o1+o2) % 12 == 5``, in both orders and both axes (96 of 1104 labels). Every object is in exactly two
  held-out pairs and appears with 21 other partners in training.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from clip_t2i.data._common import (
    BufferPool,
    check_batch_size,
    check_rank,
    check_start_batch,
    stream_generator,
    worker_batch_indices,
)
from clip_t2i.errors import UserError

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
#: RGB in [0,1] for each entry of :data:`COLOURS` (bright and saturated; the background stays dark grey).
COLOUR_RGB = (
    (0.90, 0.10, 0.10),
    (0.10, 0.75, 0.15),
    (0.15, 0.35, 1.00),
    (0.95, 0.90, 0.10),
    (0.60, 0.15, 0.85),
    (1.00, 0.55, 0.00),
)
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
RELATIONS = ("left of", "right of", "above", "below")
LEVELS = ("one", "two")
SPLITS = ("train", "heldout", "all")

#: (x, y) centre of each position region, fractions of the image side (y grows downwards).
POSITION_CENTRES = ((0.26, 0.5), (0.74, 0.5), (0.5, 0.26), (0.5, 0.74), (0.5, 0.5))
#: base object radius per size, fraction of the image side.
SIZE_RADII = (0.09, 0.17)
SCALE_JITTER = 0.10  # radius multiplied by U[1 - j, 1 + j]
OFFSET_JITTER = 0.03  # centre moved by U[-j, j] (fraction of the side) in x and y
ROTATION_JITTER = 0.2  # radians, U[-j, j]
BG_LEVEL = (0.12, 0.30)  # base grey U[lo, hi]; with tint and gradient the background stays in [0.01, 0.41]
BG_TINT = 0.03  # per-channel offset U[-t, t]
BG_GRADIENT = 0.10  # linear ramp strength U[0, g] across the image, random direction

# Shape geometry relative to the radius r: square half-side, triangle circumradius, cross arm and
# half-thickness.
_SQUARE_HALF = 0.82
_TRIANGLE_CIRCUM = 1.2
_CROSS_ARM, _CROSS_HALF_WIDTH = 1.0, 0.34
_EXTENT = (1.0, _SQUARE_HALF * math.sqrt(2.0), _TRIANGLE_CIRCUM, math.hypot(_CROSS_ARM, _CROSS_HALF_WIDTH))
_SIN60 = math.sqrt(3.0) / 2.0

# Position indices of (object 1, object 2) for each relation "object 1 <relation> object 2".
_RELATION_POSITIONS = ((0, 1), (1, 0), (2, 3), (3, 2))
_N_OBJ = len(COLOURS) * len(SHAPES)  # object ids o = colour * len(SHAPES) + shape

_HELDOUT_TRIPLES = tuple((k % 6, k % 4, k % 5) for k in range(12))


def _heldout_pair(o1: int, o2: int) -> bool:
    """Two-object hold-out rule on unordered object ids."""
    return (o1 + o2) % 12 == 5


@dataclass(frozen=True, eq=False)
class Scenes:
    """Everything needed to re-render a batch of scenes exactly (batch-first, ``k`` objects per scene).

    Per-object fields are ``[n, k]`` (a 1-D ``[n]`` tensor is accepted when ``k == 1``); ``offset`` is
    ``[n,k,2]`` (dx, dy as fractions of the image side, relative to the position's region centre); ``scale``
    multiplies the size's radius; ``rotation`` is in radians. Background: ``bg_level`` ``[n]`` grey,
    ``bg_tint`` ``[n, 3]`` per-channel offset, ``bg_gradient`` ``[n, 2]`` change across the image in x and y.
    ``relation`` (``[n]``, index into :data:`RELATIONS`, "object 1 <relation> object 2") is ``None`` for
    one-object scenes; for two-object scenes ``position`` must agree with it (:meth:`replace` keeps them in
    sync).
    """

    colour: Tensor
    shape: Tensor
    size: Tensor
    position: Tensor
    offset: Tensor
    scale: Tensor
    rotation: Tensor
    bg_level: Tensor
    bg_tint: Tensor
    bg_gradient: Tensor
    relation: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.bg_level.shape[0]
        k = 2 if self.relation is not None else 1
        for name in ("colour", "shape", "size", "position", "scale", "rotation"):
            t = getattr(self, name)
            if t.dim() == 1 and k == 1:
                object.__setattr__(self, name, t.unsqueeze(1))
            elif tuple(t.shape) != (n, k):
                raise UserError(f"Scenes.{name} must have shape [{n}, {k}], got {list(t.shape)}")
        if self.offset.dim() == 2 and k == 1:
            object.__setattr__(self, "offset", self.offset.unsqueeze(1))
        if tuple(self.offset.shape) != (n, k, 2):
            raise UserError(f"Scenes.offset must have shape [{n}, {k}, 2], got {list(self.offset.shape)}")
        for name, hi in (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES), ("position", POSITIONS)):
            t = getattr(self, name)
            if n and (int(t.min()) < 0 or int(t.max()) >= len(hi)):
                raise UserError(f"Scenes.{name} indices must lie in 0..{len(hi) - 1}")
        if self.relation is not None and n:
            if int(self.relation.min()) < 0 or int(self.relation.max()) > 3:
                raise UserError("Scenes.relation indices must lie in 0..3")
            expected = torch.tensor(_RELATION_POSITIONS, device=self.position.device)[self.relation]
            if not torch.equal(expected, self.position):
                raise UserError("two-object Scenes: position disagrees with relation; change them via Scenes.replace")

    def __len__(self) -> int:
        return self.bg_level.shape[0]

    @property
    def n_objects(self) -> int:
        """Objects per scene (1 or 2)."""
        return self.colour.shape[1]

    def replace(self, **fields: Any) -> Scenes:
        """A copy with some fields changed; all other (continuous) parameters are kept.

        Integer fields accept ints, lists or tensors (broadcast to the field's shape). Changing ``position``
        moves an object to the new region keeping its jitter. For two-object scenes, changing ``relation``
        re-derives ``position`` and changing ``position`` re-derives ``relation``.
        """
        unknown = set(fields) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise UserError(
                f"unknown Scenes field(s) {sorted(unknown)}; valid: {[f.name for f in dataclasses.fields(Scenes)]}"
            )
        new: dict[str, Any] = {}
        for name, value in fields.items():
            old = getattr(self, name)
            if old is None:
                raise UserError(f"Scenes.{name} does not apply to one-object scenes")
            value = torch.as_tensor(value, dtype=old.dtype, device=old.device)
            if value.dim() == 1 and old.dim() == 2 and value.shape[0] == old.shape[0]:
                value = value.unsqueeze(1)
            try:
                new[name] = value.expand_as(old).clone()
            except RuntimeError:
                raise UserError(
                    f"Scenes.{name}: cannot broadcast shape {list(value.shape)} to {list(old.shape)}"
                ) from None
        if self.relation is not None:
            rel_pos = torch.tensor(_RELATION_POSITIONS, device=self.position.device)
            if "relation" in new and "position" not in new:
                new["position"] = rel_pos[new["relation"]]
            elif "position" in new and "relation" not in new:
                match = (new["position"].unsqueeze(1) == rel_pos.unsqueeze(0)).all(-1)  # [n, 4]
                if not bool(match.any(1).all()):
                    raise UserError(
                        "two-object positions must be (left, right), (right, left), (top, bottom) or (bottom, top)"
                    )
                new["relation"] = match.long().argmax(1)
        return dataclasses.replace(self, **new)

    def __getitem__(self, index: Any) -> Scenes:
        """Select scenes (int, slice, index or mask tensor) -> a new :class:`Scenes`."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Scenes(**{f.name: (None if v is None else v[index]) for f, v in self._items()})

    def to(self, device: str | torch.device) -> Scenes:
        """Move every tensor to ``device``."""
        return Scenes(**{f.name: (None if v is None else v.to(device)) for f, v in self._items()})

    @staticmethod
    def cat(scenes: Sequence[Scenes]) -> Scenes:
        """Concatenate batches of scenes with the same number of objects."""
        names = [f.name for f in dataclasses.fields(Scenes)]
        out = {}
        for name in names:
            vals = [getattr(s, name) for s in scenes]
            out[name] = None if vals[0] is None else torch.cat(vals)
        return Scenes(**out)

    def _items(self) -> Iterator[tuple[dataclasses.Field, Tensor | None]]:
        for f in dataclasses.fields(self):
            yield f, getattr(self, f.name)


# --------------------------------------------------------------------------------------------- captions
_SIZE_WORDS = (("small", "little", "tiny"), ("large", "big"))
_SHAPE_WORDS = (("circle", "circle", "disc"), ("square",), ("triangle",), ("cross", "cross", "plus shape"))
_POSITION_PHRASES = (
    (
        "on the left",
        "at the left side",
        "in the left part",
        "on the left side",
        "near the left edge",
        "in the left half of the image",
    ),
    (
        "on the right",
        "at the right side",
        "in the right part",
        "on the right side",
        "near the right edge",
        "in the right half of the image",
    ),
    (
        "at the top",
        "in the upper part",
        "near the top",
        "at the top of the image",
        "in the top part",
        "near the upper edge",
    ),
    (
        "at the bottom",
        "in the lower part",
        "near the bottom",
        "at the bottom of the image",
        "in the bottom part",
        "near the lower edge",
    ),
    (
        "in the center",
        "in the middle",
        "in the centre",
        "at the center of the image",
        "in the middle of the image",
        "in the center of the image",
    ),
)
_CANONICAL_PLACE = {p: phrases[0] for p, phrases in zip(POSITIONS, _POSITION_PHRASES, strict=True)}
_PREFIXES = (
    "a picture of",
    "an image of",
    "a photo of",
    "a drawing of",
    "a rendering of",
    "an illustration of",
    "a simple drawing of",
)
_PLACED = ("placed", "located", "positioned", "shown")
# {S} size word, {Z} small/large, {C} colour, {H} shape, {P} position phrase, {X} prefix, {V} placed-verb.
_ONE_TEMPLATES = (
    "a {S} {C} {H} {P}",
    "{P} there is a {S} {C} {H}",
    "{P}, a {S} {C} {H}",
    "{P} is a {S} {C} {H}",
    "a {C} {H}, {S}, {P}",
    "{X} a {S} {C} {H} {P}",
    "{X} a {C} {H}, {S}, {P}",
    "there is a {S} {C} {H} {P}",
    "a {S} {C} {H} {V} {P}",
    "the {H} {P} is {S} and {C}",
    "the {C} {H} {P} is {S}",
    "a {S} {H} in {C} {P}",
    "a {C} {H} of {Z} size {P}",
    "{S} {C} {H} {P}",
)
_REL_PHRASES = (
    ("left of", "to the left of", "on the left of"),
    ("right of", "to the right of", "on the right of"),
    ("above",),
    ("below", "under"),
)
_TWO_REL_TEMPLATES = (
    "a {A} {R} a {B}",
    "{X} a {A} {R} a {B}",
    "there is a {A} {R} a {B}",
    "a {A} is {R} a {B}",
    "two shapes, a {A} {R} a {B}",
)
# Layout templates: {A} is at place {PA}, {B} at {PB}.
_PLACE_PHRASES = (
    ("on the left", "at the left side"),
    ("on the right", "at the right side"),
    ("at the top", "in the upper part"),
    ("at the bottom", "in the lower part"),
)
_TWO_LAYOUT_TEMPLATES = ("a {A} {PA} and a {B} {PB}", "a {A} {PA} with a {B} {PB}")
_ARTICLE_RE = re.compile(r"\ba (?=[aeiou])")


def caption_vocabulary(level: str = "one") -> dict[str, frozenset[str]]:
    """The words training captions of this world use, by role: ``colour``, ``shape``, ``size``, ``position``
    (the content words a prompt must contain at least one of), ``relation`` (level two) and ``other``."""
    words = re.compile(r"[a-z]+")

    def of(*texts: str) -> frozenset[str]:
        return frozenset(w for t in texts for w in words.findall(t.lower()))

    content = {
        "colour": frozenset(COLOURS),
        "shape": of(*(w for ws in _SHAPE_WORDS for w in ws)) - {"shape"},
        "size": of(*(w for ws in _SIZE_WORDS for w in ws)),
        "position": frozenset(POSITIONS) | {"centre", "middle", "upper", "lower"},
    }
    templates = _ONE_TEMPLATES + (_TWO_REL_TEMPLATES + _TWO_LAYOUT_TEMPLATES if level == "two" else ())
    phrases = [p for ps in _POSITION_PHRASES for p in ps] + list(_PREFIXES) + list(_PLACED)
    other = of(*(re.sub(r"\{[A-Z]+\}", " ", t) for t in templates), *phrases, "shape", "an") - frozenset().union(
        *content.values()
    )
    out = dict(content)
    if level == "two":
        out["relation"] = of(*(r for rs in _REL_PHRASES for r in rs), "shapes", "two") - other
    out["other"] = other
    return out


def _fix_articles(text: str) -> str:
    return _ARTICLE_RE.sub("an ", text)


# ------------------------------------------------------------------------------------------------ world
class ShapesWorld:
    """Sample, render, caption and label scenes of the shapes world (see the module docstring)."""

    def __init__(self, size: int = 64, level: str = "one", split: str = "train", device: str | torch.device = "cpu"):
        if not isinstance(size, int) or size < 16:
            raise UserError(f"shapes image size must be an integer >= 16, got {size!r}")
        if level not in LEVELS:
            raise UserError(f"unknown shapes level {level!r}; choose one of {list(LEVELS)}")
        if split not in SPLITS:
            raise UserError(f"unknown shapes split {split!r}; choose one of {list(SPLITS)}")
        self.size, self.level, self.split = size, level, split
        self.device = torch.device(device)
        self.n_objects = 1 if level == "one" else 2
        self._build_combinations()
        self._build_render_buffers()

    # ---------------------------------------------------------------- combinations and labels
    def _build_combinations(self) -> None:
        if self.level == "one":
            self._combos = [
                {"colour": COLOURS[c], "shape": SHAPES[s], "size": SIZES[z], "position": POSITIONS[p]}
                for c, s, z, p in itertools.product(*(range(len(v)) for v in (COLOURS, SHAPES, SIZES, POSITIONS)))
            ]
            held = set(_HELDOUT_TRIPLES)
            self._heldout = frozenset(
                i
                for i, (c, s, _z, p) in enumerate(itertools.product(range(6), range(4), range(2), range(5)))
                if (c, s, p) in held
            )
            self._pair_table = None
        else:
            table = torch.full((_N_OBJ, 2, _N_OBJ), -1, dtype=torch.long)
            combos, heldout, pairs = [], set(), []
            for oa, axis, ob in itertools.product(range(_N_OBJ), range(2), range(_N_OBJ)):
                if oa == ob:
                    continue
                table[oa, axis, ob] = len(combos)
                pairs.append((oa, axis, ob))
                if _heldout_pair(oa, ob):
                    heldout.add(len(combos))
                combos.append(
                    {
                        "colour1": COLOURS[oa // len(SHAPES)],
                        "shape1": SHAPES[oa % len(SHAPES)],
                        "relation": RELATIONS[2 * axis],
                        "colour2": COLOURS[ob // len(SHAPES)],
                        "shape2": SHAPES[ob % len(SHAPES)],
                    }
                )
            self._combos, self._heldout = combos, frozenset(heldout)
            self._pairs = torch.tensor(pairs, dtype=torch.long)  # label -> (object a, axis, object b)
            self._pair_table = table.to(self.device)
        allowed = {
            "train": [i for i in range(len(self._combos)) if i not in self._heldout],
            "heldout": sorted(self._heldout),
            "all": list(range(len(self._combos))),
        }[self.split]
        self._allowed = torch.tensor(allowed, dtype=torch.long)

    @property
    def n_labels(self) -> int:
        """Number of attribute combinations of the level (seen + held out)."""
        return len(self._combos)

    def all_combinations(self) -> list[dict[str, str]]:
        """Attribute dicts of every combination of the level; list index = label."""
        return [dict(c) for c in self._combos]

    def canonical_caption_list(self) -> list[str]:
        """Canonical caption of every combination, in label order."""
        if self.level == "one":
            return [
                _fix_articles(f"a {c['size']} {c['colour']} {c['shape']} {_CANONICAL_PLACE[c['position']]}")
                for c in self._combos
            ]
        return [
            _fix_articles(f"a {c['colour1']} {c['shape1']} {c['relation']} a {c['colour2']} {c['shape2']}")
            for c in self._combos
        ]

    def heldout_labels(self) -> frozenset[int]:
        """Labels of the held-out combinations."""
        return self._heldout

    def is_heldout(self, label: int | Tensor) -> bool | Tensor:
        """Whether a label (int) or labels (tensor -> bool tensor) are held out."""
        if isinstance(label, Tensor):
            held = torch.tensor(sorted(self._heldout), dtype=torch.long, device=label.device)
            return torch.isin(label, held)
        return int(label) in self._heldout

    def allowed_labels(self) -> Tensor:
        """Labels this world's split samples from (LongTensor, sorted)."""
        return self._allowed.clone()

    def labels(self, scenes: Scenes) -> Tensor:
        """Label per scene (``[n]`` LongTensor); two-object scenes with identical objects get ``-1``."""
        self._check_scenes(scenes)
        if self.level == "one":
            c, s, z, p = (t[:, 0] for t in (scenes.colour, scenes.shape, scenes.size, scenes.position))
            return ((c * len(SHAPES) + s) * len(SIZES) + z) * len(POSITIONS) + p
        assert scenes.relation is not None and self._pair_table is not None
        obj = scenes.colour * len(SHAPES) + scenes.shape  # [n, 2]
        swap = (scenes.relation % 2).bool()
        oa = torch.where(swap, obj[:, 1], obj[:, 0])
        ob = torch.where(swap, obj[:, 0], obj[:, 1])
        return self._pair_table.to(obj.device)[oa, scenes.relation // 2, ob]

    def attributes(self, scenes: Scenes) -> dict[str, Tensor]:
        """Ground-truth attribute indices per image: ``colour``/``shape``/``size``/``position`` (one-object)
        or ``colour1``..``position1``, ``colour2``..``position2``, ``relation`` (two-object), each ``[n]``.
        """
        self._check_scenes(scenes)
        names = ("colour", "shape", "size", "position")
        if self.level == "one":
            return {name: getattr(scenes, name)[:, 0].clone() for name in names}
        out = {f"{name}{j + 1}": getattr(scenes, name)[:, j].clone() for j in range(2) for name in names}
        assert scenes.relation is not None
        out["relation"] = scenes.relation.clone()
        return out

    def label_attributes(self, labels: Tensor) -> dict[str, Tensor]:
        """Inverse of :meth:`labels` for one-object worlds: ``colour``/``shape``/``size``/``position`` index
        tensors of the labels' shape, from ``label = ((c·|shapes| + s)·|sizes| + z)·|positions| + p``."""
        if self.level != "one":
            raise UserError("label_attributes decodes one-object labels; two-object labels index a pair table")
        labels = torch.as_tensor(labels, dtype=torch.long)
        return {
            "colour": labels // (len(POSITIONS) * len(SIZES) * len(SHAPES)),
            "shape": labels // (len(POSITIONS) * len(SIZES)) % len(SHAPES),
            "size": labels // len(POSITIONS) % len(SIZES),
            "position": labels % len(POSITIONS),
        }

    def _check_scenes(self, scenes: Scenes) -> None:
        if scenes.n_objects != self.n_objects:
            raise UserError(f"scenes have {scenes.n_objects} object(s) but this world's level is {self.level!r}")

    # ---------------------------------------------------------------- sampling
    def sample_labels(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` labels drawn uniformly over the split's combinations (on the generator's device)."""
        allowed = self._allowed.to(generator.device)
        return allowed[torch.randint(len(allowed), (n,), generator=generator, device=generator.device)]

    def sample_scenes(self, n: int, generator: torch.Generator, labels: Tensor | None = None) -> Scenes:
        """``n`` random scenes, uniform over the split's combinations (or with the given ``labels``)."""
        g = generator
        dev = g.device
        if labels is None and (not isinstance(n, int) or n < 0):
            raise UserError(f"number of scenes must be a non-negative integer, got {n!r}")
        if labels is None:
            labels = self.sample_labels(n, g)
        else:
            labels = torch.as_tensor(labels, dtype=torch.long).to(dev)
            n = labels.shape[0]
            if n and (int(labels.min()) < 0 or int(labels.max()) >= self.n_labels):
                raise UserError(f"labels must lie in 0..{self.n_labels - 1}")
        k = self.n_objects
        relation = None
        if self.level == "one":
            attrs = self.label_attributes(labels)
            colour, shape, size, position = (attrs[k].unsqueeze(1) for k in ("colour", "shape", "size", "position"))
        else:
            pair = self._pairs.to(dev)[labels]
            flip = torch.randint(2, (n,), generator=g, device=dev)
            first = torch.where(flip.bool(), pair[:, 2], pair[:, 0])
            second = torch.where(flip.bool(), pair[:, 0], pair[:, 2])
            obj = torch.stack([first, second], 1)
            colour, shape = obj // len(SHAPES), obj % len(SHAPES)
            size = torch.randint(len(SIZES), (n, 2), generator=g, device=dev)
            relation = 2 * pair[:, 1] + flip
            position = torch.tensor(_RELATION_POSITIONS, device=dev)[relation]
        u = torch.rand(n, 4 * k + 6, generator=g, device=dev)
        offset = (u[:, : 2 * k].view(n, k, 2) * 2 - 1) * OFFSET_JITTER
        scale = 1 + (u[:, 2 * k : 3 * k] * 2 - 1) * SCALE_JITTER
        rotation = (u[:, 3 * k : 4 * k] * 2 - 1) * ROTATION_JITTER
        rest = u[:, 4 * k :]
        bg_level = BG_LEVEL[0] + rest[:, 0] * (BG_LEVEL[1] - BG_LEVEL[0])
        bg_tint = (rest[:, 1:4] * 2 - 1) * BG_TINT
        angle, strength = rest[:, 4] * (2 * math.pi), rest[:, 5] * BG_GRADIENT
        bg_gradient = torch.stack([strength * torch.cos(angle), strength * torch.sin(angle)], 1)
        scenes = Scenes(
            colour=colour,
            shape=shape,
            size=size,
            position=position,
            offset=offset,
            scale=scale,
            rotation=rotation,
            bg_level=bg_level,
            bg_tint=bg_tint,
            bg_gradient=bg_gradient,
            relation=relation,
        )
        return scenes if dev == self.device else scenes.to(self.device)

    # ---------------------------------------------------------------- rendering
    def _build_render_buffers(self) -> None:
        S, dev = self.size, self.device
        # Pixel centres in [-0.5, 0.5] (fractions of the side, relative to the image centre).
        self._coord = (torch.arange(S, dtype=torch.float32, device=dev) + 0.5) / S - 0.5
        self._rgb = torch.tensor(COLOUR_RGB, dtype=torch.float32, device=dev)
        self._centres = torch.tensor(POSITION_CENTRES, dtype=torch.float32, device=dev) * S
        self._arange = torch.arange(S, dtype=torch.float32, device=dev)
        # Window side (px) per (shape, size) so that any jittered/rotated object plus its AA rim fits.
        # A window of side w starting at floor(c - w/2 + 1/2) covers every pixel centre within w/2 - 1 of c.
        self._window = [
            [min(S, math.ceil(2 * (ext * r * (1 + SCALE_JITTER) * S + 0.5) + 2)) for r in SIZE_RADII] for ext in _EXTENT
        ]

    def render(
        self, scenes: Scenes, return_alpha: bool = False, out: Tensor | None = None, chunk: int = 1024
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Images ``[n,3,size,size]`` float32 in [0,1]; with ``return_alpha`` also the coverage
        ``[n,k,size,size]``.

        Fully vectorised: per chunk of images one broadcast add writes the backgrounds, then for every
        (shape, size) group a batched SDF over a small window around each object is alpha-blended in
        (strided-window gather/scatter). ``out`` may be a preallocated contiguous float32
        ``[n,3,size,size]`` tensor to render into (avoids fresh memory).
        """
        self._check_scenes(scenes)
        if scenes.colour.device != self.device:
            scenes = scenes.to(self.device)
        n, S = len(scenes), self.size
        if out is None:
            out = torch.empty(n, 3, S, S, device=self.device)
        elif tuple(out.shape) != (n, 3, S, S) or out.dtype != torch.float32 or not out.is_contiguous():
            raise UserError(f"render(out=...) needs a contiguous float32 tensor of shape [{n}, 3, {S}, {S}]")
        alpha_out = torch.zeros(n, self.n_objects, S, S, device=self.device) if return_alpha else None
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            sc = scenes if (start, stop) == (0, n) else scenes[start:stop]
            self._render_chunk(sc, out[start:stop], None if alpha_out is None else alpha_out[start:stop])
        if n:
            # Objects blend background with an RGB in [0,1]: only out-of-range backgrounds need a clamp.
            spread = scenes.bg_gradient.abs().sum(1) * 0.5
            base = scenes.bg_level.unsqueeze(1) + scenes.bg_tint
            if float((base - spread.unsqueeze(1)).min()) < 0.0 or float((base + spread.unsqueeze(1)).max()) > 1.0:
                out.clamp_(0.0, 1.0)
        return (out, alpha_out) if alpha_out is not None else out

    def _render_chunk(self, sc: Scenes, out: Tensor, alpha_out: Tensor | None) -> None:
        n, S, k = len(sc), self.size, self.n_objects
        # Background = base[c] + gx * x + gy * y = rows [n,3,S,1] + columns [n,1,1,S]: one broadcast add.
        base = sc.bg_level.unsqueeze(1) + sc.bg_tint  # [n, 3]
        gx, gy = sc.bg_gradient[:, 0], sc.bg_gradient[:, 1]
        rows = base.unsqueeze(2) + (gy.unsqueeze(1) * self._coord).unsqueeze(1)  # [n, 3, S]
        cols = gx.unsqueeze(1) * self._coord  # [n, S]
        torch.add(rows.unsqueeze(3), cols.view(n, 1, 1, S), out=out)
        radii = torch.tensor(SIZE_RADII, device=self.device)
        for j in range(k):
            centre = self._centres[sc.position[:, j]] + sc.offset[:, j] * S  # [n, 2] px
            radius = radii[sc.size[:, j]] * sc.scale[:, j] * S
            group = sc.shape[:, j] * len(SIZES) + sc.size[:, j]
            order = torch.argsort(group, stable=True)
            counts = torch.bincount(group, minlength=len(SHAPES) * len(SIZES)).tolist()
            start = 0
            for gid, m in enumerate(counts):
                if m == 0:
                    continue
                ii = order[start : start + m]
                start += m
                shape, size = divmod(gid, len(SIZES))
                w = self._window[shape][size]
                cx, cy = centre[ii, 0], centre[ii, 1]
                x0 = torch.floor(cx - (w / 2 - 0.5)).clamp_(0, S - w)
                y0 = torch.floor(cy - (w / 2 - 0.5)).clamp_(0, S - w)
                alpha = self._alpha_window(shape, w, x0 + 0.5 - cx, y0 + 0.5 - cy, radius[ii], sc.rotation[ii, j])
                # Every [3, w, w] window starting at any flat offset, as one strided view: row
                # image * 3*S*S + y0 * S + x0 is the object's window (one index -> fast gather/scatter).
                origin = ii * (3 * S * S) + y0.long() * S + x0.long()
                windows = out.as_strided((out.numel() - 2 * S * S - (w - 1) * (S + 1), 3, w, w), (1, S * S, S, 1))
                if j == 0:  # nothing drawn yet: the window's background is analytic, no need to read it
                    ar = self._arange[:w]
                    xs = ((x0.unsqueeze(1) + ar) + 0.5) / S - 0.5
                    ys = ((y0.unsqueeze(1) + ar) + 0.5) / S - 0.5
                    win_rows = base[ii].unsqueeze(2) + (gy[ii].unsqueeze(1) * ys).unsqueeze(1)  # [m, 3, w]
                    win = win_rows.unsqueeze(3) + (gx[ii].unsqueeze(1) * xs).view(m, 1, 1, w)
                else:
                    win = windows.index_select(0, origin)  # [m, 3, w, w] copy
                win.lerp_(self._rgb[sc.colour[ii, j]].view(m, 3, 1, 1), alpha.unsqueeze(1))
                windows[origin] = win
                if alpha_out is not None:
                    awin = alpha_out.as_strided((alpha_out.numel() - (w - 1) * (S + 1), w, w), (1, S, 1))
                    awin[ii * (k * S * S) + j * S * S + y0.long() * S + x0.long()] = alpha

    def _alpha_window(self, shape: int, w: int, ox: Tensor, oy: Tensor, radius: Tensor, rotation: Tensor) -> Tensor:
        """Anti-aliased coverage ``[m,w,w]`` of one shape; ``ox, oy``: first pixel centre - object centre."""
        m = ox.shape[0]
        ar = self._arange[:w]
        dx = (ar + ox.unsqueeze(1)).view(m, 1, w)
        dy = (ar + oy.unsqueeze(1)).view(m, w, 1)
        r = radius.view(m, 1, 1)
        if shape == 0:  # circle: alpha = r + 1/2 - |p|
            alpha = (dx * dx + dy * dy).sqrt_().neg_().add_(r + 0.5)
        else:
            c, s = torch.cos(rotation).view(m, 1, 1), torch.sin(rotation).view(m, 1, 1)
            u = dx * c + dy * s
            v = dy * c - dx * s
            if shape == 1:  # square: Chebyshev distance (exact along edges)
                alpha = torch.maximum(u.abs_(), v.abs_()).neg_().add_(r * _SQUARE_HALF + 0.5)
            elif shape == 2:  # upward triangle: max of the three edge half-plane distances
                d = torch.maximum(v, u.abs_().mul_(_SIN60).sub_(v * 0.5))
                alpha = d.neg_().add_(r * (_TRIANGLE_CIRCUM / 2) + 0.5)
            else:  # cross: inside iff max(|u|,|v|) <= arm and min(|u|,|v|) <= half width
                au, av = u.abs_(), v.abs_()
                hi, lo = torch.maximum(au, av), torch.minimum(au, av)
                alpha = torch.minimum(hi.neg_().add_(r * _CROSS_ARM + 0.5), lo.neg_().add_(r * _CROSS_HALF_WIDTH + 0.5))
        return alpha.clamp_(0.0, 1.0)

    # ---------------------------------------------------------------- captions
    def captions(self, scenes: Scenes, generator: torch.Generator) -> list[str]:
        """Random natural captions (several templates, paraphrases and attribute orders), one per scene."""
        self._check_scenes(scenes)
        n = len(scenes)
        rnd = torch.randint(0, 1 << 30, (n, 10), generator=generator, device=generator.device).tolist()
        cols, shps, sizes, poss = (getattr(scenes, f).tolist() for f in ("colour", "shape", "size", "position"))
        if self.level == "one":
            out = []
            for i in range(n):
                r = rnd[i]
                c, s, z, p = cols[i][0], shps[i][0], sizes[i][0], poss[i][0]
                template = _ONE_TEMPLATES[r[0] % len(_ONE_TEMPLATES)]
                text = template.format(
                    S=_SIZE_WORDS[z][r[1] % len(_SIZE_WORDS[z])],
                    Z=SIZES[z],
                    C=COLOURS[c],
                    H=_SHAPE_WORDS[s][r[2] % len(_SHAPE_WORDS[s])],
                    P=_POSITION_PHRASES[p][r[3] % len(_POSITION_PHRASES[p])],
                    X=_PREFIXES[r[4] % len(_PREFIXES)],
                    V=_PLACED[r[5] % len(_PLACED)],
                )
                out.append(_fix_articles(text))
            return out
        assert scenes.relation is not None
        rels = scenes.relation.tolist()
        out = []
        for i in range(n):
            r = rnd[i]
            names = []
            for j in range(2):
                sw = _SIZE_WORDS[sizes[i][j]]
                size_word = sw[(r[6 + j] >> 1) % len(sw)] + " " if r[6 + j] % 2 == 0 else ""
                shape_words = _SHAPE_WORDS[shps[i][j]]
                names.append(f"{size_word}{COLOURS[cols[i][j]]} {shape_words[r[8 + j] % len(shape_words)]}")
            rel = rels[i]
            if r[0] % 2:  # describe from object 2's point of view with the inverse relation
                names.reverse()
                rel ^= 1
            x = _PREFIXES[r[3] % len(_PREFIXES)]
            if r[1] % 4 == 0:  # layout template: each object with its own place
                pa, pb = _RELATION_POSITIONS[rel]
                template = _TWO_LAYOUT_TEMPLATES[r[2] % len(_TWO_LAYOUT_TEMPLATES)]
                text = template.format(
                    A=names[0],
                    B=names[1],
                    X=x,
                    PA=_PLACE_PHRASES[pa][r[4] % 2],
                    PB=_PLACE_PHRASES[pb][r[4] % 2],
                )
            else:
                template = _TWO_REL_TEMPLATES[r[2] % len(_TWO_REL_TEMPLATES)]
                phrases = _REL_PHRASES[rel]
                text = template.format(A=names[0], B=names[1], X=x, R=phrases[r[4] % len(phrases)])
            out.append(_fix_articles(text))
        return out

    def canonical_captions(self, scenes: Scenes) -> list[str]:
        """Canonical caption per scene (= ``canonical_caption_list()[label]``), for zero-shot evaluation."""
        self._check_scenes(scenes)
        if self.level == "one":
            return [
                _fix_articles(f"a {SIZES[z]} {COLOURS[c]} {SHAPES[s]} {_CANONICAL_PLACE[POSITIONS[p]]}")
                for c, s, z, p in zip(
                    *(getattr(scenes, f)[:, 0].tolist() for f in ("colour", "shape", "size", "position")),
                    strict=True,
                )
            ]
        assert scenes.relation is not None
        out = []
        for cols, shps, rel in zip(
            scenes.colour.tolist(), scenes.shape.tolist(), scenes.relation.tolist(), strict=True
        ):
            a, b = (0, 1) if rel % 2 == 0 else (1, 0)
            out.append(
                _fix_articles(
                    f"a {COLOURS[cols[a]]} {SHAPES[shps[a]]} {RELATIONS[rel - rel % 2]} "
                    f"a {COLOURS[cols[b]]} {SHAPES[shps[b]]}"
                )
            )
        return out


# ---------------------------------------------------------------------------------------------- streams
class ShapesStream(torch.utils.data.IterableDataset):
    """Infinite stream of shapes batches ``{"image": [B,3,H,W], "caption": [B], "label": [B]}``.

    Batch ``b`` is drawn from its own generator seeded by (seed, rank, b): deterministic, different on every
    rank, and DataLoader worker ``w`` of ``k`` makes batches ``start_batch + w, start_batch + w + k, ...``, so
    workers never repeat each other and the consumed sequence is the same for any number of workers;
    ``start_batch`` resumes exactly. Use with ``DataLoader(stream, batch_size=None, num_workers=...)`` or
    iterate directly. In the main process, image tensors the consumer has released (no references or views
    left) are rendered into again, avoiding the cost of fresh memory; held batches are never overwritten
    (``reuse_buffers=False`` turns this off). ``with_attributes`` adds ``"attrs"``
    (:meth:`ShapesWorld.attributes`). ``group_size`` k > 1 makes every batch ``B / k`` consecutive groups of k
    scenes of one combination (each with its own nuisance factors and caption wording), for discriminators that
    compare the variety within a caption.
    """

    def __init__(
        self,
        size: int = 64,
        level: str = "one",
        split: str = "train",
        batch_size: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
        start_batch: int = 0,
        with_attributes: bool = False,
        reuse_buffers: bool = True,
        group_size: int = 1,
    ):
        super().__init__()
        check_batch_size(batch_size)
        if not isinstance(group_size, int) or group_size < 1 or batch_size % group_size:
            raise UserError(f"group_size must be a positive divisor of the batch size {batch_size}, got {group_size}")
        self.group_size = group_size
        check_rank(rank, world_size)
        check_start_batch(start_batch)
        self.world = ShapesWorld(size=size, level=level, split=split, device=device)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.start_batch, self.with_attributes, self.reuse_buffers = (
            start_batch,
            with_attributes,
            reuse_buffers,
        )

    def batch(self, index: int, out: Tensor | None = None) -> dict[str, Any]:
        """Batch number ``index`` of this rank's stream (rendered into ``out`` if given)."""
        g = stream_generator(self.seed, self.rank, index, 0x5A4E)
        world = self.world
        k = self.group_size
        if k > 1:  # consecutive groups of k scenes of one combination, nuisance factors drawn per scene
            scenes = world.sample_scenes(0, g, labels=world.sample_labels(self.batch_size // k, g).repeat_interleave(k))
        else:
            scenes = world.sample_scenes(self.batch_size, g)
        batch = {
            "image": world.render(scenes, out=out),
            "caption": world.captions(scenes, g),
            "label": world.labels(scenes),
        }
        if self.with_attributes:
            batch["attrs"] = world.attributes(scenes)
        return batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        B, S = self.batch_size, self.world.size
        main_cpu = torch.utils.data.get_worker_info() is None  # workers send batches via shared memory
        pool = BufferPool() if self.reuse_buffers and main_cpu and self.world.device.type == "cpu" else None
        for index in worker_batch_indices(self.start_batch):
            # No local variable may keep a reference to the yielded image tensor (buffer reuse).
            yield self.batch(index, out=None if pool is None else pool.get((B, 3, S, S)))


def shapes_eval_set(
    level: str = "one",
    split: str = "all",
    n: int = 1000,
    seed: int = 0,
    size: int = 64,
    balanced: bool = True,
) -> dict[str, Any]:
    """A fixed evaluation set: ``image``, canonical ``caption``, ``label``, ``attrs`` and the ``scenes``
    themselves.

    With ``balanced`` the labels cycle through the split's combinations (in a seeded order), so every
    combination appears ``n // n_combinations`` or one more times.
    """
    if not isinstance(n, int) or n < 1:
        raise UserError(f"evaluation set size n must be a positive integer, got {n!r}")
    world = ShapesWorld(size=size, level=level, split=split)
    g = torch.Generator().manual_seed(int(seed))
    labels = None
    if balanced:
        allowed = world.allowed_labels()
        labels = allowed[torch.randperm(len(allowed), generator=g)].repeat(n // len(allowed) + 1)[:n]
        labels = labels[torch.randperm(n, generator=g)]
    scenes = world.sample_scenes(n, g, labels=labels)
    return {
        "image": world.render(scenes),
        "caption": world.canonical_captions(scenes),
        "label": world.labels(scenes),
        "attrs": world.attributes(scenes),
        "scenes": scenes,
    }
