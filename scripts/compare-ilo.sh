#!/usr/bin/env bash
# PULSE against ILO on the bundled random-weight models (README, "PULSE or ILO"): the same
# targets, seed and total steps; prints the best L2 (on [0,1]) each reached and the seconds.
# Usage: scripts/compare-ilo.sh [PULSE_STEPS] [ILO_ROUNDS]   (defaults: 40 and 14,14,6,6)
set -euo pipefail
cd "$(dirname "$0")/.."
PULSE=${PULSE_BIN:-target/debug/pulse}
STEPS=${1:-40}
ROUNDS=${2:-14,14,6,6}
SEED=${SEED:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for model in ${MODELS:-test-1024 test-sg2-1024}; do
  mkdir -p "$work/$model"
  # A picture the model drew itself, shrunk to 32x32, and the astronaut photo's 32x32 face.
  "$PULSE" generate --model "models/$model" --seed 3 --truncation 1 -o "$work/$model-generated.png" >/dev/null 2>&1
  "$PULSE" downscale "$work/$model-generated.png" -o "$work/$model/generated.png" --size 32 >/dev/null
  cp examples/faces/astronaut32.png "$work/$model/astronaut.png"
  for method in pulse ilo; do
    if [ "$method" = pulse ]; then flags=(--steps "$STEPS"); else flags=(--method ilo --ilo-steps "$ROUNDS"); fi
    for target in astronaut generated; do
      start=$(date +%s.%N)
      "$PULSE" upsample "$work/$model/$target.png" --model "models/$model" --seed "$SEED" \
        --device cpu -q --eps 1e-9 "${flags[@]}" -o "$work/out-$model-$method" \
        --report "$work/$model-$method-$target.json" || true
      end=$(date +%s.%N)
      python3 - "$work/$model-$method-$target.json" "$model" "$method" "$target" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
img = r["images"][0]
best = img["best"]
l2 = best["L2"] if "L2" in best else best["MSE"] / 4
print(f"{sys.argv[2]:14} {sys.argv[3]:5} {sys.argv[4]:9} best L2 {l2:.5f} at step {img['best_step']}, "
      f"{float(sys.argv[6]) - float(sys.argv[5]):.0f} s")
PY
    done
  done
done
