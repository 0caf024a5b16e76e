"""Export a trained GAN run as a zoo entry (fp16 generator referencing the zoo CLIP) with its final metrics.

Usage: ``python experiments/gan/make_zoo.py RUN --name shapes-scad [--clip-ref shapes-clip]
[--folder src/clip_t2i/zoo] [--command "clip-t2i train-gan ..."] [--step N]``

``--step N`` exports the run's checkpoint of step N (its EMA generator) with the periodic evaluation of that step,
for a run that is still training or was stopped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clip_t2i.gan.model import export_zoo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", default="shapes-scad")
    ap.add_argument("--clip-ref", default="shapes-clip")
    ap.add_argument("--folder", type=Path, default=Path("src/clip_t2i/zoo"))
    ap.add_argument("--command", default="")
    ap.add_argument(
        "--eval-json",
        type=Path,
        default=None,
        help="`clip-t2i eval-gan --json` output holding this run (else the run's last periodic eval)",
    )
    ap.add_argument("--step", type=int, default=None, help="export checkpoints/step_N instead of final.safetensors")
    args = ap.parse_args()
    source = args.run / "final.safetensors"
    if args.step is not None:
        source = args.run / "checkpoints" / f"step_{args.step:07d}" / "model.safetensors"
    if not source.is_file():
        raise SystemExit(f"error: {source} does not exist")
    if args.eval_json is not None:
        rows = json.loads(args.eval_json.read_text())["results"]
        row = next(r for r in rows if Path(r["gan"]).resolve() == args.run.resolve())
        metrics = {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    else:
        evals = [json.loads(ln) for ln in (args.run / "eval.jsonl").read_text().splitlines() if ln.strip()]
        if args.step is not None:
            evals = [r for r in evals if r["step"] == args.step]
        metrics = {k: v for k, v in evals[-1].items() if isinstance(v, int | float)} if evals else {}
    cfg = json.loads((args.run / "config.json").read_text())
    command = args.command or (
        f"clip-t2i train-gan --variant {cfg['variant']} --clip {args.clip_ref} --steps {args.step or cfg['steps']} "
        f"--batch-size {cfg['batch_size']} --seed {cfg['seed']} --threads 1"
        + "".join(f" --set {o}" for o in cfg.get("overrides", []))
    )
    print(export_zoo(source, args.name, args.folder, clip_ref=args.clip_ref, metrics=metrics, command=command))


if __name__ == "__main__":
    main()
