"""Tests of the procedural shapes world (clip_t2i.data.shapes)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter

import pytest
import torch

from clip_t2i.backbones.tokenizer import read_vocab
from clip_t2i.data import shapes as sh
from clip_t2i.data.shapes import (
    COLOUR_RGB,
    COLOURS,
    POSITION_CENTRES,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZE_RADII,
    SIZES,
    ShapesStream,
    ShapesWorld,
    shapes_eval_set,
)
from clip_t2i.errors import UserError

WORD_RE = re.compile(r"[a-z]+|[0-9]")
VOCAB = set(read_vocab("builtin-words"))
MAX_WORDS = 22  # context_length 24 minus start/end tokens

SIZE_SYN = {"small": 0, "little": 0, "tiny": 0, "large": 1, "big": 1}
SHAPE_SYN = {"circle": 0, "disc": 0, "square": 1, "triangle": 2, "cross": 3, "plus": 3}
POS_SYN = {
    "left": 0,
    "right": 1,
    "top": 2,
    "upper": 2,
    "bottom": 3,
    "lower": 3,
    "center": 4,
    "centre": 4,
    "middle": 4,
}
DIR_SYN = {
    "left": "left of",
    "right": "right of",
    "above": "above",
    "top": "above",
    "upper": "above",
    "below": "below",
    "under": "below",
    "bottom": "below",
    "lower": "below",
}


@pytest.fixture(autouse=True)
def _single_thread():
    """Small tensor ops: one torch thread is as fast, and robust when other processes load the CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ reference
def reference_render(world: ShapesWorld, scenes: sh.Scenes, return_alpha: bool = False):
    """Slow full-frame float64 renderer written independently of the windowed one (+ per-object alpha)."""
    S = world.size
    coord = (torch.arange(S, dtype=torch.float64) + 0.5) / S - 0.5
    Y, X = torch.meshgrid(coord, coord, indexing="ij")
    base = (scenes.bg_level.double().unsqueeze(1) + scenes.bg_tint.double())[:, :, None, None]
    gx, gy = scenes.bg_gradient.double().unbind(1)
    img = base + (gx[:, None, None] * X + gy[:, None, None] * Y).unsqueeze(1)
    px, py = (X + 0.5) * S, (Y + 0.5) * S
    alphas = []
    for j in range(scenes.n_objects):
        centre = torch.tensor(POSITION_CENTRES, dtype=torch.float64)[scenes.position[:, j]]
        cx = ((centre[:, 0] + scenes.offset[:, j, 0].double()) * S)[:, None, None]
        cy = ((centre[:, 1] + scenes.offset[:, j, 1].double()) * S)[:, None, None]
        r = torch.tensor(SIZE_RADII, dtype=torch.float64)[scenes.size[:, j]] * scenes.scale[:, j].double() * S
        r = r[:, None, None]
        rot = scenes.rotation[:, j].double()[:, None, None]
        dx, dy = px - cx, py - cy
        u = torch.cos(rot) * dx + torch.sin(rot) * dy
        v = torch.cos(rot) * dy - torch.sin(rot) * dx
        sdf = torch.empty_like(dx)
        for shape in range(4):
            k = scenes.shape[:, j] == shape
            du, dv, rr = u[k], v[k], r[k]
            sdf[k] = (
                torch.sqrt(dx[k] ** 2 + dy[k] ** 2) - rr
                if shape == 0
                else torch.maximum(du.abs(), dv.abs()) - sh._SQUARE_HALF * rr
                if shape == 1
                else torch.maximum(dv, math.sqrt(3) / 2 * du.abs() - dv / 2) - sh._TRIANGLE_CIRCUM * rr / 2
                if shape == 2
                else torch.maximum(
                    torch.maximum(du.abs(), dv.abs()) - sh._CROSS_ARM * rr,
                    torch.minimum(du.abs(), dv.abs()) - sh._CROSS_HALF_WIDTH * rr,
                )
            )
        alpha = (0.5 - sdf).clamp(0, 1).unsqueeze(1)
        alphas.append(alpha)
        rgb = torch.tensor(COLOUR_RGB, dtype=torch.float64)[scenes.colour[:, j]][:, :, None, None]
        img = img * (1 - alpha) + rgb * alpha
    if return_alpha:
        return img.clamp(0, 1).float(), torch.cat(alphas, 1).float()
    return img.clamp(0, 1).float()


