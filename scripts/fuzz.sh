#!/usr/bin/env bash
# Fuzzes the weight-file readers and the image readers, SECONDS each (default 600), with
# cargo-fuzz (libFuzzer), the corpora seeded from the fixture weight files and images. Usage:
# scripts/fuzz.sh [SECONDS] [weights|images]. Crashes land in fuzz/artifacts/<target>/; turn each
# into a regression test in tests/it/weights.rs or tests/it/imageio.rs. Needs `cargo install
# cargo-fuzz`; runs on stable Rust through RUSTC_BOOTSTRAP (cargo-fuzz passes nightly-only
# sanitizer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
seconds=${1:-600}
targets=${2:-weights images}
seed() { # seed CORPUS FILE...: copies the small ones (libFuzzer works best on inputs of a few
         # hundred KB at most)
    local corpus=$1; shift
    mkdir -p "$corpus"
    for f in "$@"; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 2200000 ] && cp -n "$f" "$corpus/" || true
    done
}
seed fuzz/corpus/weights tests/fixtures/*.pt tests/fixtures/*.pkl tests/fixtures/*.safetensors
seed fuzz/corpus/images tests/fixtures/images/* tests/fixtures/*.png examples/faces/*.png \
    tests/fixtures/align/*.jpg tests/fixtures/align/*.png
export LIBTORCH=${LIBTORCH:-$PWD/.venv/libtorch}
# The fuzz binary is not built by this package, so it lacks the rpath build.rs adds.
export LD_LIBRARY_PATH=$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for target in $targets; do
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" --sanitizer none --release -- \
        -max_total_time="$seconds" -max_len=4194304 -rss_limit_mb=4096 -timeout=10
done
