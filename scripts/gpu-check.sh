#!/usr/bin/env bash
# GPU check for a CUDA machine with python3 + torch 2.11.0 and no Rust toolchain. Needs
# gpu-bundle/ from scripts/make-gpu-bundle.sh. Runs the test suite on CUDA (parity against the
# CPU fixtures with PULSE_TEST_DEVICE=cuda), then `pulse bench` for each precision and batch size
# beside torch_baseline_step.py --device cuda at the same batch sizes, and prints one table.
# Budget: under 8 minutes on an H100. Usage: scripts/gpu-check.sh [--quick]
# Environment: PYTHON (default python3), STEPS, BATCHES, PRECISIONS, SKIP_TESTS=1,
# GPU_CHECK_DEVICE=cpu (a smoke test of this script on a machine without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bundle="$root/gpu-bundle"
[ -x "$bundle/release/pulse" ] || { echo "gpu-check: $bundle/release/pulse missing; run scripts/make-gpu-bundle.sh where Rust is" >&2; exit 2; }
python=${PYTHON:-python3}
torch_lib=$($python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || { echo "gpu-check: python3 cannot import torch" >&2; exit 2; }
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
pulse="$bundle/release/pulse"
dev=${GPU_CHECK_DEVICE:-cuda}
out="${GPU_CHECK_OUT:-$root/gpu-check-out}"
mkdir -p "$out"
steps=${STEPS:-5}
batches=${BATCHES:-1 4 16}
precisions=${PRECISIONS:-fp32 tf32 bf16 fp16}
[ "${1:-}" = "--quick" ] && { batches="1 4"; steps=3; }

echo "== torch $($python -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available:", torch.cuda.is_available())')"
nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv,noheader || true
"$pulse" info | tee "$out/info.txt"
[ "$dev" = cpu ] || grep -q "cuda: available" "$out/info.txt" || { echo "gpu-check: pulse does not see CUDA" >&2; exit 1; }

# The tests read fixtures from the path they were compiled in; point it at this checkout.
manifest=$(cat "$bundle/manifest_dir" 2>/dev/null || echo "")
if [ -n "$manifest" ] && [ ! -e "$manifest/tests/fixtures" ]; then
  mkdir -p "$(dirname "$manifest")" && ln -sfn "$root" "$manifest"
fi

status=0
echo "== tests (PULSE_TEST_DEVICE=$dev)"
for t in "$bundle"/release/deps/*-test; do
  [ "${SKIP_TESTS:-0}" = 1 ] && break
  name=$(basename "$t" -test)
  if (cd "$root" && PULSE_TEST_DEVICE=$dev PULSE_MODEL="$root/models/test-1024" timeout 240 "$t" --test-threads=2 > "$out/test-$name.log" 2>&1); then
    echo "  $name: $(grep -E '^test result' "$out/test-$name.log" | tail -1)"
  else
    echo "  $name: FAILED (see $out/test-$name.log)"; tail -20 "$out/test-$name.log"; status=1
  fi
done

baseline="$bundle/torch_baseline_step.py"
for b in "$root/shared/tools/torch_baseline_step.py" "$root/../shared/tools/torch_baseline_step.py"; do
  [ -f "$b" ] && baseline="$b" && break
done
echo "== benchmarks ($steps timed steps each)"
: > "$out/bench.jsonl"
for bs in $batches; do
  if [ -f "$baseline" ]; then
    r=$(timeout 120 $python "$baseline" --device "$dev" --batch-size "$bs" --steps "$steps" --warmup 2 --json 2>"$out/baseline-$bs.err" | tail -1)
    [ -n "$r" ] && echo "{\"kind\":\"baseline\",\"precision\":\"fp32 (torch default)\",\"r\":$r}" >> "$out/bench.jsonl"
  fi
  for p in $precisions; do
    r=$(timeout 120 "$pulse" bench --device "$dev" --batch-size "$bs" --precision "$p" --steps "$steps" --warmup 2 --json 2>"$out/pulse-$bs-$p.err" | tail -1)
    if [ -n "$r" ]; then echo "{\"kind\":\"pulse\",\"precision\":\"$p\",\"r\":$r}" >> "$out/bench.jsonl"; else echo "  pulse bench bs=$bs $p failed: $(tail -2 "$out/pulse-$bs-$p.err")"; status=1; fi
  done
done
r=$(timeout 120 "$pulse" bench --device "$dev" --batch-size auto --precision bf16 --steps 2 --warmup 1 --json 2>"$out/pulse-auto.err" | tail -1)
[ -n "$r" ] && echo "{\"kind\":\"pulse (auto batch)\",\"precision\":\"bf16\",\"r\":$r}" >> "$out/bench.jsonl"

$python - "$out/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base1 = next((x["r"]["ms_per_step"] for x in rows if x["kind"] == "baseline" and x["r"]["batch_size"] == 1), None)
fpm = lambda r: r["batch_size"] * 60000.0 / (r["ms_per_step"] * 100)
gpu = next((x["r"]["device"] for x in rows if x["kind"] != "baseline"), "cuda")
print(f"\nPULSE steps on {gpu}, 1024x1024, 100 steps per face")
print(f"{'what':<20}{'precision':<22}{'batch':>6}{'ms/step':>10}{'faces/min':>11}{'x base b1':>11}{'GPU MB/img':>12}{'parity rel':>12}")
for x in rows:
    r = x["r"]; f = fpm(r)
    sp = f"{f / (60000.0 / (base1 * 100)):.2f}" if base1 else "-"
    mem = f"{r['gpu_mb_per_image']:.0f}" if r.get("gpu_mb_per_image") else "-"
    par = f"{r['parity_rel']:.1e}" if r.get("parity_rel") is not None else "-"
    print(f"{x['kind']:<20}{x['precision']:<22}{r['batch_size']:>6}{r['ms_per_step']:>10.1f}{f:>11.2f}{sp:>11}{mem:>12}{par:>12}")
PY
exit $status
