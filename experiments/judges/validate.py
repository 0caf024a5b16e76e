"""Validation of the new judges against the legacy CNN judges; writes ``validation.json`` and image grids.

Sections (all seeds fixed, 1 torch thread):

* ``clean`` — 2,400 world renders (all 240 combinations x 10, nuisance variation) and the digits test split;
* ``probes`` — grey, uniform noise, Gaussian blobs, stripes, checkers (and washed-out colours), each with a
  random world caption / digit prompt: how often each judge calls them correct;
* ``adversarial`` — targeted L2 PGD (100 steps) from clean renders toward a wrong caption (one of colour, shape,
  position changed), against the guiding CLIPs (``shapes-clipag``, ``shapes-clip``; zero-shot over the 240 canonical
  captions) and the legacy shapes CNN; digits test images toward digit (y + 1) mod 10 against the legacy digits CNN.
  For every image: which verdict the legacy and the new judge give (source, target, other, unrecognised);
* ``readback`` — mean absolute error of every fitted nuisance factor on the clean renders (and on augmented ones);
* ``features`` — how much each mPPD feature space sees the nuisance factors (within-label / between-label cosine
  distance on world renders).

    python experiments/judges/validate.py [--n-adv 120] [--out experiments/judges]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_t2i.data.digits import DigitsDataset, canonical_caption
from clip_t2i.data.shapes import COLOURS, POSITIONS, SHAPES, ShapesWorld, shapes_eval_set
from clip_t2i.metrics.judges.cnn import SHAPES_ATTRIBUTES, load_judge
from clip_t2i.metrics.judges.probes import PROBE_KINDS, probe_images, washed_out_renders
from clip_t2i.metrics.judges.scoring import default_shapes_judge, judge_digits, judge_shapes
from clip_t2i.metrics.judges.training import judge_augment

ATTRS = ("colour", "shape", "position")
WORLD = ShapesWorld(size=64, level="one", split="all")
CAPTIONS = WORLD.canonical_caption_list()


def _attrs_of(label: Tensor) -> dict[str, Tensor]:
    p = label % 5
    z = label // 5 % 2
    s = label // 10 % 4
    c = label // 40
    return {"colour": c, "shape": s, "size": z, "position": p}


def _verdict_shapes(images: Tensor, src: Tensor, tgt: Tensor) -> dict[str, Any]:
    """Legacy vs new verdicts on images made from ``src`` labels and pushed toward ``tgt`` labels."""
    old = load_judge("shapes-judge").predict(images)
    fit = default_shapes_judge().fit(images)
    a_src, a_tgt = _attrs_of(src), _attrs_of(tgt)

    def rates(pred: dict[str, Tensor], rec: Tensor | None) -> dict[str, float]:
        is_src = torch.stack([pred[k] == a_src[k] for k in ATTRS]).all(0)
        is_tgt = torch.stack([pred[k] == a_tgt[k] for k in ATTRS]).all(0)
        rec = torch.ones_like(is_src) if rec is None else rec
        out = {
            "source": float((rec & is_src).float().mean()),
            "target": float((rec & is_tgt).float().mean()),
            "unrecognised": float((~rec).float().mean()),
        }
        out["other"] = max(0.0, round(1 - sum(out.values()), 4))
        return {k: round(v, 4) for k, v in out.items()}

    new_pred = {k: getattr(fit, k) for k in SHAPES_ATTRIBUTES}
    return {
        "legacy": rates(old, None),
        "new": rates(new_pred, fit.recognised),
        "_old": old,
        "_fit": fit,
    }


def _tile_labels(old: dict[str, Tensor], fit, i: int) -> tuple[str, str]:
    o = f"old {COLOURS[old['colour'][i]]} {SHAPES[old['shape'][i]]} {POSITIONS[old['position'][i]]}"
    if bool(fit.recognised[i]):
        n = f"new {COLOURS[fit.colour[i]]} {SHAPES[fit.shape[i]]} {POSITIONS[fit.position[i]]}"
    else:
        n = "new: unrecognisable"
    return o, n


def save_grid(path: Path, rows: list[tuple[str, Tensor, list[tuple[str, ...]]]], tile: int = 96) -> None:
    """Rows of images with a row title and per-tile text lines under each tile."""
    from PIL import Image, ImageDraw

    from clip_t2i.renderers.outputs import to_uint8

    ncol = max(len(imgs) for _, imgs, _ in rows)
    text_h, title_h, pad = 40, 14, 4
    w = ncol * (tile + pad) + pad
    h = len(rows) * (title_h + tile + text_h + pad) + pad
    fig = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(fig)
    y = pad
    for title, imgs, texts in rows:
        draw.text((pad, y), title, fill="black")
        y += title_h
        for j, img in enumerate(imgs):
            x = pad + j * (tile + pad)
            big = F.interpolate(img[None].float(), size=(tile, tile), mode="nearest")[0]
            fig.paste(Image.fromarray(to_uint8(big)), (x, y))
            for k, line in enumerate(texts[j]):
                draw.text((x, y + tile + 1 + 12 * k), line[:17], fill="black")
        y += tile + text_h + pad
    fig.save(path)


# --------------------------------------------------------------------------------------------------- sections
def clean_section() -> dict[str, Any]:
    data = shapes_eval_set("one", "all", n=2400, seed=31337)
    new = judge_shapes(data["image"], data["caption"], all_attributes=SHAPES_ATTRIBUTES)
    old = judge_shapes(data["image"], data["caption"], judge="legacy", all_attributes=SHAPES_ATTRIBUTES)
    test = DigitsDataset(split="test", size=32)
    dprompts = [canonical_caption(int(y)) for y in test.labels]
    dimg = test.images.expand(-1, 3, -1, -1)
    dn, do = judge_digits(dimg, dprompts), judge_digits(dimg, dprompts, judge="legacy")
    return {
        "shapes": {"n": 2400, "new": new.accuracy, "legacy": old.accuracy},
        "digits": {"n": len(test), "new": dn.accuracy, "legacy": do.accuracy},
        "_data": data,
        "_fit": new.fit,  # type: ignore[attr-defined]
    }


def probes_section(n: int, out: Path) -> dict[str, Any]:
    g = torch.Generator().manual_seed(99)
    res: dict[str, Any] = {"shapes": {}, "digits": {}}
    grid_rows = []
    for kind in (*PROBE_KINDS, "washed_out"):
        if kind == "washed_out":
            wo = washed_out_renders(n, seed=99)
            images, labels = wo["image"], wo["label"]
        else:
            images = probe_images(kind, n, seed=99)
            labels = torch.randint(240, (n,), generator=g)
        prompts = [CAPTIONS[int(i)] for i in labels]
        new = judge_shapes(images, prompts)
        old = judge_shapes(images, prompts, judge="legacy")
        oldp_all = load_judge("shapes-judge").predict(images)
        res["shapes"][kind] = {
            "legacy_shape_calls": {
                SHAPES[k]: round(float((oldp_all["shape"] == k).float().mean()), 3) for k in range(len(SHAPES))
            },
            "recognised": new.accuracy["recognised"],
            "new_all": new.accuracy["all"],
            "legacy_all": old.accuracy["all"],
            "new_colour": new.accuracy["colour"],
            "legacy_colour": old.accuracy["colour"],
        }
        texts = [(*_tile_labels(oldp_all, new.fit, i), "") for i in range(8)]  # type: ignore[attr-defined]
        grid_rows.append((f"{kind} (prompted: random captions)", images[:8], texts))
        if kind == "washed_out":
            continue
        dimages = probe_images(kind, n, size=32, seed=99, colour=False)
        digits = torch.randint(10, (n,), generator=g)
        dprompts = [canonical_caption(int(d)) for d in digits]
        dn, do = judge_digits(dimages, dprompts), judge_digits(dimages, dprompts, judge="legacy")
        res["digits"][kind] = {
            "recognised": dn.accuracy["recognised"],
            "new_digit": dn.accuracy["digit"],
            "legacy_digit": do.accuracy["digit"],
        }
    save_grid(out / "probes_shapes.png", grid_rows)
    return res


def _clip_attack(clip_name: str, images: Tensor, tgt: Tensor, eps: float, steps: int) -> tuple[Tensor, float]:
    from clip_t2i.backbones import load_clip
    from clip_t2i.robust.attacks import ZeroShotClassifier, pgd

    clip = load_clip(clip_name).eval()
    with torch.no_grad():
        text = torch.cat([clip.encode_text(CAPTIONS[i : i + 60]) for i in range(0, 240, 60)])
    zs = ZeroShotClassifier(clip, text).eval()
    for p in zs.parameters():
        p.requires_grad_(False)
    x_adv = torch.cat(
        [
            pgd(
                lambda xa, t=t: F.cross_entropy(zs(xa), t, reduction="none"),
                xb,
                eps=eps,
                steps=steps,
                targeted=True,
                generator=torch.Generator().manual_seed(0),
            )
            for xb, t in zip(images.split(40), tgt.split(40), strict=True)
        ]
    )
    with torch.no_grad():
        success = float((zs(x_adv).argmax(1) == tgt).float().mean())
    return x_adv, success


def _cnn_attack(images: Tensor, tgt: Tensor, eps: float, steps: int) -> tuple[Tensor, float]:
    from clip_t2i.robust.attacks import eval_mode, pgd

    cnn = load_judge("shapes-judge")
    a = _attrs_of(tgt)
    for p in cnn.parameters():
        p.requires_grad_(False)

    def loss(xa: Tensor, idx: slice) -> Tensor:
        out = cnn(xa)
        return sum(F.cross_entropy(out[k], a[k][idx], reduction="none") for k in SHAPES_ATTRIBUTES)

    with eval_mode(cnn):
        chunks = []
        for start in range(0, len(images), 40):
            sl = slice(start, start + 40)
            chunks.append(pgd(lambda xa, sl=sl: loss(xa, sl), images[sl], eps=eps, steps=steps, targeted=True))
        x_adv = torch.cat(chunks)
    pred = cnn.predict(x_adv)
    success = float(torch.stack([pred[k] == a[k] for k in ATTRS]).all(0).float().mean())
    return x_adv, success


def adversarial_section(n: int, out: Path, steps: int = 100) -> dict[str, Any]:
    g = torch.Generator().manual_seed(2718)
    src = torch.randperm(240, generator=g)[:n]
    sa = _attrs_of(src)
    # target: the source caption with ONE attribute changed (colour, shape, position in turn) — a wrong caption
    which = torch.arange(n) % 3
    tc = torch.where(which == 0, (sa["colour"] + torch.randint(1, 6, (n,), generator=g)) % 6, sa["colour"])
    ts = torch.where(which == 1, (sa["shape"] + torch.randint(1, 4, (n,), generator=g)) % 4, sa["shape"])
    tp = torch.where(which == 2, (sa["position"] + torch.randint(1, 5, (n,), generator=g)) % 5, sa["position"])
    tgt = ((tc * 4 + ts) * 2 + sa["size"]) * 5 + tp
    scenes = WORLD.sample_scenes(n, g, labels=src)
    images = WORLD.render(scenes)
    res: dict[str, Any] = {"n": n, "steps": steps, "eps_convention": "L2 at 64x64 (x 3.5 = the 224x224 convention)"}
    rows = []
    for target, eps in (
        ("shapes-clip", 1.5),
        ("shapes-clip", 4.0),
        ("shapes-clipag", 4.0),
        ("shapes-clipag", 8.0),
        ("shapes-judge (legacy CNN)", 1.5),
        ("shapes-judge (legacy CNN)", 4.0),
    ):
        t0 = time.perf_counter()
        if target.startswith("shapes-judge"):
            x_adv, success = _cnn_attack(images, tgt, eps, steps)
        else:
            x_adv, success = _clip_attack(target, images, tgt, eps, steps)
        v = _verdict_shapes(x_adv, src, tgt)
        key = f"{target} eps={eps}"
        res[key] = {
            "attack_success": round(success, 4),
            "legacy": v["legacy"],
            "new": v["new"],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        texts = []
        for i in range(8):
            o, nw = _tile_labels(v["_old"], v["_fit"], i)
            texts.append((f"src {COLOURS[sa['colour'][i]]} {SHAPES[sa['shape'][i]]}", o, nw))
        rows.append(
            (
                f"targeted PGD vs {key} (source render -> a caption with one attribute changed)",
                x_adv[:8],
                texts,
            )
        )
        print(json.dumps({key: res[key]}), flush=True)
    rows.insert(0, ("clean sources", images[:8], [(CAPTIONS[int(s)][2:],) for s in src[:8]]))
    save_grid(out / "adversarial_shapes.png", rows)
    # digits: targeted PGD against the legacy digits CNN
    from clip_t2i.robust.attacks import PGD

    test = DigitsDataset(split="test", size=32)
    x, y = test.images[:n].expand(-1, 3, -1, -1).contiguous(), test.labels[:n]
    ty = (y + 1) % 10
    old = load_judge("digits-judge")
    for eps in (1.0, 2.0):
        x_adv = PGD(old, eps=eps, steps=steps, targeted=True)(x, ty)
        dn = judge_digits(x_adv, [canonical_caption(int(t)) for t in ty])
        do = judge_digits(x_adv, [canonical_caption(int(t)) for t in ty], judge="legacy")
        ds = judge_digits(x_adv, [canonical_caption(int(t)) for t in y])
        res[f"digits-judge (legacy CNN) eps={eps}"] = {
            "legacy_says_target": do.accuracy["digit"],
            "new_says_target": dn.accuracy["digit"],
            "new_says_source": ds.accuracy["digit"],
            "new_recognised": dn.accuracy["recognised"],
        }
    return res


def generated_section(folders: list[str], out: Path) -> dict[str, Any]:
    """Legacy vs new verdicts on folders of generated PNGs (prompt metadata), with a grid per folder."""
    from clip_t2i.metrics.report import domain_of, read_folder

    res: dict[str, Any] = {}
    for folder in folders:
        data = read_folder(folder)
        prompts = data.prompts
        domain = domain_of(prompts)
        fn = judge_shapes if domain == "shapes" else judge_digits
        new, old = fn(data.images, prompts), fn(data.images, prompts, judge="legacy")
        name = Path(folder).name
        res[name] = {"n": len(prompts), "domain": domain, "new": new.accuracy, "legacy": old.accuracy}
        texts = []
        for rn, ro in zip(new.per_image[:10], old.per_image[:10], strict=True):
            if domain == "shapes":
                o = f"old {ro['pred_colour']} {ro['pred_shape']} {ro['pred_position']}"
                nw = f"new {rn['pred_colour']} {rn['pred_shape']}" if rn["recognised"] else "new: unrecognisable"
            else:
                o = f"old {ro['pred_digit']}"
                nw = (
                    f"new {rn['pred_digit']} (d {rn['distance']:.1f})"
                    if rn["recognised"]
                    else f"new: unrec. d {rn['distance']:.1f}"
                )
            texts.append((rn["prompt"].replace("a handwritten digit ", "digit ")[2:], o, nw))
        save_grid(out / f"generated_{name}.png", [(f"{name}: prompt / legacy / new", data.images[:10], texts)])
    return res


def readback_section(data: dict[str, Any], fit) -> dict[str, Any]:
    sc = data["scenes"]
    true = {
        "offset_x": sc.offset[:, 0, 0],
        "offset_y": sc.offset[:, 0, 1],
        "scale": sc.scale[:, 0],
        "rotation": sc.rotation[:, 0],
        "bg_level": sc.bg_level,
        "bg_tint_r": sc.bg_tint[:, 0],
        "bg_tint_g": sc.bg_tint[:, 1],
        "bg_tint_b": sc.bg_tint[:, 2],
        "bg_gradient_x": sc.bg_gradient[:, 0],
        "bg_gradient_y": sc.bg_gradient[:, 1],
    }
    out: dict[str, Any] = {}
    aug = default_shapes_judge().fit(judge_augment(data["image"], torch.Generator().manual_seed(5)))
    for name, f in (("clean", fit), ("augmented", aug)):
        fac = f.factors()
        row = {}
        for k, t in true.items():
            keep = ~torch.isnan(fac[k])
            err = (fac[k][keep] - t[keep]).abs().mean()
            row[k] = round(float(err), 5)
        row["rotation_deg"] = round(float(torch.rad2deg(torch.tensor(row["rotation"]))), 3)
        row["spread_in_world"] = {k: round(float(t.std()), 4) for k, t in true.items()}
        out[name] = row
    return out


def features_section() -> dict[str, float]:
    from clip_t2i.metrics.features import extract_features
    from clip_t2i.metrics.judges.diversity import pixel_feature_extractor
    from clip_t2i.metrics.report import feature_extractor

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(0, 240, 10).repeat_interleave(16)
    x = WORLD.render(WORLD.sample_scenes(len(labels), g, labels=labels))
    out = {}
    for spec in ("judge", "clip:shapes-clip", "clip:shapes-clip-rn", "pixels16"):
        ext = pixel_feature_extractor() if spec == "pixels16" else feature_extractor(spec, "shapes")
        f = F.normalize(extract_features(ext, x, batch_size=128).float(), dim=1).view(24, 16, -1)
        within = ((1 - torch.einsum("gid,gjd->gij", f, f)).sum((1, 2)) / (16 * 15)).mean()
        m = F.normalize(f.mean(1), dim=1)
        between = (1 - m @ m.T).sum() / (24 * 23)
        out[spec] = round(float(within / between), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-adv", type=int, default=120)
    ap.add_argument("--n-probe", type=int, default=200)
    ap.add_argument("--out", default="experiments/judges")
    ap.add_argument("--sections", default="clean,probes,adversarial,features,generated")
    ap.add_argument("--generated", nargs="*", default=[], help="folders of generated PNGs to judge both ways")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    path = out / "validation.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    sections = args.sections.split(",")

    def save() -> None:
        path.write_text(json.dumps(result, indent=1) + "\n")

    if "clean" in sections:
        c = clean_section()
        result["clean"] = {k: v for k, v in c.items() if not k.startswith("_")}
        result["readback"] = readback_section(c["_data"], c["_fit"])
        save()
        print(json.dumps(result["clean"]), flush=True)
    if "probes" in sections:
        result["probes"] = probes_section(args.n_probe, out)
        save()
        print(json.dumps(result["probes"]), flush=True)
    if "features" in sections:
        result["features_within_over_between"] = features_section()
        save()
    if "generated" in sections and args.generated:
        result["generated"] = generated_section(args.generated, out)
        save()
        print(json.dumps(result["generated"]), flush=True)
    if "adversarial" in sections:
        result["adversarial"] = adversarial_section(args.n_adv, out)
        save()


if __name__ == "__main__":
    main()
