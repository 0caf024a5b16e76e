"""Zero-shot evaluation of a CLIP on the built-in data: per-attribute and exact-caption accuracy, retrieval.

Shapes: each image is classified among the canonical captions of *all* combinations of its level (seen and
held-out), so held-out images test compositional generalisation; an attribute counts as correct when the
predicted caption's attribute equals the truth. Digits: ten canonical captions.
Retrieval (R@k) pairs every image with a natural (paraphrased) caption; a hit is a retrieved item of the same
ground-truth label, since several pairs in a set can share one.
"""

from __future__ import annotations

import torch

from clip_t2i.backbones import ClipModel


@torch.no_grad()
def _encode_images(clip: ClipModel, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    dev = clip.mean.device
    return torch.cat([clip.encode_image(images[i : i + batch].to(dev)) for i in range(0, len(images), batch)])


@torch.no_grad()
def _encode_texts(clip: ClipModel, texts: list[str], batch: int = 512) -> torch.Tensor:
    return torch.cat([clip.encode_text(texts[i : i + batch]) for i in range(0, len(texts), batch)])


def retrieval(img: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """Image→text and text→image recall@k where any item with the same label counts as a hit."""
    sims = img @ txt.T
    same = labels[:, None] == labels[None, :]
    out = {}
    for k in ks:
        k_eff = min(k, sims.shape[1])
        top_t = sims.topk(k_eff, dim=1).indices
        out[f"i2t_r{k}"] = same.gather(1, top_t).any(1).float().mean().item()
        top_i = sims.T.topk(k_eff, dim=1).indices
        out[f"t2i_r{k}"] = same.T.gather(1, top_i).any(1).float().mean().item()
    return out


def zero_shot_shapes(
    clip: ClipModel, level: str = "one", n: int = 1000, seed: int = 1234, with_retrieval: bool = True
) -> dict[str, dict[str, float]]:
    """Accuracy on seen (``train`` split) and held-out combinations of the shapes world."""
    from clip_t2i.data.shapes import ShapesWorld, shapes_eval_set

    world = ShapesWorld(size=clip.image_size, level=level, split="all")
    combos = world.all_combinations()
    text_emb = _encode_texts(clip, world.canonical_caption_list())
    attr_names = list(combos[0].keys())
    table = {a: torch.tensor([c[a] if isinstance(c[a], int) else hash(c[a]) for c in combos]) for a in attr_names}
    result: dict[str, dict[str, float]] = {}
    for split, name in (("train", "seen"), ("heldout", "heldout")):
        ev = shapes_eval_set(level=level, split=split, n=n, seed=seed, size=clip.image_size)
        img = _encode_images(clip, ev["image"])
        pred = (img @ text_emb.T).argmax(1).cpu()
        label = ev["label"].cpu()
        res = {"exact": (pred == label).float().mean().item(), "n": float(len(label))}
        for a in attr_names:
            res[a] = (table[a][pred] == table[a][label]).float().mean().item()
        result[name] = res
        if with_retrieval and split == "train":
            gen = torch.Generator().manual_seed(seed + 1)
            nat = world.captions(ev["scenes"], gen) if "scenes" in ev else ev["caption"]
            result["retrieval"] = retrieval(img, _encode_texts(clip, nat), label.to(img.device))
    return result


def zero_shot_digits(clip: ClipModel, with_retrieval: bool = True, seed: int = 1234) -> dict[str, float]:
    """Zero-shot digit accuracy on the held-out test split of scikit-learn's digits."""
    from clip_t2i.data.digits import DigitsDataset, canonical_caption

    ds = DigitsDataset(split="test", size=clip.image_size, seed=0)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    labels = torch.tensor([ds[i]["label"] for i in range(len(ds))])
    text_emb = _encode_texts(clip, [canonical_caption(d) for d in range(10)])
    img = _encode_images(clip, images)
    pred = (img @ text_emb.T).argmax(1).cpu()
    out = {"accuracy": (pred == labels).float().mean().item(), "n": float(len(labels))}
    if with_retrieval:
        caps = [ds[i]["caption"] for i in range(len(ds))]
        out.update(retrieval(img, _encode_texts(clip, caps), labels.to(img.device)))
    return out


def evaluate_clip(clip: ClipModel, data: list[str], n: int = 1000, seed: int = 1234) -> dict:
    """Run every requested evaluation (``shapes``, ``shapes2``, ``digits``) into one dict."""
    out: dict = {}
    for d in data:
        if d == "shapes":
            out["shapes"] = zero_shot_shapes(clip, "one", n=n, seed=seed)
        elif d == "shapes2":
            out["shapes2"] = zero_shot_shapes(clip, "two", n=n, seed=seed)
        elif d == "digits":
            out["digits"] = zero_shot_digits(clip, seed=seed)
        else:
            from clip_t2i.errors import UserError

            raise UserError(f"--data must be shapes, shapes2 or digits, not {d!r}")
    return out


def quick_zero_shot(clip: ClipModel, data: str) -> dict[str, float]:
    """A small, fast evaluation for training logs (empty for data without ground truth)."""
    if data in ("shapes", "shapes2"):
        r = zero_shot_shapes(clip, "one" if data == "shapes" else "two", n=300, with_retrieval=False)
        return {"seen_exact": r["seen"]["exact"], "heldout_exact": r["heldout"]["exact"]}
    if data == "digits":
        return {"digits_acc": zero_shot_digits(clip, with_retrieval=False)["accuracy"]}
    return {}
