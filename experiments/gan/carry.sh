#!/usr/bin/env bash
# Carry an unfinished GAN run across sessions. Only committed files survive a session here, and a run to
# convergence (20000 steps, ~3.5 h of one core) is longer than one session, so the run's resumable state goes
# into git and comes back out in the next session.
#
#   experiments/gan/carry.sh save    runs/gan-diag-ms01-s0-n20000   # -> experiments/gan/carry/gan-diag-ms01-s0-n20000/
#   experiments/gan/carry.sh restore gan-diag-ms01-s0-n20000        # -> runs/gan-diag-ms01-s0-n20000/ (then --resume)
#
# Saved: config.json, eval.jsonl, train.log and the newest checkpoint's state.pt (G, G_ema, D, both Adam states,
# step: everything --resume reads; read back with torch.load(weights_only=True)). The checkpoint's model file (the
# EMA generator export) is left out: resume does not read it and the next checkpoint rewrites it. eval.jsonl is cut
# at the checkpoint's step (the resumed run evaluates those steps again). A save replaces the previous save of the
# same run (git history keeps the old one). Restore refuses a run folder that exists.
set -euo pipefail
cmd=${1:-}; arg=${2:-}
[ -n "$cmd" ] && [ -n "$arg" ] || { echo "usage: $0 save RUN_DIR | restore NAME" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
case "$cmd" in
  save)
    run=${arg%/}; name=$(basename "$run")
    latest=$(cat "$run/checkpoints/latest" 2>/dev/null) || { echo "error: $run has no checkpoints/latest" >&2; exit 1; }
    [ -f "$run/checkpoints/$latest/state.pt" ] || { echo "error: $run/checkpoints/$latest/state.pt missing" >&2; exit 1; }
    dest="$here/carry/$name"; tmp="$here/carry/.tmp-$name"
    rm -rf "$tmp"; mkdir -p "$tmp/checkpoints/$latest"
    cp "$run/config.json" "$run/eval.jsonl" "$run/train.log" "$tmp/"
    # keep only the curve up to the checkpoint's step: the resumed run re-evaluates anything after it
    python3 - "$tmp/eval.jsonl" "${latest#step_}" <<'PY'
import json, sys
path, step = sys.argv[1], int(sys.argv[2])
rows = [line for line in open(path) if line.strip() and json.loads(line).get("step", 0) <= step]
open(path, "w").writelines(rows)
PY
    cp "$run/checkpoints/$latest/state.pt" "$tmp/checkpoints/$latest/"
    echo "$latest" > "$tmp/checkpoints/latest"
    rm -rf "$dest"; mv "$tmp" "$dest"
    echo "saved $run ($latest) -> $dest ($(du -sh "$dest" | cut -f1))"
    ;;
  restore)
    name=$(basename "${arg%/}"); src="$here/carry/$name"; run="runs/$name"
    [ -d "$src" ] || { echo "error: no carried run $src" >&2; exit 1; }
    [ ! -e "$run" ] || { echo "error: $run exists; not overwriting it" >&2; exit 1; }
    mkdir -p runs; cp -r "$src" "$run"
    echo "restored $src -> $run ($(cat "$run/checkpoints/latest")); re-run the same command with --resume"
    ;;
  *) echo "usage: $0 save RUN_DIR | restore NAME" >&2; exit 2 ;;
esac
