#!/usr/bin/env bash
# Fuzzes the weight-file readers for SECONDS (default 600) with cargo-fuzz (libFuzzer), the corpus
# seeded from the fixture weight files. Crashes land in fuzz/artifacts/weights/; turn each into a
# regression test in tests/weights.rs. Needs `cargo install cargo-fuzz`; runs on stable Rust
# through RUSTC_BOOTSTRAP (cargo-fuzz passes nightly-only sanitizer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
seconds=${1:-600}
corpus=fuzz/corpus/weights
mkdir -p "$corpus"
for f in tests/fixtures/*.pt tests/fixtures/*.pkl tests/fixtures/*.safetensors; do
    # Seeds stay small: libFuzzer works best on inputs of a few hundred KB at most.
    [ "$(stat -c %s "$f")" -le 2200000 ] && cp -n "$f" "$corpus/" || true
done
export LIBTORCH=${LIBTORCH:-$PWD/.venv/libtorch}
# The fuzz binary is not built by this package, so it lacks the rpath build.rs adds.
export LD_LIBRARY_PATH=$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
RUSTC_BOOTSTRAP=1 cargo fuzz run weights --sanitizer none --release -- \
    -max_total_time="$seconds" -max_len=4194304 -rss_limit_mb=4096 -timeout=10
