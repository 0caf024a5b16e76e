"""Judges: small CNN classifiers that score generated images by what their prompt asked for.

A judge is an *evaluator*, never a guide: it is trained on clean renders only and is not used for
guidance, so a generator that fools the guiding CLIP does not automatically fool the judge.

* :class:`ShapesJudge` — one-object shapes world, four heads (colour 6, shape 4, size 2, position 5),
  trained on clean renders of **all** 240 combinations (held-out ones included) with mild augmentation
  (pixel noise, slight blur, colour jitter small enough not to change a colour's name).
* :class:`DigitsJudge` — ten-way digit classifier on the fixed digits train split, evaluated on test; it sees
  the luminance of the image, so coloured generations are judged by shape alone.

Both expose :meth:`features` (the 128-d penultimate layer) for Fréchet distances on judge features; see
:func:`judge_feature_extractor`. Prompts are parsed back into attributes by :func:`parse_shapes_prompt`
(any template or paraphrase of the shapes world) and :func:`parse_digits_prompt`.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip_t2i.errors import UserError

SHAPES_ATTRIBUTES = ("colour", "shape", "size", "position")
SHAPES_JUDGE = "shapes-judge"
DIGITS_JUDGE = "digits-judge"
JUDGE_META_KEY = "clip_t2i_judge"


# ------------------------------------------------------------------------------------------------ networks
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

    def _prepare(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"judge input must be [B, 3, H, W], got {tuple(images.shape)}")
        images = images.float().clamp(0.0, 1.0)
        if images.shape[-2:] != (self.input_size, self.input_size):
            shrink = min(images.shape[-2:]) > self.input_size
            images = F.interpolate(
                images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
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
        lum = (images[:, :1] * 0.299 + images[:, 1:2] * 0.587 + images[:, 2:3] * 0.114).expand(-1, 3, -1, -1)
        return super()._prepare(lum)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """Predicted digit ``LongTensor [B]``."""
        self.eval()
        return torch.cat([self(chunk).argmax(1) for chunk in images.split(batch_size)])


def judge_feature_extractor(judge: _JudgeBase, name: str | None = None):
    """The judge's penultimate layer as a :class:`~clip_t2i.metrics.features.ModuleFeatures` extractor."""
    from clip_t2i.metrics.features import ModuleFeatures

    class _Penultimate(nn.Module):
        def __init__(self, j: _JudgeBase) -> None:
            super().__init__()
            self.judge = j

        def forward(self, x: Tensor) -> Tensor:
            return self.judge.features(x)

    kind = "shapes" if isinstance(judge, ShapesJudge) else "digits"
    return ModuleFeatures(_Penultimate(judge.eval()), name=name or f"{kind}-judge-penultimate",
                          dim=judge.feature_dim)