def extreme_scenes(world: ShapesWorld) -> sh.Scenes:
    """Every shape x size x position with maximal scale, offsets towards all corners and max rotation."""
    combos = [
        (s, z, p, ox, oy, rot)
        for s in range(4)
        for z in range(2)
        for p in range(5)
        for ox in (-1, 1)
        for oy in (-1, 1)
        for rot in (-1, 1)
    ]
    n = len(combos)
    base = world.sample_scenes(n, gen(5))
    t = torch.tensor(combos, dtype=torch.float32)
    return base.replace(
        shape=t[:, 0].long(),
        size=t[:, 1].long(),
        position=t[:, 2].long(),
        offset=(t[:, 3:5] * sh.OFFSET_JITTER).unsqueeze(1),
        scale=torch.full((n, 1), 1 + sh.SCALE_JITTER),
        rotation=(t[:, 5:6] * sh.ROTATION_JITTER),
    )


# ------------------------------------------------------------------------------------------------ parsing
def parse_one(caption: str) -> dict[str, int]:
    words = WORD_RE.findall(caption.lower())
    found = {
        "colour": {COLOURS.index(w) for w in words if w in COLOURS},
        "shape": {SHAPE_SYN[w] for w in words if w in SHAPE_SYN},
        "size": {SIZE_SYN[w] for w in words if w in SIZE_SYN},
        "position": {POS_SYN[w] for w in words if w in POS_SYN},
    }
    for key, values in found.items():
        assert len(values) == 1, f"{caption!r}: {key} {values}"
    return {k: v.pop() for k, v in found.items()}


def parse_two(caption: str) -> tuple[tuple[int, int, int | None], str, tuple[int, int, int | None]]:
    """``(object 1, relation, object 2)``; an object is (colour, shape, size or None)."""
    words = WORD_RE.findall(caption.lower())
    mentions = []
    for i, w in enumerate(words):
        if w in SHAPE_SYN:
            assert words[i - 1] in COLOURS, caption
            size = SIZE_SYN.get(words[i - 2]) if i >= 2 else None
            mentions.append((i, (COLOURS.index(words[i - 1]), SHAPE_SYN[w], size)))
    assert len(mentions) == 2, caption
    (i1, obj1), (i2, obj2) = mentions
    dirs = [(i, DIR_SYN[w]) for i, w in enumerate(words) if w in DIR_SYN]
    between = [d for i, d in dirs if i1 < i < i2]
    after = [d for i, d in dirs if i > i2]
    assert len(between) == 1, caption
    if after:  # layout form: "A on the left and B on the right"
        inverse = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
        assert after == [inverse[between[0]]], caption
    else:
        assert not [d for i, d in dirs if i < i1], caption
    return obj1, between[0], obj2


def canonical_of(obj1, rel, obj2):
    if rel in ("right of", "below"):
        obj1, obj2, rel = obj2, obj1, {"right of": "left of", "below": "above"}[rel]
    return obj1[:2], rel, obj2[:2]


# ------------------------------------------------------------------------------------------------ tests
def test_vocabularies() -> None:
    assert COLOURS == ("red", "green", "blue", "yellow", "purple", "orange")
    assert SHAPES == ("circle", "square", "triangle", "cross")
    assert SIZES == ("small", "large")
    assert POSITIONS == ("left", "right", "top", "bottom", "center")
    assert RELATIONS == ("left of", "right of", "above", "below")
    rgb = torch.tensor(COLOUR_RGB)
    assert rgb.shape == (6, 3)
    dist = torch.cdist(rgb, rgb) + torch.eye(6) * 9
    assert dist.min() > 0.3  # clearly distinct colours


