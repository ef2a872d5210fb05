#!/usr/bin/env bash
# Sets up what `pulse` needs to build and run, idempotently:
#   - a Python virtual environment with the PyPI `torch==2.11.0` wheel, the libtorch that tch 0.24
#     binds (at $PULSE_VENV, default ./.venv; `.venv` becomes a symlink when PULSE_VENV is set);
#   - `.venv/libtorch`, a symlink to the wheel's `torch/` folder, which .cargo/config.toml hands to
#     torch-sys as LIBTORCH (so `cargo build` needs no exported variables).
# Nothing is downloaded except that wheel and its dependencies, from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PYTHON=${PYTHON:-python3}

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found; install Python 3.9+ first" >&2; exit 1; }

if [ -n "${PULSE_VENV:-}" ]; then
    mkdir -p "$(dirname "$PULSE_VENV")"
    if [ -e .venv ] && [ ! -L .venv ]; then
        echo "setup: .venv exists and is not a symlink; remove it or unset PULSE_VENV" >&2
        exit 1
    fi
    ln -sfn "$PULSE_VENV" .venv
fi

has_torch() {
    [ -x .venv/bin/python ] && .venv/bin/python -c \
        "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null
}

if ! has_torch; then
    echo "setup: installing torch==$TORCH_VERSION into $(readlink -f .venv 2>/dev/null || echo .venv) (about 5 GB with its CUDA libraries)" >&2
    [ -x .venv/bin/python ] || "$PYTHON" -m venv "$(readlink -f .venv 2>/dev/null || echo .venv)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
    has_torch || { echo "setup: torch $TORCH_VERSION is not importable after install" >&2; exit 1; }
fi

torch_dir=$(.venv/bin/python -W ignore -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)
# A relative link when torch lives inside the venv, so the checkout still builds when its folder is
# mounted or moved elsewhere.
link_target=$(.venv/bin/python -c 'import os, sys; t, v = map(os.path.realpath, sys.argv[1:]); print(os.path.relpath(t, v) if t.startswith(v + os.sep) else t)' "$torch_dir" .venv)
ln -sfn "$link_target" .venv/libtorch
[ -f .venv/libtorch/lib/libtorch_cpu.so ] || { echo "setup: no libtorch_cpu.so under $torch_dir/lib" >&2; exit 1; }
echo "setup: libtorch $TORCH_VERSION at $torch_dir" >&2
