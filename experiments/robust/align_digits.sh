#!/usr/bin/env bash
# The zoo's digits-clipag (issue 13): free adversarial fine-tuning of digits-clip (stage 0, the session-3 recipe),
# then three stages of gradient alignment (robustify --align-weight; robust/alignment.py), all with the text tower
# frozen. Resumable: a finished stage is skipped, an interrupted one continues from its last checkpoint.
#   bash experiments/robust/align_digits.sh [RUNS_DIR]      (default runs/align-digits; ~60 min on 1 CPU thread)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs/align-digits}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
stage() {  # stage NAME robustify-options...
  local name=$1; shift
  local out=$runs/$name
  if [[ -f $out/final.safetensors ]]; then echo "$name: done"; return; fi
  local resume=()
  [[ -d $out/checkpoints ]] && resume=(--resume)
  .venv/bin/clip-t2i robustify --data digits --out "$out" --no-progress --threads 1 "${resume[@]}" "$@"
}
stage s0-free-at --model digits-clip --objective clipag --attack free --free-replays 4 --eps 4 --lr 3e-4 \
  --steps 1200 --warmup-steps 50 --clean-weight 1
stage s1-align3 --model "$runs/s0-free-at/final.safetensors" --attack none --align-weight 3 --lr 1e-3 \
  --steps 600 --batch-size 64 --warmup-steps 30 --ckpt-every 100
stage s2-align5 --model "$runs/s1-align3/final.safetensors" --attack none --align-weight 5 --lr 5e-4 \
  --steps 800 --batch-size 64 --warmup-steps 20 --ckpt-every 100 --seed 1
stage s3-align5-t2 --model "$runs/s2-align5/final.safetensors" --attack none --align-weight 5 --align-t-power 2 \
  --lr 3e-4 --steps 800 --batch-size 64 --warmup-steps 20 --ckpt-every 100 --seed 2
echo "final: $runs/s3-align5-t2/final.safetensors"
