#!/usr/bin/env bash
# Issue 16, item 3: the equal-budget comparison at convergence. Every variant × seed is trained to STEPS with the
# evaluator every EVAL steps (the FID-vs-steps curve is each run's eval.jsonl), one run at a time, 1 thread.
# Resumable: re-running continues the unfinished run (--resume) and skips finished ones; raising STEPS later
# extends finished runs from their last checkpoint (the learning rates are constant, so nothing else changes).
#   STEPS=6000 nohup experiments/gan/converge.sh > runs/gan-converge.out 2>&1 &
#   python experiments/gan/summarize.py runs/gan-conv-*        # last eval per run + each run's FID-vs-steps trajectory
set -euo pipefail
CLIP=${CLIP:-shapes-clip}
STEPS=${STEPS:-6000}
EVAL=${EVAL:-500}
SEEDS=${SEEDS:-"0 1"}
VARIANTS=${VARIANTS:-"galip scad-mi scad scad-dd"}

for seed in $SEEDS; do
  for v in $VARIANTS; do
    out="runs/gan-conv-$v-s$seed"
    if [ -f "$out/final.safetensors" ] && grep -q "\"step\": $STEPS," "$out/eval.jsonl" 2>/dev/null; then
      echo "done: $out"; continue
    fi
    resume=""
    if [ -d "$out" ]; then resume="--resume"; fi
    OMP_NUM_THREADS=1 .venv/bin/clip-t2i train-gan --variant "$v" --clip "$CLIP" --out "$out" --steps "$STEPS" \
      --batch-size 32 --threads 1 --seed "$seed" $resume --eval-every "$EVAL" --sample-every 500 --ckpt-every 250 \
      --no-progress
    echo "finished: $out"
  done
done