def test_bad_arguments() -> None:
    for kwargs in ({"level": "three"}, {"split": "test"}, {"size": 8}):
        with pytest.raises(UserError):
            ShapesWorld(**kwargs)
    world = ShapesWorld(32)
    with pytest.raises(UserError):
        world.sample_scenes(2, gen(), labels=torch.tensor([0, 240]))
    with pytest.raises(UserError):
        ShapesWorld(32, level="two").render(world.sample_scenes(2, gen()))
    with pytest.raises(UserError):
        ShapesStream(batch_size=0)


@pytest.mark.parametrize("level", ["one", "two"])
def test_determinism(level: str) -> None:
    world = ShapesWorld(32, level=level, split="all")
    a, b, c = (world.sample_scenes(64, gen(s)) for s in (3, 3, 4))
    assert torch.equal(world.render(a), world.render(b))
    assert not torch.equal(world.render(a), world.render(c))
    assert world.captions(a, gen(1)) == world.captions(b, gen(1))
    assert world.captions(a, gen(1)) != world.captions(a, gen(2))


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("level", ["one", "two"])
def test_render_matches_full_frame_reference(size: int, level: str) -> None:
    world = ShapesWorld(size, level=level, split="all")
    scenes = world.sample_scenes(100, gen(size))
    if level == "one":
        extreme = extreme_scenes(world)
        scenes = sh.Scenes.cat([scenes, extreme if size < 128 else extreme[::2]])
    images = world.render(scenes, chunk=100)
    assert images.shape == (len(scenes), 3, size, size) and images.dtype == torch.float32
    # exact range, not a tautology: render() clamps only scenes whose background leaves [0, 1], so for the
    # others this checks that blending objects into the background never overshoots
    assert images.min() >= 0 and images.max() <= 1
    assert (images - reference_render(world, scenes)).abs().max() < 1e-4


def test_render_out_buffer_and_alpha() -> None:
    world = ShapesWorld(64, split="all")
    scenes = world.sample_scenes(40, gen())
    out = torch.full((40, 3, 64, 64), 7.0)
    images, alpha = world.render(scenes, out=out, return_alpha=True)
    assert images is out and torch.equal(out, world.render(scenes))
    # alpha against the float64 reference's coverage (0.5 - sdf, clipped), not a range the code clamps to:
    # float32 pixel geometry on a 64 px canvas is off by ~64·2^-24 px, far below the 1e-4 of the image check
    assert alpha.shape == (40, 1, 64, 64)
    _, ref_alpha = reference_render(world, scenes, return_alpha=True)
    assert (alpha - ref_alpha).abs().max() < 1e-4
    assert ((alpha > 0) & (alpha < 1)).any() and (alpha == 1).any()  # anti-aliased edges and solid interiors
    with pytest.raises(UserError):
        world.render(scenes, out=torch.empty(39, 3, 64, 64))


def test_shape_areas_match_geometry() -> None:
    world = ShapesWorld(128, split="all")
    scenes = world.sample_scenes(400, gen(1))
    _, alpha = world.render(scenes, return_alpha=True)
    area = alpha.sum((1, 2, 3)).double()
    r = torch.tensor(SIZE_RADII, dtype=torch.float64)[scenes.size[:, 0]] * scenes.scale[:, 0].double() * 128
    a, t = sh._CROSS_ARM * r, sh._CROSS_HALF_WIDTH * r
    expected = torch.stack(
        [
            math.pi * r**2,
            (2 * sh._SQUARE_HALF * r) ** 2,
            3 * math.sqrt(3) / 4 * (sh._TRIANGLE_CIRCUM * r) ** 2,
            8 * a * t - 4 * t * t,
        ],
        1,
    )
    expected = expected[torch.arange(400), scenes.shape[:, 0]]
    assert ((area - expected).abs() / expected).max() < 0.03


