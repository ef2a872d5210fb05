#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: formatting, lints, unit, parity and CLI tests,
# and the hair-colour example end to end on the test model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
