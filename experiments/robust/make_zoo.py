"""Package a robust fine-tuning run as a zoo entry: fp16 weights, metrics JSON, model card.

    python experiments/robust/make_zoo.py RUN_DIR NAME --base shapes-clip --command "clip-t2i robustify ..."

RUN_DIR is a ``clip-t2i robustify`` run (``config.json`` + ``train.log``) or the last stage of an
``align_proto.py`` chain (``args.json`` + ``log.jsonl``; give the whole chain's time with ``--train-seconds``).

Measures (same seeds as the README): clean/robust zero-shot accuracy with ``robust_zero_shot`` (PGD-10 and
APGD-CE-50, n=500 per split), PAG alignment (n=300) of the fp16 model and of the base model, and the
fp16 file size. Writes ``src/clip_t2i/zoo/NAME.{safetensors,json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from clip_t2i.backbones import load_clip
from clip_t2i.robust.evaluate import robust_zero_shot
from clip_t2i.robust.finetune import effective_eps
from clip_t2i.robust.pag import pag_alignment
from clip_t2i.utils.io import atomic_write_text

ZOO = Path(__file__).resolve().parents[2] / "src" / "clip_t2i" / "zoo"


def measure(model: str, data: str, eps: list[float], n: int, attacks: tuple[str, ...] = ("pgd", "apgd")) -> dict:
    clip = load_clip(model).eval()
    out = {"robust": robust_zero_shot(clip, [data], eps=eps, n=n, attacks=attacks, apgd_steps=50)}
    if data == "shapes":
        out["pag"] = pag_alignment(clip, n=300, seed=0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("name")
    ap.add_argument("--base", required=True, help="the vanilla model it was fine-tuned from")
    ap.add_argument("--data", default="shapes")
    ap.add_argument("--command", required=True)
    ap.add_argument("--eps", default="1.5,4,8")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--attacks", default="pgd,apgd", help="pgd (10 steps) and/or apgd (50 steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-seconds", type=float, default=None, help="override (e.g. a chain of align stages)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run_dir)
    clip = load_clip(run / "final.safetensors")
    aligned = not (run / "config.json").exists()
    if aligned:  # an align_proto.py stage
        cfg = json.loads((run / "args.json").read_text())
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
        train_s = log[-1]["s"] if log else None
        # align_proto.py trains on the shapes world; older stages did not record it in the config
        clip.config.setdefault("train_data", args.data)
        clip.config.setdefault(
            "robust", {"objective": "align", "align": cfg["align"], "clip_weight": cfg["clip_weight"]}
        )
    else:
        cfg = json.loads((run / "config.json").read_text())
        log = [json.loads(line) for line in (run / "train.log").read_text().splitlines() if line.startswith("{")]
        train_s = next((r["elapsed_s"] for r in reversed(log) if r.get("done")), None)
    if args.train_seconds is not None:
        train_s = args.train_seconds
    weights = ZOO / f"{args.name}.safetensors"
    clip.save(weights, half=True, extra={"base": args.base, "train_seconds": str(train_s)})
    eps = [float(e) for e in args.eps.split(",")]
    attacks = tuple(a for a in args.attacks.split(",") if a)
    mine = measure(str(weights), args.data, eps, args.n, attacks)  # the fp16 file (not yet listed in the zoo)
    base = measure(args.base, args.data, eps, args.n, attacks)
    splits = mine["robust"][args.data]
    metrics: dict = {
        "train_seconds": train_s,
        "eps_224": cfg["eps"] if cfg.get("adv", 1) else None,  # an align stage without an adversarial term has none
        "eps_effective": effective_eps(cfg["eps"], clip.image_size) if cfg.get("adv", 1) else None,
        "robust": mine["robust"],
        "base_robust": base["robust"],
    }
    if "pag" in mine:
        metrics["pag"] = {"alignment": mine["pag"]["alignment"], "smoothed": mine["pag"]["smoothed"]}
        metrics["base_pag"] = {"alignment": base["pag"]["alignment"], "smoothed": base["pag"]["smoothed"]}
    entry = {"file": weights.name, "kind": "clip", "metrics": metrics, "command": args.command}
    atomic_write_text(ZOO / f"{args.name}.json", json.dumps(entry, indent=2) + "\n")
    size_kb = weights.stat().st_size / 1024
    head = [f"# {args.name}", ""]
    if aligned:
        head += [
            f"Gradient-aligned robust CLIP for generator-free text-to-image: a {clip.config['name']} image tower "
            f"trained against `{args.base}`'s frozen text tower so that its input gradient points at the prompt's "
            f"render (experiments/robust/align_proto.py, in the spirit of PAG-ROB). {clip.image_size}x"
            f"{clip.image_size} input; fp16 safetensors, {size_kb:.0f} KiB.",
            "",
            f"- last stage: λ_align {cfg['align']}, clean weight {cfg['clip_weight']}, adversarial weight "
            f"{cfg['adv']}"
            + (f" at L2 ε {cfg['eps']} (224²)" if cfg["adv"] else "")
            + f"; {cfg['steps']} steps × batch {cfg['batch']}, lr {cfg['lr']}, seed {cfg['seed']}",
            f"- training time: {train_s} s, 1 CPU thread (every stage; see experiments/robust/README.md)",
            "",
        ]
    else:
        head += [
            f"Robust (adversarially fine-tuned) CLIP for generator-free text-to-image, fine-tuned from `{args.base}` "
            f"with its text tower frozen (image tower trained). {clip.config['name']} architecture, "
            f"{clip.image_size}x{clip.image_size} input; fp16 safetensors, {size_kb:.0f} KiB.",
            "",
            f"- objective: {cfg['objective']}; attack: {cfg['attack']}"
            + (f" (m = {cfg['free_replays']})" if cfg["attack"] == "free" else "")
            + (f" (k = {cfg['attack_steps']})" if cfg["attack"] == "pgd" else "")
            + f"; {cfg['norm']} ε = {cfg['eps']} at 224² → {metrics['eps_effective']:.3f} at {clip.image_size}²",
            f"- {cfg['steps']} steps × batch {cfg['batch_size']}, AdamW lr {cfg['lr']}, wd {cfg['weight_decay']}, "
            f"warm-up {cfg['warmup_steps']}, clean weight {cfg['clean_weight']}",
            f"- training time: {train_s} s on 2 shared CPU cores (see experiments/robust/README.md)",
            "",
        ]
    labels = {"pgd": "PGD-10", "apgd": "APGD-50"}
    cols = [(a, labels[a], e) for a in attacks for e in eps]
    lines = head + [
        "## Reproduce",
        "",
        "```",
        args.command,
        f"python experiments/robust/make_zoo.py {args.run_dir} {args.name} --base {args.base} --data {args.data} "
        f"--eps {args.eps} --n {args.n} --attacks {args.attacks} --command '...'",
        "```",
        "",
        "## Zero-shot accuracy, clean and robust (n = "
        + ", ".join(f"{splits[sp]['n']} {sp}" for sp in splits)
        + " images, seed 1234)",
        "",
        "| split | model | clean | " + " | ".join(f"{label} ε={e:g}" for _, label, e in cols) + " |",
        "|---" * (3 + len(cols)) + "|",
    ]
    for split in splits:
        for who, res in ((args.name, mine["robust"]), (args.base, base["robust"])):
            r = res[args.data][split]
            lines.append(
                f"| {split} | {who} | {r['clean']:.3f} | "
                + " | ".join(f"{r[key][f'{e:g}']:.3f}" for key, _, e in cols)
                + " |"
            )
    if "pag" in mine:
        lines += [
            "",
            "## PAG alignment (n = 300 one-attribute edits, seed 0)",
            "",
            "| model | colour | shape | position | mean | mean σ=1 | mean σ=2 | mean σ=4 |",
            "|---" * 8 + "|",
        ]
        for who, p in ((args.name, mine["pag"]), (args.base, base["pag"])):
            a, s = p["alignment"], p["smoothed"]
            lines.append(
                f"| {who} | {a['colour']:.4f} | {a['shape']:.4f} | {a['position']:.4f} | {a['mean']:.4f} | "
                + " | ".join(f"{s[k]['mean']:.4f}" for k in ("1", "2", "4"))
                + " |"
            )
    lines += [
        "",
        "ε in the 224×224 convention (rescaled by √(pixels/224²)); L2 norm; exact-caption accuracy "
        "among all captions of the level (digits: 10 classes).",
        "",
    ]
    atomic_write_text(ZOO / f"{args.name}.md", "\n".join(lines))
    print(json.dumps({"written": str(weights), "kb": round(size_kb), "metrics": metrics}, default=float)[:3000])


if __name__ == "__main__":
    main()
