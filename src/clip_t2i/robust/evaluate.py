"""Zero-shot clean and robust accuracy of a CLIP on the built-in labelled data (shapes, digits).

Classifier: ``logits = s · f̂(x) Cᵀ`` over the canonical captions ``C`` of *all* combinations (shapes: 240
one-object captions, so an image counts as correct only if colour, shape, size and position are all right;
digits: 10 captions), ``s = exp(logit_scale)``. Robust accuracy (:func:`~clip_t2i.robust.attacks.robust_accuracy`)
counts an image as correct only if it is classified correctly clean *and* after the attack (PGD-CE or
APGD-CE) within the ε-ball. ε values are given in the 224×224 convention and rescaled to the model's
resolution (see :func:`~clip_t2i.robust.finetune.effective_eps`); both are reported.

APGD runs AutoAttack-compatible by default (``apgd_compat="autoattack"``: the schedule, start and step rule of
``APGDAttack`` in fra31/auto-attack, as behind RobustBench's APGD-CE numbers; reported as
``"apgd": "autoattack-compatible"``); ``"paper"`` selects the project's earlier variant. The images are moved
to the model's device and the attacks' random starts are drawn there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from clip_t2i.backbones import ClipModel
from clip_t2i.errors import UserError
from clip_t2i.robust.attacks import COMPAT_MODES, ZeroShotClassifier, clean_accuracy, eval_mode, robust_accuracy

EVAL_DATA: tuple[str, ...] = ("shapes", "digits")
APGD_LABELS: dict[str, str] = {"autoattack": "autoattack-compatible", "paper": "paper"}


def zero_shot_classifier(clip: ClipModel, prompts: list[str], scale: float | None = None) -> ZeroShotClassifier:
    """``x -> s · f̂(x) Cᵀ`` over ``prompts`` (``s`` defaults to the model's ``exp(logit_scale)``)."""
    with torch.no_grad(), eval_mode(clip):
        text = clip.encode_text(prompts)
    s = float(clip.logit_scale.detach().exp()) if scale is None else float(scale)
    return ZeroShotClassifier(clip, text, scale=s)


def labelled_eval_sets(
    data: str, size: int, *, n: int = 500, seed: int = 1234, splits: Sequence[str] | None = None
) -> tuple[dict[str, tuple[Tensor, Tensor]], list[str]]:
    """``({split: (images, labels)}, class prompts)``; shapes splits ``seen``/``heldout``, digits ``test``."""
    if data == "shapes":
        from clip_t2i.data.shapes import ShapesWorld, shapes_eval_set

        prompts = ShapesWorld(size=size, level="one", split="all").canonical_caption_list()
        out = {}
        for name, split in (("seen", "train"), ("heldout", "heldout")):
            if splits is None or name in splits:
                ev = shapes_eval_set(level="one", split=split, n=n, seed=seed, size=size)
                out[name] = (ev["image"], ev["label"])
        return out, prompts
    if data == "digits":
        from clip_t2i.data.digits import DigitsDataset, canonical_caption_list

        ds = DigitsDataset(split="test", size=size, seed=0)
        m = min(n, len(ds))
        idx = torch.randperm(len(ds), generator=torch.Generator(device="cpu").manual_seed(seed))[:m].tolist()
        x = torch.stack([ds[i]["image"] for i in idx])
        y = torch.tensor([int(ds[i]["label"]) for i in idx])
        return {"test": (x, y)}, canonical_caption_list()
    raise UserError(f"robust evaluation data must be one of {', '.join(EVAL_DATA)}, not {data!r}")


def robust_zero_shot(
    clip: ClipModel,
    data: Sequence[str] = ("shapes",),
    *,
    eps: Sequence[float] = (0.5, 1.0, 1.5, 3.0),
    norm: str = "l2",
    attacks: Sequence[str] = ("pgd", "apgd"),
    n: int = 500,
    seed: int = 1234,
    pgd_steps: int = 10,
    apgd_steps: int = 50,
    batch_size: int = 250,
    rescale: bool = True,
    apgd_compat: str = "autoattack",
    progress: bool = False,
) -> dict[str, Any]:
    """Clean and robust zero-shot accuracy per data set, split, attack and ε (see module docstring).

    Returns ``{"norm", "eps_convention", "eps": {ε_224: ε_eff}, ["apgd": "autoattack-compatible" | "paper"],
    <data>: {<split>: {"n", "clean", <attack>: {ε_224: acc}}}}`` (``"apgd"`` when APGD ran). Every (attack, ε)
    draws its random starts from ``seed``. ``progress`` shows a bar whose units are attacked images x attack
    steps (so its ETA weighs a 50-step APGD run 50 times a clean pass).
    """
    from clip_t2i.robust.finetune import effective_eps

    if n < 1:
        raise UserError("--n must be ≥ 1")
    bad = [a for a in attacks if a not in ("pgd", "apgd")]
    if bad or not attacks:
        raise UserError(f"unknown attack {bad[0] if bad else ''!r}; use pgd, apgd")
    if not eps or any(not e > 0 for e in eps):
        raise UserError("every --eps must be > 0")
    if apgd_compat not in COMPAT_MODES:
        raise UserError(f"unknown --apgd-compat {apgd_compat!r}; use one of {', '.join(COMPAT_MODES)}")
    eff = {f"{e:g}": (effective_eps(e, clip.image_size, norm) if rescale else effective_eps(e, 224, norm)) for e in eps}
    result: dict[str, Any] = {"norm": norm, "eps_convention": 224 if rescale else "native", "eps": eff}
    if "apgd" in attacks:
        result["apgd"] = APGD_LABELS[apgd_compat]
    clip.eval()
    device = clip.logit_scale.device
    from tqdm.auto import tqdm

    bar = tqdm(total=0, desc="eval-robust", unit="img-step", disable=not progress, dynamic_ncols=True)
    per_image = 1 + sum(pgd_steps if a == "pgd" else apgd_steps for a in attacks) * len(eff)
    loaded = [(d, *labelled_eval_sets(d, clip.image_size, n=n, seed=seed)) for d in data]
    bar.total = sum(len(y) * per_image for _, sets, _ in loaded for _, y in sets.values())
    bar.refresh()
    for d, sets, prompts in loaded:
        clf = zero_shot_classifier(clip, prompts)
        result[d] = {}
        for split, (x, y) in sets.items():
            x, y = x.to(device), y.to(device)
            res: dict[str, Any] = {"n": int(len(y)), "clean": clean_accuracy(clf, x, y, batch_size=batch_size)}
            bar.update(len(y))
            for attack in attacks:
                steps = pgd_steps if attack == "pgd" else apgd_steps
                res[attack] = {}
                for key, e in eff.items():
                    res[attack][key] = robust_accuracy(
                        clf,
                        x,
                        y,
                        eps=e,
                        norm=norm,
                        attack=attack,
                        steps=steps,
                        batch_size=batch_size,
                        generator=seed,
                        compat=apgd_compat,
                    )
                    bar.update(len(y) * steps)
            result[d][split] = res
    bar.close()
    return result
