#!/usr/bin/env bash
# Installs `pulse` on the PATH: sets up libtorch (scripts/setup.sh), builds in release mode and
# runs `cargo install --path .` into PREFIX (default ~/.local, so the binary lands in
# ~/.local/bin/pulse). The binary finds libtorch through the absolute path built into it (the
# torch wheel in this checkout's .venv), so it needs no environment variables; keep this
# checkout's .venv, or see the README ("Installing") for taking the binary to another machine.
#
#   scripts/install.sh                 # -> ~/.local/bin/pulse
#   scripts/install.sh --root /opt/pulse
#   PULSE_INSTALL_ROOT=/usr/local scripts/install.sh
#
# With --bundle, libtorch's libraries (torch/lib, and the nvidia/ CUDA libraries beside it: about
# 1 GB + 2.7 GB for the CUDA wheel) are also copied into PREFIX/lib/pulse/, where the binary looks
# when the built-in path is gone: PREFIX can then be copied to another machine of the same kind.
set -euo pipefail
cd "$(dirname "$0")/.."

root=${PULSE_INSTALL_ROOT:-$HOME/.local}
bundle=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --bundle) bundle=1; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install: unknown argument '$1' (--root DIR, --bundle)" >&2; exit 2 ;;
    esac
done

scripts/setup.sh
# The demo's release build is reused (same target folder), so installing after it is quick.
cargo install --path . --locked --force --root "$root" --target-dir "${CARGO_TARGET_DIR:-target}"
if [ "$bundle" = 1 ]; then
    # The wheel's layout is kept (torch/lib beside nvidia/), so libtorch_cuda still finds the
    # CUDA libraries through its own $ORIGIN/../../nvidia/... paths.
    torch=$(readlink -f .venv/libtorch)
    mkdir -p "$root/lib/pulse/torch"
    cp -a "$torch/lib" "$root/lib/pulse/torch/"
    if [ -d "$torch/../nvidia" ]; then cp -a "$torch/../nvidia" "$root/lib/pulse/"; fi
    echo "install: copied libtorch's libraries into $root/lib/pulse/ ($(du -sh "$root/lib/pulse" | cut -f1))" >&2
fi
"$root/bin/pulse" info
case ":$PATH:" in
    *":$root/bin:"*) echo "install: pulse is $root/bin/pulse" ;;
    *) echo "install: $root/bin/pulse installed; add $root/bin to your PATH (e.g. in ~/.profile: export PATH=\"$root/bin:\$PATH\")" ;;
esac
