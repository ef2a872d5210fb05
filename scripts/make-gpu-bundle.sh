#!/usr/bin/env bash
# Fills gpu-bundle/ with what scripts/gpu-check.sh needs on a CUDA machine that has python3 and
# torch 2.11.0 but no Rust toolchain: the release `pulse` binary, every test executable (built in
# the release profile, so the CLI tests find that same `pulse` beside them), the path the tests
# were compiled in (they read their fixtures from it) and the baseline script.
# Build against a CUDA-enabled libtorch (LIBTORCH=...); carry gpu-bundle/ to the GPU machine.
# `pulse info` there says whether this build has CUDA graphs (build.rs needs the CUDA headers).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LIBTORCH:?set LIBTORCH to the libtorch folder (with CUDA libraries)}"
target="${CARGO_TARGET_DIR:-target}"
bundle=gpu-bundle
rm -rf "$bundle"
mkdir -p "$bundle/release/deps"
cargo build --release --locked --bin pulse
cp "$target/release/pulse" "$bundle/release/pulse"
# One JSON line per artifact; keep the test executables.
cargo test --release --locked --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        kind = m["target"]["kind"][0]
        name = m["target"]["name"] + ("" if kind == "test" else "-" + kind)
        print(name, m["executable"])
' | while read -r name exe; do
  cp "$exe" "$bundle/release/deps/$name-test"
  echo "test executable: $name"
done
pwd > "$bundle/manifest_dir"
# The baseline script is in benches/baseline/ (or give BASELINE).
cp benches/baseline/pulse_ops.py "$bundle/" 2>/dev/null || true
for b in "${BASELINE:-}" benches/baseline/torch_baseline_step.py shared/tools/torch_baseline_step.py ../shared/tools/torch_baseline_step.py \
         ../../shared/tools/torch_baseline_step.py; do
  if [ -n "$b" ] && [ -f "$b" ]; then cp "$b" "$bundle/torch_baseline_step.py"; break; fi
done
[ -f "$bundle/torch_baseline_step.py" ] || echo "make-gpu-bundle: torch_baseline_step.py not found (set BASELINE); the check runs without the baseline rows" >&2
strip "$bundle"/release/pulse "$bundle"/release/deps/* 2>/dev/null || true
du -sh "$bundle"