@pytest.mark.parametrize("size", [32, 64])
def test_ground_truth_agrees_with_pixels(size: int) -> None:
    world = ShapesWorld(size, split="all")
    scenes = world.sample_scenes(600, gen(7))
    images, alpha = world.render(scenes, return_alpha=True)
    attrs = world.attributes(scenes)
    a = alpha[:, 0]
    solid = a > 0.999
    for i in range(600):
        colour = images[i][:, solid[i]].mean(1)
        assert (colour - torch.tensor(COLOUR_RGB[int(attrs["colour"][i])])).abs().max() < 0.01
    # centroid lies nearest to its own region centre, within the jitter (+ rasterisation slack)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    mass = a.sum((1, 2))
    centroid = torch.stack([(a * xs).sum((1, 2)) / mass, (a * ys).sum((1, 2)) / mass], 1) / size
    dist = torch.cdist(centroid, torch.tensor(POSITION_CENTRES))
    assert torch.equal(dist.argmin(1), attrs["position"])
    assert dist.min(1).values.max() < sh.OFFSET_JITTER * math.sqrt(2) + 0.03
    # every large object covers more pixels than any small one
    assert mass[attrs["size"] == 1].min() > 1.3 * mass[attrs["size"] == 0].max()
    # background (no coverage) is grey and dark; solid object pixels are bright and saturated
    bg = images.permute(0, 2, 3, 1)[a == 0]
    fg = images.permute(0, 2, 3, 1)[solid]
    assert bg.max() < 0.45 and (bg.max(1).values - bg.min(1).values).max() < 0.1
    assert fg.max(1).values.min() > 0.7 and (fg.max(1).values - fg.min(1).values).min() > 0.5


def test_resolution_independent() -> None:
    scenes = ShapesWorld(32, split="all").sample_scenes(50, gen(2))
    small = ShapesWorld(32, split="all").render(scenes)
    big = ShapesWorld(128, split="all").render(scenes)
    assert (torch.nn.functional.avg_pool2d(big, 4) - small).abs().mean() < 0.01


def test_heldout_rule_one_object() -> None:
    world = ShapesWorld(64, split="all")
    combos = world.all_combinations()
    held = world.heldout_labels()
    assert len(combos) == 240 and len(held) == 24
    triples = {(combos[i]["colour"], combos[i]["shape"], combos[i]["position"]) for i in held}
    assert len(triples) == 12
    for i in held:  # both sizes of each held-out triple
        assert (
            sum(
                1
                for j in held
                if combos[j]["colour"] == combos[i]["colour"]
                and combos[j]["shape"] == combos[i]["shape"]
                and combos[j]["position"] == combos[i]["position"]
            )
            == 2
        )
    assert Counter(t[0] for t in triples) == {c: 2 for c in COLOURS}
    assert Counter(t[1] for t in triples) == {s: 3 for s in SHAPES}
    assert sorted(Counter(t[2] for t in triples).values()) == [2, 2, 2, 3, 3]
    for a, b in ((0, 1), (0, 2), (1, 2)):  # no pair of values is held out twice
        assert len({(t[a], t[b]) for t in triples}) == 12
    assert ShapesWorld(32, split="train").heldout_labels() == held  # seed/split independent


@pytest.mark.parametrize("level", ["one", "two"])
def test_train_split_never_renders_heldout(level: str) -> None:
    train, heldout, full = (ShapesWorld(32, level=level, split=s) for s in ("train", "heldout", "all"))
    held = torch.tensor(sorted(full.heldout_labels()))
    labels = train.labels(train.sample_scenes(20000, gen(11)))
    assert not torch.isin(labels, held).any()
    assert len(labels.unique()) == full.n_labels - len(held)  # uniform over all allowed combos
    hl = heldout.labels(heldout.sample_scenes(2000, gen(12)))
    assert torch.isin(hl, held).all() and len(hl.unique()) == len(held)
    assert bool(full.is_heldout(hl).all()) and not full.is_heldout(labels).any()
    attrs = train.attributes(train.sample_scenes(5000, gen(13)))
    for values in attrs.values():  # every attribute value is still seen in training
        assert len(values.unique()) == int(values.max()) + 1


