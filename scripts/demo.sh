#!/usr/bin/env bash
# Sets everything up, builds `pulse` in release mode and runs the main job: PULSE on a bundled
# 32x32 face with the bundled test model (random weights: it makes textures, not faces; see
# models/README.md). Results land in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked
"${CARGO_TARGET_DIR:-target}"/release/pulse info
"${CARGO_TARGET_DIR:-target}"/release/pulse upsample examples/faces/astronaut32.png --model models/test-1024 \
    --steps 40 --eps 0.03 --seed 1 --compare --report out/report.json -o out --overwrite
echo "demo: wrote out/astronaut32.png, out/astronaut32.compare.png, out/astronaut32.latent.safetensors, out/report.json"
