#!/usr/bin/env bash
# Issue 16, item 4: why are the GAN's samples blurry and collapsed? One change per run against the same
# baseline (scad-mi, batch 32, seed 0, 1 thread), equal step budget, evaluated with the default
# (analysis-by-synthesis) judge: recognised, judged all, factor_diversity, FID.
# Resumable: re-running the script continues every unfinished run (--resume) and skips finished ones.
#   RUNS="base clip1" STEPS=1000 nohup experiments/gan/diagnose.sh > runs/gan-diag.out 2>&1 &
#   python experiments/gan/summarize.py runs/gan-diag-*      # evaluator numbers per run
#   python experiments/gan/diag_eval.py runs/gan-diag-*      # factors read with the judge's gates off
set -euo pipefail
CLIP=${CLIP:-shapes-clip}
# the gradient-aligned robust patch-8 tower of experiments/robust/align_shapes.sh (8×8 tokens at 64 px, shapes-clip's text)
P8CLIP=${P8CLIP:-runs/align-shapes/sh7/final.safetensors}
# a vanilla patch-8 CLIP: clip-t2i train-clip --data shapes --model vit-t64p8 --out runs/shapes-clip-p8
P8VCLIP=${P8VCLIP:-runs/shapes-clip-p8/final.safetensors}
STEPS=${STEPS:-1000}
SEED=${SEED:-0}
RUNS=${RUNS:-"base clip1 clip0 fid4 ch32 ema99"}
VARIANT=${VARIANT:-scad-mi}

args_for() {  # the single change each run makes to the baseline
  case "$1" in
    base) echo "" ;;
    clip1) echo "--set loss.clip_weight=1.0" ;;          # H1: the CLIP loss pulls every seed to one mode
    clip0) echo "--set loss.clip_weight=0.0" ;;
    fid4) echo "--set loss.fidelity_weight=4.0" ;;       # H2: the semantic D cannot see edges; weight pixels
    patch2) echo "--set discriminator.patch_layers=2" ;; # H2': 16×16 patches of 64 px
    ch32) echo "--set generator.base_channels=32" ;;     # H3: 8 channels at 64 px is too little capacity
    ema99) echo "--ema-beta 0.99" ;;                     # H4: EMA 0.999 averages a fast-moving G (blur)
    mi0) echo "--set loss.mi_weight=0.0" ;;
    mi1) echo "--set loss.mi_weight=0.1" ;;
    gstd4) echo "--set discriminator.group_std=4" ;;     # H6: D sees the spread within caption groups of 4
    mifid) echo "--set discriminator.mi_source=fidelity" ;;  # H5: Q reads z from pixels, not CLIP features
    mifid1) echo "--set discriminator.mi_source=fidelity --set loss.mi_weight=0.1" ;;
    mik8) echo "--set loss.mi_weight=1.0 --set loss.mi_dims=8" ;;  # H7: InfoGAN codes, 8 of z's 100 dims, λ 1
    mik8g4) echo "--set loss.mi_weight=1.0 --set loss.mi_dims=8 --set discriminator.group_std=4" ;;
    ms01) echo "--set loss.ms_weight=0.1" ;;             # H9: MSGAN's mode-seeking term on same-caption pairs
    p8r) echo "" ;;                                      # H8: G and D wrap the robust patch-8 CLIP (clip_for)
    p8v) echo "" ;;                                      # H8': a vanilla patch-8 CLIP: token size without robustness
    *) echo "unknown run $1" >&2; exit 2 ;;
  esac
}

clip_for() {  # the CLIP a run wraps: CLIP, P8CLIP for the p8r* runs, P8VCLIP for the p8v* runs
  case "$1" in
    p8r*) echo "$P8CLIP" ;;
    p8v*) echo "$P8VCLIP" ;;
    *) echo "$CLIP" ;;
  esac
}

for r in $RUNS; do
  out="runs/gan-diag-$r-s$SEED-n$STEPS"
  if [ -f "$out/final.safetensors" ]; then echo "done: $out"; continue; fi
  resume=""
  if [ -d "$out" ]; then resume="--resume"; fi
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=1 .venv/bin/clip-t2i train-gan --variant "$VARIANT" --clip "$(clip_for "$r")" --out "$out" \
    --steps "$STEPS" --batch-size 32 --threads 1 --seed "$SEED" $(args_for "$r") $resume \
    --eval-every 500 --sample-every 250 --ckpt-every 250 --no-progress
  echo "finished: $out"
done