def test_heldout_rule_two_objects() -> None:
    world = ShapesWorld(32, level="two", split="all")
    combos = world.all_combinations()
    held = world.heldout_labels()
    assert len(combos) == 1104 and len(held) == 96

    def obj(c: dict, k: int) -> int:
        return COLOURS.index(c[f"colour{k}"]) * 4 + SHAPES.index(c[f"shape{k}"])

    pairs = {frozenset((obj(combos[i], 1), obj(combos[i], 2))) for i in held}
    assert len(pairs) == 24
    assert Counter(o for p in pairs for o in p) == {o: 2 for o in range(24)}
    for i, c in enumerate(combos):  # symmetric in object order and relation axis
        assert (i in held) == ((obj(c, 1) + obj(c, 2)) % 12 == 5)


@pytest.mark.parametrize("level", ["one", "two"])
def test_labels_and_canonical_captions(level: str) -> None:
    world = ShapesWorld(32, level=level, split="all")
    names = world.canonical_caption_list()
    assert len(names) == world.n_labels == len(set(names))
    scenes = world.sample_scenes(3000, gen(4))
    labels = world.labels(scenes)
    assert world.canonical_captions(scenes) == [names[i] for i in labels.tolist()]
    combos = world.all_combinations()
    attrs = world.attributes(scenes)
    for i in range(0, 3000, 7):
        combo = combos[int(labels[i])]
        if level == "one":
            assert combo == {
                k: v[int(attrs[k][i])]
                for k, v in (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES), ("position", POSITIONS))
            }
        else:
            rel = int(attrs["relation"][i])
            a, b = (1, 2) if rel % 2 == 0 else (2, 1)
            assert combo == {
                "colour1": COLOURS[int(attrs[f"colour{a}"][i])],
                "shape1": SHAPES[int(attrs[f"shape{a}"][i])],
                "relation": RELATIONS[rel - rel % 2],
                "colour2": COLOURS[int(attrs[f"colour{b}"][i])],
                "shape2": SHAPES[int(attrs[f"shape{b}"][i])],
            }
    if level == "one":
        assert names[0] == "a small red circle on the left"
        assert "a large blue square in the center" in names
    else:
        assert names[0] == "a red circle left of a red square"
        assert "a blue square above an orange triangle" in names
    given = world.sample_scenes(5, gen(), labels=torch.tensor([0, 1, 2, 3, 4]))
    assert world.labels(given).tolist() == [0, 1, 2, 3, 4]
    if level == "one":  # label_attributes inverts labels() on every label of the world
        every = torch.arange(world.n_labels)
        decoded = world.label_attributes(every)
        for i in range(world.n_labels):
            assert {
                k: v[int(decoded[k][i])]
                for k, v in (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES), ("position", POSITIONS))
            } == combos[i]
    else:
        with pytest.raises(UserError, match="one-object"):
            world.label_attributes(torch.tensor([0]))


def test_captions_one_object_describe_every_attribute() -> None:
    world = ShapesWorld(32, split="all")
    scenes = world.sample_scenes(3000, gen(21))
    captions = world.captions(scenes, gen(22)) + world.canonical_captions(scenes)
    attrs = world.attributes(scenes)
    for i, caption in enumerate(captions):
        k = i % 3000
        assert parse_one(caption) == {name: int(attrs[name][k]) for name in ("colour", "shape", "size", "position")}
    # variety: many templates, paraphrases and attribute orders
    assert len(set(captions[:3000])) > 2000
    starts = Counter(WORD_RE.findall(c)[0] for c in captions[:3000])
    assert {"a", "on", "at", "in", "the", "there"} <= set(starts)
    for word in (
        "big",
        "tiny",
        "little",
        "middle",
        "centre",
        "upper",
        "lower",
        "side",
        "picture",
        "disc",
        "plus",
    ):
        assert any(word in WORD_RE.findall(c) for c in captions[:3000]), word


