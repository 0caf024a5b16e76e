#!/usr/bin/env bash
# Short sanity runs: galip vs scad on shapes (one object, 64x64), one thread, sequential, ~19 min each.
# Usage (from the repo root): nohup experiments/gan/compare_short.sh > runs/gan-short.out 2>&1 &
set -euo pipefail
CLIP=${CLIP:-runs/shapes-clip/final.safetensors}
MINUTES=${MINUTES:-18}        # loop budget; start-up, final checkpoint and final eval add ~1 min
VARIANTS=${VARIANTS:-"galip scad"}
TAG=${TAG:-short}
for v in $VARIANTS; do
  OMP_NUM_THREADS=1 .venv/bin/clip-t2i train-gan --variant "$v" --clip "$CLIP" --out "runs/gan-$v-$TAG" \
    --steps 100000 --max-minutes "$MINUTES" --batch-size 32 --threads 1 --seed 0 \
    --eval-every 300 --sample-every 300 --ckpt-every 300 --eval-judge "${EVAL_JUDGE:-auto}" --no-progress
done
.venv/bin/python experiments/gan/summarize.py $(for v in $VARIANTS; do echo "runs/gan-$v-$TAG"; done)
