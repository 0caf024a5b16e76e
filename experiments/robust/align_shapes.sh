#!/usr/bin/env bash
# The best shapes "gradients that draw" candidate so far (issue 13, sh7; sh4 in session 5): a NEW patch-8 image tower (vit-t64p8)
# trained against shapes-clip's frozen text tower with gradient alignment (plus, in the last stage, an adversarial term), in ten stages of
# experiments/robust/align_proto.py. Stages 1-2 are session 4's p8 / p8b, 3 adds background sources, 4-7 the
# shape-edit and blurred sources of session 5, 8-10 session 6's weighted clean term and the adversarial term
# (experiments/robust/README.md). Resumable: a finished stage is
# skipped, an interrupted one continues from its last checkpoint.
#   bash experiments/robust/align_shapes.sh [RUNS_DIR]      (default runs/align-shapes; ~220 min on 1 CPU thread)
#   UNTIL=sh6 bash experiments/robust/align_shapes.sh        (stop after that stage)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs/align-shapes}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
stage() {  # stage NAME align_proto-options...
  local name=$1; shift
  local out=$runs/$name
  if [[ -f $out/final.safetensors ]]; then
    echo "$name: done"
  else
    local resume=()
    [[ -f $out/state.pt ]] && resume=(--resume)
    .venv/bin/python experiments/robust/align_proto.py --out "$out" --batch 32 --align 3 "${resume[@]}" "$@"
  fi
  if [[ $name == "${UNTIL:-}" ]]; then echo "final: $out/final.safetensors"; exit 0; fi
}
stage p8 --arch vit-t64p8 --text-from shapes-clip --steps 800 --lr 1e-3 --p-edit 0.3 --seed 0 --ckpt-every 50
stage p8b --model "$runs/p8/final.safetensors" --steps 400 --lr 5e-4 --p-edit 0.3 --seed 3 --ckpt-every 50
stage bg1 --model "$runs/p8b/final.safetensors" --steps 500 --lr 5e-4 --p-edit 0.2 --p-bg 0.5 --seed 5
stage sh1 --model "$runs/bg1/final.safetensors" --steps 600 --lr 5e-4 --p-edit 0.3 --edit-shape-share 0.8 \
  --p-blur 0.35 --p-bg 0.15 --seed 7
stage sh2 --model "$runs/sh1/final.safetensors" --steps 1000 --lr 5e-4 --p-edit 0.35 --edit-shape-share 0.8 \
  --p-blur 0.4 --p-bg 0.1 --seed 11
stage sh3 --model "$runs/sh2/final.safetensors" --steps 1200 --lr 3e-4 --t-power 2 --p-edit 0.35 \
  --edit-shape-share 0.8 --p-blur 0.4 --p-bg 0.1 --seed 13
stage sh4 --model "$runs/sh3/final.safetensors" --steps 1000 --lr 3e-4 --t-power 2 --p-edit 0.35 \
  --edit-shape-share 0.8 --p-blur 0.4 --p-bg 0.1 --seed 17
# session 6: triangle/cross-weighted targets and a heavier clean term (held-out clean accuracy), then the adversarial term
stage sh5 --model "$runs/sh4/final.safetensors" --steps 1500 --lr 3e-4 --t-power 2 --p-edit 0.35 \
  --edit-shape-share 0.8 --p-blur 0.4 --p-bg 0.1 --shape-weights 1,1,2,2 --clip-weight 2 --seed 19
stage sh6 --model "$runs/sh5/final.safetensors" --steps 1500 --lr 3e-4 --t-power 2 --p-edit 0.35 \
  --edit-shape-share 0.8 --p-blur 0.4 --p-bg 0.1 --shape-weights 1,1,2,2 --clip-weight 3 --seed 31
stage sh7 --model "$runs/sh6/final.safetensors" --steps 600 --lr 2e-4 --t-power 2 --p-edit 0.35 \
  --edit-shape-share 0.8 --p-blur 0.4 --p-bg 0.1 --shape-weights 1,1,2,2 --clip-weight 3 --adv 1.0 --eps 6 --seed 41
echo "final: $runs/sh7/final.safetensors"