def test_captions_two_objects_describe_objects_and_relation() -> None:
    world = ShapesWorld(32, level="two", split="all")
    scenes = world.sample_scenes(3000, gen(31))
    captions = world.captions(scenes, gen(32))
    canon = world.canonical_captions(scenes)
    combos = world.all_combinations()
    labels = world.labels(scenes)
    attrs = world.attributes(scenes)
    rels = Counter()
    for i, caption in enumerate(captions + canon):
        k = i % 3000
        obj1, rel, obj2 = parse_two(caption)
        rels[rel] += 1
        c = combos[int(labels[k])]
        expected = (
            (COLOURS.index(c["colour1"]), SHAPES.index(c["shape1"])),
            c["relation"],
            (COLOURS.index(c["colour2"]), SHAPES.index(c["shape2"])),
        )
        assert canonical_of(obj1, rel, obj2) == expected, caption
        for colour, shape, size in (obj1, obj2):  # sizes, when mentioned, are right
            if size is not None:
                slot = 1 if (int(attrs["colour1"][k]), int(attrs["shape1"][k])) == (colour, shape) else 2
                assert size == int(attrs[f"size{slot}"][k]), caption
    assert set(rels) == set(RELATIONS)
    assert len(set(captions)) > 2000
    for word in ("big", "large", "tiny", "little", "small", "under", "with", "two", "disc", "plus"):
        assert any(word in WORD_RE.findall(c) for c in captions), word
    assert any(c.startswith(("a picture of", "an image of", "a photo of")) for c in captions)


@pytest.mark.parametrize("level", ["one", "two"])
def test_caption_words_in_tokenizer_vocab(level: str) -> None:
    world = ShapesWorld(32, level=level, split="all")
    scenes = world.sample_scenes(4000, gen(41))
    texts = world.captions(scenes, gen(42)) + world.canonical_caption_list()
    unknown = Counter(w for t in texts for w in WORD_RE.findall(t.lower()) if w not in VOCAB)
    assert not unknown
    assert max(len(WORD_RE.findall(t.lower())) for t in texts) <= MAX_WORDS
    assert not any(re.search(r"\ba [aeiou]", t) for t in texts)  # "an orange", "an image"


def test_replace_colour_keeps_mask_and_background() -> None:
    world = ShapesWorld(64, split="all")
    scenes = world.sample_scenes(200, gen(51))
    recoloured = scenes.replace(colour=(scenes.colour + 1) % len(COLOURS))
    img_a, alpha_a = world.render(scenes, return_alpha=True)
    img_b, alpha_b = world.render(recoloured, return_alpha=True)
    assert torch.equal(alpha_a, alpha_b)
    changed = (img_a != img_b).any(1)
    assert not changed[alpha_a[:, 0] == 0].any()
    assert changed[alpha_a[:, 0] > 0.5].all()
    assert torch.equal(world.attributes(recoloured)["shape"], world.attributes(scenes)["shape"])
    # dataclasses.replace works too for one-object scenes
    assert torch.equal(world.render(dataclasses.replace(scenes, colour=recoloured.colour)), img_b)


