#!/usr/bin/env bash
# Run one robust fine-tuning experiment and evaluate it.
#   experiments/robust/run.sh NAME [robustify options...]
# Writes runs/robust/NAME/ (run folder, train.log) and appends the evaluation to
# experiments/robust/results.jsonl. Threads: $THREADS (default 1). Budget/options are all on the command line.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1; shift
threads=${THREADS:-1}
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
out=runs/robust/$name
mkdir -p runs/robust
start=$(date +%s)
.venv/bin/clip-t2i robustify --out "$out" --no-progress "$@" 2>&1 | tee "$out.out"
train_s=$(( $(date +%s) - start ))
.venv/bin/python experiments/robust/evaluate_model.py "$out/final.safetensors" --threads "$threads" \
  --images "$out/synth.png" | .venv/bin/python -c "
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
r.update(name='$name', args='$*', train_wall_s=$train_s)
print(json.dumps(r))
open('experiments/robust/results.jsonl', 'a').write(json.dumps(r) + '\n')"
