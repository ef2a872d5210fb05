#!/usr/bin/env bash
# The first five minutes: sets everything up, builds `pulse` in release mode, and shows what PULSE
# guarantees with the bundled test model (models/test-1024, random weights: it draws textures,
# not faces; see models/README.md):
#   1. `pulse generate` draws a picture the model can make;
#   2. `pulse downscale` shrinks it to 32x32 exactly as PULSE's loss shrinks;
#   3. `pulse upsample --compare` searches for a 1024x1024 image that shrinks to that 32x32 one:
#      the sheet shows input | result | result shrunk, and the report says it converged;
#   4. the astronaut photo, a real face the random model cannot draw (what it does instead).
# A second run reuses everything already made (a few seconds plus cargo's check).
#
# PULSE_DEMO_OUT=DIR writes the pictures there instead of out/; PULSE_DEMO_BIN=PATH runs that
# pulse binary and skips the setup and the build (the tests use both).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${PULSE_DEMO_OUT:-out}
if [ -n "${PULSE_DEMO_BIN:-}" ]; then
    pulse=$PULSE_DEMO_BIN
else
    scripts/setup.sh
    cargo build --release --locked
    pulse="${CARGO_TARGET_DIR:-target}"/release/pulse
fi
model=models/test-1024
# The tightest eps the bundled model reaches in PULSE's default 100 steps on its own pictures,
# measured over seeds (README, "What the demo shows"): its random weights and noise keep it from
# FFHQ's 0.002.
eps=0.01

"$pulse" info --model "$model"
echo
echo "demo: 1/4 a picture the bundled model can make (pulse generate)"
"$pulse" generate --model "$model" --seed 1 -o "$out/generated.png" -q
echo "demo: 2/4 shrunk to 32x32 the way PULSE's loss shrinks (pulse downscale)"
"$pulse" downscale "$out/generated.png" --size 32 -o "$out/generated32.png"
echo "demo: 3/4 PULSE on that 32x32 image: 100 steps, eps $eps (pulse upsample)"
# --restarts 1: should rounding on another machine keep this seed just above eps, one more
# search from a new seed (the report's `attempt` says which won).
"$pulse" upsample "$out/generated32.png" --model "$model" --eps "$eps" --seed 1 --restarts 1 \
    --compare --report "$out/pulse/report.json" -o "$out/pulse"
echo "demo: 4/4 PULSE on a real face, the astronaut: 40 steps, eps 0.03"
"$pulse" upsample examples/faces/astronaut32.png --model "$model" --steps 40 --eps 0.03 --seed 1 \
    --compare --report "$out/astronaut/report.json" -o "$out/astronaut"

# The result as the report records it (python3 is there: setup needs it).
result=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
i = r["images"][0]
print("converged" if i["converged"] else "did NOT converge", "at eps", r["settings"]["eps"],
      "(best L2 %.4f at step %d)" % (i["best"]["L2"], i["best_step"]))
' "$out/pulse/report.json")

cat <<EOF

demo: done. The pictures, in $out/:
  generated.png                   a picture the bundled model drew (random weights: a texture, not a face)
  generated32.png                 that picture shrunk to 32x32 by pulse downscale: PULSE's input
  pulse/generated32.compare.png   input | PULSE's 1024x1024 result | the result shrunk to 32x32: the ends match (same pattern, a little paler)
  pulse/generated32.png           PULSE's result: an image the model can draw that shrinks to the input
  pulse/report.json               the search, step by step: $result
  astronaut/astronaut32.compare.png  a real face: this random model can only match its colours at 32x32
                                  (with a loosened eps, 0.03), it cannot draw a face
With the real model, \`pulse download ffhq\` (NVIDIA's FFHQ StyleGAN, non-commercial licence), the
same command without --model draws faces: pulse upsample examples/faces/astronaut32.png
EOF