def test_replace_position_moves_object_keeping_jitter() -> None:
    world = ShapesWorld(64, split="all")
    scenes = world.sample_scenes(100, gen(52))
    moved = scenes.replace(position=(scenes.position + 2) % len(POSITIONS))
    (_, a), (_, b) = world.render(scenes, return_alpha=True), world.render(moved, return_alpha=True)
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")

    def centroid(alpha: torch.Tensor) -> torch.Tensor:
        m = alpha[:, 0].sum((1, 2))
        return torch.stack([(alpha[:, 0] * xs).sum((1, 2)) / m, (alpha[:, 0] * ys).sum((1, 2)) / m], 1)

    centres = torch.tensor(POSITION_CENTRES) * 64
    shift = centres[moved.position[:, 0]] - centres[scenes.position[:, 0]]
    assert (centroid(b) - centroid(a) - shift).abs().max() < 0.15  # rasterisation only
    assert torch.allclose(a.sum((1, 2, 3)), b.sum((1, 2, 3)), rtol=0.02, atol=0.5)
    assert torch.equal(world.attributes(moved)["position"], moved.position[:, 0])


def test_replace_size_and_shape() -> None:
    world = ShapesWorld(64, split="all")
    scenes = world.sample_scenes(100, gen(53)).replace(size=0)
    _, small = world.render(scenes, return_alpha=True)
    _, large = world.render(scenes.replace(size=1), return_alpha=True)
    assert (large.sum((1, 2, 3)) > 2.5 * small.sum((1, 2, 3))).all()
    squares = scenes.replace(shape=[1] * 100)
    assert world.labels(squares).tolist() == [
        ((int(c) * 4 + 1) * 2) * 5 + int(p) for c, p in zip(scenes.colour[:, 0], scenes.position[:, 0], strict=True)
    ]
    with pytest.raises(UserError):
        scenes.replace(colour=6)
    with pytest.raises(UserError):
        scenes.replace(wobble=1)
    with pytest.raises(UserError):
        scenes.replace(relation=0)


def test_replace_two_object_relation() -> None:
    world = ShapesWorld(64, level="two", split="all")
    scenes = world.sample_scenes(50, gen(54))
    swapped = scenes.replace(relation=scenes.relation ^ 1)  # left of <-> right of, above <-> below
    assert torch.equal(swapped.position, scenes.position.flip(1))
    combos = world.all_combinations()
    for a, b in zip(world.labels(scenes).tolist(), world.labels(swapped).tolist(), strict=True):
        ca, cb = combos[a], combos[b]
        assert (ca["colour1"], ca["shape1"]) == (cb["colour2"], cb["shape2"]) and ca["relation"] == cb["relation"]
    by_position = scenes.replace(position=scenes.position.flip(1))
    assert torch.equal(by_position.relation, swapped.relation)
    _, alpha = world.render(scenes, return_alpha=True)
    _, alpha_s = world.render(swapped, return_alpha=True)
    assert not torch.equal(alpha, alpha_s)
    with pytest.raises(UserError):
        scenes.replace(position=torch.zeros(50, 2, dtype=torch.long))
    with pytest.raises(UserError):
        dataclasses.replace(scenes, relation=scenes.relation ^ 1)


def test_two_object_layout_pixels() -> None:
    world = ShapesWorld(64, level="two", split="all")
    scenes = world.sample_scenes(300, gen(55))
    images, alpha = world.render(scenes, return_alpha=True)
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    m = alpha.sum((2, 3))
    cx, cy = (alpha * xs).sum((2, 3)) / m, (alpha * ys).sum((2, 3)) / m
    rel = scenes.relation
    assert (cx[rel == 0, 0] < cx[rel == 0, 1] - 20).all() and (cx[rel == 1, 0] > cx[rel == 1, 1] + 20).all()
    assert (cy[rel == 2, 0] < cy[rel == 2, 1] - 20).all() and (cy[rel == 3, 0] > cy[rel == 3, 1] + 20).all()
    assert ((alpha[:, 0] > 0) & (alpha[:, 1] > 0)).sum() == 0  # objects never overlap
    for j in range(2):
        solid = alpha[:, j] > 0.999
        for i in range(0, 300, 10):
            colour = images[i][:, solid[i]].mean(1)
            assert (colour - torch.tensor(COLOUR_RGB[int(scenes.colour[i, j])])).abs().max() < 0.01


