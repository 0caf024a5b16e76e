#!/usr/bin/env bash
# Equal-budget comparison: each variant trains the same number of steps (batch 32, 1 thread, seed 0).
# Usage (from the repo root), two lanes in parallel on a 2-core machine:
#   VARIANTS="galip scad-mi" nohup experiments/gan/compare_equal.sh > runs/gan-eq-a.out 2>&1 &
#   VARIANTS="scad scad-dd"  nohup experiments/gan/compare_equal.sh > runs/gan-eq-b.out 2>&1 &
#   python experiments/gan/evaluate_final.py runs/gan-{galip,scad,scad-mi,scad-dd}-eq --json
set -euo pipefail
CLIP=${CLIP:-runs/shapes-clip/final.safetensors}
STEPS=${STEPS:-2000}
VARIANTS=${VARIANTS:-"galip scad scad-mi scad-dd"}
TAG=${TAG:-eq}
for v in $VARIANTS; do
  OMP_NUM_THREADS=1 .venv/bin/clip-t2i train-gan --variant "$v" --clip "$CLIP" --out "runs/gan-$v-$TAG" \
    --steps "$STEPS" --batch-size 32 --threads 1 --seed 0 \
    --eval-every 500 --sample-every 500 --ckpt-every 250 --eval-judge "${EVAL_JUDGE:-auto}" --no-progress
done