# ------------------------------------------------------------------------------------------ augmentation
def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Per-image separable Gaussian blur (5 taps); ``sigma`` ``[B]`` (0 = identity)."""
    taps = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    s = sigma.clamp_min(1e-3).view(-1, 1)
    k = torch.exp(-0.5 * (taps / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # [B, 5]
    b, c, h, w = x.shape
    xs = x.reshape(1, b * c, h, w)
    kk = k.repeat_interleave(c, 0)
    xs = F.conv2d(F.pad(xs, (2, 2, 0, 0), mode="replicate"), kk.view(b * c, 1, 1, 5), groups=b * c)
    xs = F.conv2d(F.pad(xs, (0, 0, 2, 2), mode="replicate"), kk.view(b * c, 1, 5, 1), groups=b * c)
    return xs.view(b, c, h, w)


def judge_augment(x: Tensor, g: torch.Generator, strength: float = 1.0) -> Tensor:
    """Mild training augmentation: colour jitter, slight blur (p=0.5), pixel noise; output in [0, 1].

    Ranges (x ``strength``): brightness +-0.06, contrast x[0.85, 1.15], saturation x[0.8, 1.2], per-channel
    gain x[0.93, 1.07], blur sigma U(0, 1) px at 64 px, Gaussian noise std U(0, 0.06) — small enough that
    no colour crosses into a neighbouring colour name.
    """
    b = x.shape[0]
    u = torch.rand(b, 8, generator=g)
    r = strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + (u[:, 0] * 2 - 1) * 0.15 * r).view(b, 1, 1, 1) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (1 + (u[:, 1] * 2 - 1) * 0.2 * r).view(b, 1, 1, 1) + grey
    gain = 1 + (torch.rand(b, 3, generator=g) * 2 - 1) * 0.07 * r
    x = x * gain.view(b, 3, 1, 1) + ((u[:, 2] * 2 - 1) * 0.06 * r).view(b, 1, 1, 1)
    sigma = u[:, 3] * (x.shape[-1] / 64) * r * (u[:, 4] < 0.5)
    x = torch.where((sigma > 0.05).view(b, 1, 1, 1), _gaussian_blur(x, sigma), x)
    noise = torch.randn(x.shape, generator=g) * (u[:, 5] * 0.06 * r).view(b, 1, 1, 1)
    return (x + noise).clamp(0.0, 1.0)


# ------------------------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class JudgeTrainConfig:
    """Judge training settings (units in the names)."""

    kind: str = "shapes"  # shapes | digits
    steps: int = 1500
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    augment_strength: float = 1.0
    seed: int = 0
    eval_n: int = 2400  # shapes: clean evaluation images (10 per combination)


def train_judge(cfg: JudgeTrainConfig, log: Callable[[str], None] | None = print) -> tuple[_JudgeBase, dict]:
    """Train a judge from scratch; returns ``(model in eval mode, metrics)`` (clean accuracies, seconds)."""
    if cfg.kind not in ("shapes", "digits"):
        raise UserError(f"judge kind must be 'shapes' or 'digits', got {cfg.kind!r}")
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise UserError("judge training needs steps >= 1 and batch_size >= 1")
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    if cfg.kind == "shapes":
        from clip_t2i.data.shapes import ShapesWorld

        world = ShapesWorld(size=64, level="one", split="all")
        model: _JudgeBase = ShapesJudge()

        def batch() -> tuple[Tensor, Any]:
            scenes = world.sample_scenes(cfg.batch_size, g)
            return world.render(scenes), world.attributes(scenes)
    else:
        from clip_t2i.data.digits import DigitsStream

        stream = DigitsStream(split="train", size=32, batch_size=cfg.batch_size, seed=cfg.seed, augment=True)
        model = DigitsJudge()
        counter = iter(range(10**9))

        def batch() -> tuple[Tensor, Any]:
            b = stream.batch(next(counter))
            return b["image"], b["label"]

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    model.train()
    for step in range(cfg.steps):
        images, target = batch()
        images = judge_augment(images, g, cfg.augment_strength)
        out = model(images)
        if isinstance(out, dict):
            loss = sum(F.cross_entropy(out[k], target[k]) for k in SHAPES_ATTRIBUTES)
        else:
            loss = F.cross_entropy(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 100 == 0 or step == cfg.steps - 1):
            log(f"step {step:5d}  loss {float(loss):.4f}  {time.perf_counter() - t0:.0f}s")
    model.eval()
    metrics = evaluate_judge(model, n=cfg.eval_n)
    metrics["train_seconds"] = round(time.perf_counter() - t0, 1)
    return model, metrics


@torch.no_grad()
def evaluate_judge(model: _JudgeBase, n: int = 2400, seed: int = 12345) -> dict:
    """Clean accuracy: shapes on a balanced set over all combinations (also split seen / held-out, and with
    the training augmentation applied); digits on the test split."""
    model.eval()
    if isinstance(model, ShapesJudge):
        from clip_t2i.data.shapes import ShapesWorld, shapes_eval_set

        data = shapes_eval_set(level="one", split="all", n=n, seed=seed)
        held = ShapesWorld(split="all").is_heldout(data["label"])
        pred = model.predict(data["image"])
        ok = {k: pred[k] == data["attrs"][k] for k in SHAPES_ATTRIBUTES}
        allk = torch.stack(list(ok.values())).all(0)
        aug = judge_augment(data["image"], torch.Generator().manual_seed(seed))
        pred_aug = model.predict(aug)
        all_aug = torch.stack([pred_aug[k] == data["attrs"][k] for k in SHAPES_ATTRIBUTES]).all(0)
        return {
            **{f"clean_{k}": round(float(v.float().mean()), 4) for k, v in ok.items()},
            "clean_all": round(float(allk.float().mean()), 4),
            "clean_all_heldout": round(float(allk[held].float().mean()), 4),
            "augmented_all": round(float(all_aug.float().mean()), 4),
            "eval_n": n,
        }
    from clip_t2i.data.digits import DigitsDataset

    test = DigitsDataset(split="test", size=32)
    images = test.images.expand(-1, 3, -1, -1)
    acc = float((model.predict(images) == test.labels).float().mean())
    train = DigitsDataset(split="train", size=32)
    acc_train = float((model.predict(train.images.expand(-1, 3, -1, -1)) == train.labels).float().mean())
    return {"test_accuracy": round(acc, 4), "train_accuracy": round(acc_train, 4), "eval_n": len(test)}


def save_judge(model: _JudgeBase, path: str | Path, extra: dict | None = None) -> Path:
    """Write the judge as fp16 safetensors with its kind and input size in the metadata (atomically)."""
    from safetensors.torch import save_file

    from clip_t2i.utils.io import atomic_write

    kind = "shapes" if isinstance(model, ShapesJudge) else "digits"
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    meta = {JUDGE_META_KEY: json.dumps({"kind": kind, "input_size": model.input_size, **(extra or {})})}
    path = Path(path)
    with atomic_write(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path


def load_judge(name_or_path: str | Path = SHAPES_JUDGE) -> _JudgeBase:
    """Load a judge by zoo name (``shapes-judge``, ``digits-judge``) or from a ``.safetensors`` file."""
    from safetensors import safe_open
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
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(JUDGE_META_KEY, "null"))
        sd = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise UserError(f"cannot read judge {path}: {str(e)[:160]}") from None
    if not meta:
        raise UserError(f"{path} is not a clip-t2i judge (no {JUDGE_META_KEY} metadata)")
    model: _JudgeBase = (ShapesJudge if meta["kind"] == "shapes" else DigitsJudge)(input_size=meta["input_size"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return model.eval()


# -------------------------------------------------------------------------------------------- prompt parsing
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
    "circle": 0, "circles": 0, "disc": 0, "disk": 0, "round": 0, "dot": 0, "ring": 0,
    "square": 1, "squares": 1, "box": 1,
    "triangle": 2, "triangles": 2,
    "cross": 3, "crosses": 3, "plus": 3,
}
_SIZE_WORDS = {"small": 0, "little": 0, "tiny": 0, "large": 1, "big": 1, "huge": 1}
_POSITION_WORDS = {
    "left": 0, "right": 1, "top": 2, "upper": 2, "bottom": 3, "lower": 3,
    "center": 4, "centre": 4, "middle": 4, "central": 4,
}
_WORD = re.compile(r"[a-z]+")


def parse_shapes_prompt(prompt: str) -> dict[str, int | None]:
    """Attribute indices named by a one-object shapes prompt (``None`` where the prompt is silent).

    Works on any template or paraphrase of the world ("a small red circle on the left", "near the upper edge
    there is a big yellow plus shape", "the disc in the middle of the image is tiny and green"). Raises
    :class:`UserError` if the prompt names two different values of one attribute (e.g. two objects).
    """
    words = _WORD.findall(_main_prompt(prompt).lower())
    out: dict[str, int | None] = {}
    for attr, table in (("colour", _COLOUR_WORDS), ("shape", _SHAPE_WORDS), ("size", _SIZE_WORDS),
                        ("position", _POSITION_WORDS)):
        found = {table[w] for w in words if w in table}
        if len(found) > 1:
            raise UserError(f"prompt {prompt!r} names several {attr}s; the judge scores one-object prompts")
        out[attr] = found.pop() if found else None
    return out


_DIGITS = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                       "nine"))}
_DIGIT_CONTEXT = ("digit", "digits", "number", "numeral", "handwritten", "written", "scanned")


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
    if parse_digits_prompt(prompt) is not None:
        return "digits"
    try:
        attrs = parse_shapes_prompt(prompt)
    except UserError:
        return None
    return "shapes" if attrs["colour"] is not None or attrs["shape"] is not None else None


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
        out.append({"prompt": captions[label], "colour": COLOURS[c], "shape": SHAPES[s], "size": SIZES[z],
                    "position": POSITIONS[p], "heldout": (c, s, p) in held})
    return out


# ------------------------------------------------------------------------------------------------ judging
@dataclass
class JudgeReport:
    """Accuracies over the judged images (``n`` each); ``per_image`` lists every decision."""

    domain: str
    n: int
    accuracy: dict[str, float]
    all_attributes: list[str]
    per_image: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


def judge_shapes(
    images: Tensor, prompts: Sequence[str], judge: ShapesJudge | None = None,
    all_attributes: Sequence[str] = ("colour", "shape", "position"), names: Sequence[str] | None = None,
) -> JudgeReport:
    """Score images against their shapes prompts.

    Per attribute: accuracy over the images whose prompt names it. ``all``: fraction of images whose every
    attribute in ``all_attributes`` that the prompt names is predicted right (default colour + shape +
    position; size is reported separately, add it with ``all_attributes=SHAPES_ATTRIBUTES``).
    """
    from clip_t2i.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES

    judge = judge or load_judge(SHAPES_JUDGE)  # type: ignore[assignment]
    if len(prompts) != images.shape[0]:
        raise UserError(f"{images.shape[0]} images but {len(prompts)} prompts")
    pred = judge.predict(images)
    vocab = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}
    hits: dict[str, list[bool]] = {k: [] for k in SHAPES_ATTRIBUTES}
    all_hits: list[bool] = []
    rows = []
    for i, prompt in enumerate(prompts):
        want = parse_shapes_prompt(prompt)
        row: dict[str, Any] = {"prompt": prompt}
        if names is not None:
            row["image"] = names[i]
        ok_all = True
        for k in SHAPES_ATTRIBUTES:
            got = int(pred[k][i])
            row[f"pred_{k}"] = vocab[k][got]
            if want[k] is None:
                continue
            row[k] = vocab[k][want[k]]
            ok = got == want[k]
            hits[k].append(ok)
            if k in all_attributes:
                ok_all &= ok
        row["all"] = ok_all
        all_hits.append(ok_all)
        rows.append(row)
    acc = {k: round(sum(v) / len(v), 4) for k, v in hits.items() if v}
    acc["all"] = round(sum(all_hits) / max(1, len(all_hits)), 4)
    return JudgeReport("shapes", len(prompts), acc, list(all_attributes), rows)


def judge_digits(
    images: Tensor, prompts: Sequence[str], judge: DigitsJudge | None = None, names: Sequence[str] | None = None
) -> JudgeReport:
    """Score images against their digits prompts: accuracy of the predicted digit."""
    judge = judge or load_judge(DIGITS_JUDGE)  # type: ignore[assignment]
    pred = judge.predict(images).tolist()
    rows, hits = [], []
    for i, prompt in enumerate(prompts):
        want = parse_digits_prompt(prompt)
        if want is None:
            raise UserError(f"cannot read a digit from prompt {prompt!r}")
        ok = pred[i] == want
        hits.append(ok)
        row = {"prompt": prompt, "digit": want, "pred_digit": pred[i], "all": ok}
        if names is not None:
            row["image"] = names[i]
        rows.append(row)
    acc = round(sum(hits) / max(1, len(hits)), 4)
    return JudgeReport("digits", len(prompts), {"digit": acc, "all": acc}, ["digit"], rows)


def judge_directory(path: str | Path, all_attributes: Sequence[str] = ("colour", "shape", "position")) -> dict:
    """Judge every PNG in ``path`` by the prompt in its metadata; ``{domain: JudgeReport dict}``.

    Raises :class:`UserError` if the folder has no PNG, if an image carries no prompt (neither a PNG text
    chunk nor a JSON sidecar), or if a prompt is neither a shapes nor a digits prompt.
    """
    from clip_t2i.renderers.outputs import read_image_record

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a directory")
    files = sorted(folder.glob("*.png"))
    if not files:
        raise UserError(f"{folder} holds no .png images")
    groups: dict[str, list[tuple[Path, str, Tensor]]] = {"shapes": [], "digits": []}
    for f in files:
        record, image = read_image_record(f)
        if record and record.get("kind") == "grid":
            continue
        prompt = record.get("prompt") if record else None
        if not prompt:
            raise UserError(f"{f.name} carries no prompt (no PNG text chunk, no {f.stem}.json sidecar)")
        domain = prompt_domain(prompt)
        if domain is None:
            raise UserError(f"{f.name}: prompt {prompt!r} is neither a one-object shapes nor a digits prompt")
        groups[domain].append((f, prompt, image))
    out = {}
    for domain, items in groups.items():
        if not items:
            continue
        images = torch.stack([_fit(img) for _, _, img in items])
        prompts = [p for _, p, _ in items]
        names = [f.name for f, _, _ in items]
        report = (judge_shapes(images, prompts, names=names, all_attributes=all_attributes) if domain == "shapes"
                  else judge_digits(images, prompts, names=names))
        out[domain] = report.to_dict()
    return out


def _fit(image: Tensor, size: int = 64) -> Tensor:
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=min(image.shape[-2:]) > size)[0]


def zoo_card(name: str, kind: str, metrics: dict, command: str, n_params: int, size_bytes: int) -> str:
    """Markdown model card of a judge."""
    lines = [
        f"# {name}",
        "",
        f"A {'shapes-world attribute' if kind == 'shapes' else 'digit'} classifier used as an **evaluator** "
        "of generated images (never for guidance).",
        "",
        "- architecture: conv trunk (stride-2 4x4 stem, 3 conv-BN-ReLU stages of 32/64/64 channels, 4x4 average "
        "grid), 128-d penultimate layer (`features()`), linear heads",
        f"- parameters: {n_params:,}; file: {size_bytes / 1024:.0f} KiB (fp16 safetensors)",
        "- data: " + ("clean renders of all 240 one-object combinations (held-out ones included), 64x64"
                      if kind == "shapes" else "digits train split (1437 images) at 32x32, scale/shift jitter"),
        "- augmentation: brightness +-0.06, contrast x[0.85,1.15], saturation x[0.8,1.2], channel gain "
        "x[0.93,1.07], blur sigma<=1 px (p=0.5), noise std<=0.06",
        f"- training time: {metrics.get('train_seconds', math.nan):.0f} s on a 2-core CPU (may be shared)",
        "",
        "## Reproduce",
        "",
        "```",
        command,
        "```",
        "",
        "## Clean accuracy",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in metrics.items() if k != "train_seconds"]
    return "\n".join(lines) + "\n"


def write_zoo_entry(model: _JudgeBase, metrics: dict, folder: str | Path, command: str) -> Path:
    """Write ``<name>.safetensors`` + ``.json`` + ``.md`` for a judge into ``folder`` (atomically)."""
    from clip_t2i.utils.io import atomic_write_text

    kind = "shapes" if isinstance(model, ShapesJudge) else "digits"
    name = SHAPES_JUDGE if kind == "shapes" else DIGITS_JUDGE
    folder = Path(folder)
    weights = save_judge(model, folder / f"{name}.safetensors")
    n_params = sum(p.numel() for p in model.parameters())
    entry = {"file": weights.name, "kind": f"judge-{kind}", "metrics": metrics, "command": command}
    atomic_write_text(folder / f"{name}.json", json.dumps(entry, indent=2) + "\n")
    card = zoo_card(name, kind, metrics, command, n_params, weights.stat().st_size)
    atomic_write_text(folder / f"{name}.md", card)
    return weights
