"""Publish a trained CLIP run into the zoo (fp16) with its model card.

Usage: python scripts/publish_clip.py NAME RUN_DIR EVAL_DATA "TRAIN COMMAND" "DESCRIPTION" ["NOTES"]
"""

import json
import sys
from pathlib import Path

from clip_t2i import zoo
from clip_t2i.backbones import load_clip
from clip_t2i.metrics.zeroshot import evaluate_clip

name, run, data, command, desc = sys.argv[1:6]
clip = load_clip(Path(run) / "final.safetensors")
log = [json.loads(line) for line in open(Path(run) / "train.log") if line.startswith("{")]
done = [rec for rec in log if rec.get("done")][-1]
clip.config["name"] = name
dst = zoo.zoo_dir() / f"{name}.safetensors"
clip.save(dst, half=True)
fp16 = load_clip(dst)
metrics = evaluate_clip(fp16, data.split(","), n=1000)
params = sum(p.numel() for p in fp16.parameters())
metrics["params"] = params
metrics["steps"] = done["step"]
zoo.write_entry(
    name,
    kind="clip",
    metrics=metrics,
    command=command,
    train_time_s=done["elapsed_s"],
    description=desc,
    notes=(f"Metrics are measured on the fp16 file shipped here (`clip-t2i eval-clip --model {name} --json`). ")
    + (sys.argv[6] if len(sys.argv) > 6 else ""),
)
print(json.dumps(metrics))