def test_scenes_indexing_and_cat() -> None:
    world = ShapesWorld(32, split="all")
    scenes = world.sample_scenes(10, gen())
    part = scenes[2:5]
    assert len(part) == 3 and torch.equal(world.render(part), world.render(scenes)[2:5])
    assert len(scenes[0]) == 1
    assert torch.equal(world.render(sh.Scenes.cat([scenes[:4], scenes[4:]])), world.render(scenes))


def test_stream_batches_determinism_and_ranks() -> None:
    def first(**kw) -> dict:
        return next(iter(ShapesStream(size=32, batch_size=16, **kw)))

    a, b = first(seed=1), first(seed=1)
    assert a["image"].shape == (16, 3, 32, 32) and a["label"].shape == (16,) and len(a["caption"]) == 16
    assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"]
    assert not torch.equal(a["image"], first(seed=2)["image"])
    assert not torch.equal(a["image"], first(seed=1, rank=1, world_size=2)["image"])
    two = first(level="two", with_attributes=True)
    assert "attrs" in two and two["attrs"]["relation"].shape == (16,)
    with pytest.raises(UserError):
        ShapesStream(rank=2, world_size=2)


def take(stream: torch.utils.data.IterableDataset, n: int, workers: int = 0) -> list[dict]:
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
    out = []
    for batch in loader:
        out.append({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()})
        if len(out) == n:
            break
    return out


def test_stream_workers_differ_resume_and_match_single_process() -> None:
    def stream(**kw) -> ShapesStream:
        return ShapesStream(size=32, batch_size=8, seed=3, **kw)

    two_workers = take(stream(), 4, workers=2)
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(two_workers, take(stream(), 4, 2), strict=True))
    assert not torch.equal(two_workers[0]["image"], two_workers[1]["image"])  # workers draw different batches
    single = take(stream(), 4)
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(two_workers, single, strict=True))
    assert [x["caption"] for x in two_workers] == [x["caption"] for x in single]
    resumed = take(stream(start_batch=2), 2)
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(single[2:], resumed, strict=True))
    assert torch.equal(stream().batch(3)["label"], single[3]["label"])


def test_stream_buffer_reuse_never_overwrites_held_batches() -> None:
    it = iter(ShapesStream(size=32, batch_size=32, seed=4))
    held = next(it)
    held_copy = held["image"].clone()
    view = next(it)["image"][:3]
    view_copy = view.clone()
    pointers = set()
    for _ in range(6):
        batch = next(it)
        pointers.add(batch["image"].data_ptr())
        del batch
    assert torch.equal(held["image"], held_copy) and torch.equal(view, view_copy)
    assert held["image"].data_ptr() not in pointers and len(pointers) <= 2  # released buffers are reused
    fresh = iter(ShapesStream(size=32, batch_size=32, seed=4, reuse_buffers=False))
    assert torch.equal(next(fresh)["image"], held_copy)


def test_eval_set() -> None:
    a = shapes_eval_set("one", "heldout", n=48, seed=0, size=32)
    b = shapes_eval_set("one", "heldout", n=48, seed=0, size=32)
    assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"]
    assert Counter(a["label"].tolist()) == {i: 2 for i in ShapesWorld(32).heldout_labels()}
    names = ShapesWorld(32).canonical_caption_list()
    assert a["caption"] == [names[i] for i in a["label"].tolist()]
    assert set(a["attrs"]) == {"colour", "shape", "size", "position"}
    two = shapes_eval_set("two", "train", n=20, seed=1, size=32)
    assert two["image"].shape == (20, 3, 32, 32)
    assert all(" left of " in c or " above " in c for c in two["caption"])
    with pytest.raises(UserError):
        shapes_eval_set(n=0)
