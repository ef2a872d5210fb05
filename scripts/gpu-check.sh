#!/usr/bin/env bash
# GPU check for a CUDA machine with python3 + torch 2.11.0 and no Rust toolchain. Needs
# gpu-bundle/ from scripts/make-gpu-bundle.sh. Prints, in this order:
#   1. determinism: the same `pulse upsample` twice (latents, PNGs and report histories compared
#      byte for byte), with --cuda-graph twice and against the eager run, two renders of one
#      latent, batch 2 against batch 1, and --nondeterministic twice;
#   2. the benchmark table: torch_baseline_step.py beside `pulse bench` for each precision, with
#      and without --cuda-graph, and fp32 --nondeterministic, at each batch size;
#   3. the test executables run with PULSE_TEST_DEVICE=$GPU_CHECK_DEVICE.
# Budget: under 8 minutes on an H100/H200: benchmark rows that would start after BENCH_BUDGET_S
# seconds are skipped (and listed), so the tests always get their turn.
# Usage: scripts/gpu-check.sh [--quick]
# Environment: PYTHON (default python3), STEPS (timed steps, 5), BATCHES ("1 4 16"),
# PRECISIONS ("fp32 tf32 bf16 fp16"), GRAPH (1: also the --cuda-graph rows), AUTO_PRECISION
# (fp16; the --batch-size auto row), DET_STEPS (20), SKIP_TESTS=1, SKIP_BENCH=1, TEST_THREADS (4),
# BENCH_BUDGET_S (300), BASELINE (path of torch_baseline_step.py), GPU_CHECK_DEVICE=cpu (a smoke test of
# this script on a machine without a GPU), GPU_CHECK_OUT (default gpu-check-out/).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
bundle="$root/gpu-bundle"
[ -x "$bundle/release/pulse" ] || { echo "gpu-check: $bundle/release/pulse missing; run scripts/make-gpu-bundle.sh where Rust is" >&2; exit 2; }
python=${PYTHON:-python3}
# (torch warns on import where numpy is missing; nothing here needs numpy)
export PYTHONWARNINGS=ignore
torch_lib=$($python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || { echo "gpu-check: python3 cannot import torch" >&2; exit 2; }
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# What `pulse` sets for itself; set here too for the test executables.
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
pulse="$bundle/release/pulse"
dev=${GPU_CHECK_DEVICE:-cuda}
out="${GPU_CHECK_OUT:-$root/gpu-check-out}"
rm -rf "$out" && mkdir -p "$out"
steps=${STEPS:-5}
batches=${BATCHES:-1 4 16}
precisions=${PRECISIONS:-fp32 tf32 bf16 fp16}
graph=${GRAPH:-1}
budget=${BENCH_BUDGET_S:-300}
[ "${1:-}" = "--quick" ] && { batches="1 4"; steps=3; }
model="$root/models/test-1024"
elapsed() { echo $(( $(date +%s) - start )); }
over_budget() { [ "$(elapsed)" -ge "$budget" ]; }

echo "== torch $($python -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available:", torch.cuda.is_available())')"
nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$pulse" info | tee "$out/info.txt"
[ "$dev" = cpu ] || grep -q "cuda: available" "$out/info.txt" || { echo "gpu-check: pulse does not see CUDA" >&2; exit 1; }
status=0

# ---------------------------------------------------------------- 1. determinism
# compare.py A B: "identical" when every file of A equals B's byte for byte (report.json: the
# histories); else the largest difference of the latents' tensors and of the PNGs' pixels.
cat > "$out/compare.py" <<'PY'
import json, os, struct, sys
import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64}

def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n]); data = raw[8 + n:]
    out = {}
    for k, v in head.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[v["dtype"]]).double()
    return out

def pixels(path):
    try:
        from PIL import Image
    except ImportError:
        return None
    return torch.tensor(list(Image.open(path).convert("RGB").getdata()), dtype=torch.float64)

def history(path):
    r = json.load(open(path))
    return [(i["input"].split("/")[-1], i["sample"], i["history"]) for i in r["images"]]

a, b = sys.argv[1], sys.argv[2]
same, notes = True, []
for name in sorted(os.listdir(a)):
    pa, pb = os.path.join(a, name), os.path.join(b, name)
    if name.startswith(".") or not os.path.isfile(pa): continue
    if name == "report.json":
        if history(pa) != history(pb): same = False; notes.append("report histories differ")
        continue
    if open(pa, "rb").read() == open(pb, "rb").read(): continue
    same = False
    if name.endswith(".safetensors"):
        ta, tb = tensors(pa), tensors(pb)
        d = max(float((ta[k] - tb[k]).abs().max()) for k in ta)
        notes.append(f"{name}: max |diff| {d:.2e}")
    elif name.endswith(".png"):
        xa, xb = pixels(pa), pixels(pb)
        notes.append(f"{name}: " + ("bytes differ" if xa is None else f"max pixel diff {float((xa - xb).abs().max()):.0f}/255"))
    else:
        notes.append(f"{name}: bytes differ")
print("identical" if same else "DIFFER: " + "; ".join(notes))
PY
compare() { $python "$out/compare.py" "$1" "$2"; }
det_steps=${DET_STEPS:-20}
echo "== determinism on $dev (model test-1024, two faces, seed 3, $det_steps steps)"
faces="$root/examples/faces"
up() { # dir, extra flags...
  local d=$1; shift
  timeout 120 "$pulse" upsample "$faces/astronaut32.png" "$faces/cameraman32.png" --seed 3 --steps "$det_steps" \
    --device "$dev" --model "$model" -o "$out/$d" --report "$out/$d/report.json" -q "$@" 2>"$out/$d.err"
  local rc=$?; [ $rc -le 3 ] || { echo "  upsample $d failed ($rc): $(tail -2 "$out/$d.err")"; status=1; }
}
up eager1; up eager2
r=$(compare "$out/eager1" "$out/eager2"); echo "  upsample twice:                   $r"
case "$r" in identical) ;; *) [ "$dev" = cpu ] || status=1 ;; esac
up graph1 --cuda-graph; up graph2 --cuda-graph
r=$(compare "$out/graph1" "$out/graph2"); echo "  upsample --cuda-graph twice:      $r"
case "$r" in identical) ;; *) [ "$dev" = cpu ] || status=1 ;; esac
echo "  --cuda-graph against eager:       $(compare "$out/eager1" "$out/graph1")"
up batch2 --batch-size 2
echo "  batch 2 against batch 1:          $(compare "$out/eager1" "$out/batch2") (within the CPU tests' tolerance is expected)"
up nondet1 --nondeterministic; up nondet2 --nondeterministic
echo "  --nondeterministic twice:         $(compare "$out/nondet1" "$out/nondet2")"
mkdir -p "$out/render1" "$out/render2"
for r in 1 2; do
  timeout 60 "$pulse" render "$out/eager1/astronaut32.latent.safetensors" --device "$dev" --model "$model" \
    -o "$out/render$r/astronaut32.png" 2>"$out/render$r.err" || { echo "  render failed: $(tail -2 "$out/render$r.err")"; status=1; }
done
r=$(compare "$out/render1" "$out/render2"); echo "  render of one latent twice:       $r"
case "$r" in identical) ;; *) [ "$dev" = cpu ] || status=1 ;; esac

# ---------------------------------------------------------------- 2. benchmarks
baseline="${BASELINE:-}"
for b in "$bundle/torch_baseline_step.py" "$root/benches/baseline/torch_baseline_step.py" "$root/shared/tools/torch_baseline_step.py" \
         "$root/../shared/tools/torch_baseline_step.py" "$root/../../shared/tools/torch_baseline_step.py"; do
  [ -z "$baseline" ] && [ -f "$b" ] && baseline="$b"
done
: > "$out/bench.jsonl"
bench() { # kind, precision label, batch, flags...
  local kind=$1 label=$2 bs=$3; shift 3
  if over_budget; then echo "  skipped (over the ${budget}s budget): $kind $label batch $bs"; return; fi
  local r
  r=$(timeout 120 "$pulse" bench --device "$dev" --batch-size "$bs" --steps "$steps" --warmup 2 --json "$@" 2>"$out/bench-$bs-$label-$kind.err" | tail -1)
  if [ -n "$r" ]; then echo "{\"kind\":\"$kind\",\"precision\":\"$label\",\"r\":$r}" >> "$out/bench.jsonl"
  else echo "  pulse bench $kind bs=$bs $label failed: $(tail -2 "$out/bench-$bs-$label-$kind.err")"; status=1; fi
}
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  echo "== benchmarks ($steps timed steps each)"
  for bs in $batches; do
    if [ -n "$baseline" ] && ! over_budget; then
      r=$(timeout 120 $python "$baseline" --device "$dev" --batch-size "$bs" --steps "$steps" --warmup 2 --json 2>"$out/baseline-$bs.err" | tail -1)
      [ -n "$r" ] && echo "{\"kind\":\"baseline\",\"precision\":\"fp32 (torch default)\",\"r\":$r}" >> "$out/bench.jsonl"
    fi
    for p in $precisions; do
      bench pulse "$p" "$bs" --precision "$p"
      [ "$graph" = 1 ] && bench "pulse graph" "$p" "$bs" --precision "$p" --cuda-graph
    done
    bench "pulse nondet" fp32 "$bs" --precision fp32 --nondeterministic
  done
  auto_precision=${AUTO_PRECISION:-fp16}
  bench "pulse (auto batch)" "$auto_precision" auto --precision "$auto_precision" $([ "$graph" = 1 ] && echo --cuda-graph)
  $python - "$out/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base1 = next((x["r"]["ms_per_step"] for x in rows if x["kind"] == "baseline" and x["r"]["batch_size"] == 1), None)
fpm = lambda r: r["batch_size"] * 60000.0 / (r["ms_per_step"] * 100)
gpu = next((x["r"]["device"] for x in rows if x["kind"] != "baseline"), "?")
print(f"\nPULSE steps on {gpu}, FFHQ-size random network 1024x1024, target 32x32, 100 steps per face")
print(f"{'what':<20}{'precision':<22}{'batch':>6}{'ms/step':>10}{'ms/img':>9}{'faces/min':>11}{'x base b1':>11}{'GPU MB/img':>12}{'parity rel':>12}")
for x in rows:
    r = x["r"]; f = fpm(r)
    sp = f"{f / (60000.0 / (base1 * 100)):.2f}" if base1 else "-"
    mem = f"{r['gpu_mb_per_image']:.0f}" if r.get("gpu_mb_per_image") else "-"
    par = f"{r['parity_rel']:.1e}" if r.get("parity_rel") is not None else "-"
    print(f"{x['kind']:<20}{x['precision']:<22}{r['batch_size']:>6}{r['ms_per_step']:>10.1f}{r['ms_per_step'] / r['batch_size']:>9.1f}{f:>11.2f}{sp:>11}{mem:>12}{par:>12}")
def best(prec, bs):
    ms = [x["r"]["ms_per_step"] for x in rows if x["kind"].startswith("pulse") and x["precision"] == prec and x["r"]["batch_size"] == bs]
    return min(ms) if ms else None
for prec, bs, target in [("tf32", 1, 6.0), ("fp16", 16, 40.0)]:
    ms = best(prec, bs)
    print(f"target {prec} batch {bs} <= {target:.0f} ms/step: " + ("not measured" if ms is None else f"{ms:.1f} ms ({'met' if ms <= target else 'not met'})"))
PY
fi

# ---------------------------------------------------------------- 3. tests
# The tests read fixtures from the path they were compiled in; point it at this checkout.
manifest=$(cat "$bundle/manifest_dir" 2>/dev/null || echo "")
if [ -n "$manifest" ] && [ ! -e "$manifest/tests/fixtures" ]; then
  mkdir -p "$(dirname "$manifest")" && ln -sfn "$root" "$manifest"
fi
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  echo "== tests (PULSE_TEST_DEVICE=$dev)"
  # The integration tests are one executable (`it`); the library's and the binary's unit tests
  # are two more. `--nocapture` keeps the measured figures the parity tests print.
  for t in "$bundle"/release/deps/*-test; do
    name=$(basename "$t" -test)
    case "$name" in it) limit=420; show=--nocapture ;; *) limit=240; show= ;; esac
    if (cd "$root" && PULSE_TEST_DEVICE=$dev PULSE_MODEL="$model" timeout $limit "$t" --test-threads="${TEST_THREADS:-4}" $show > "$out/test-$name.log" 2>&1); then
      echo "  $name: $(grep -E '^test result' "$out/test-$name.log" | tail -1)"
    else
      echo "  $name: FAILED (see $out/test-$name.log)"; grep -E "^test .* FAILED|panicked" "$out/test-$name.log" | head -10; status=1
    fi
  done
  # The measured figures of the parity and determinism tests on this device.
  grep -hE "^(parity|determinism) \(" "$out"/test-it.log 2>/dev/null | sort -u | sed 's/^/  /'
fi
echo "== done in $(elapsed) s, status $status"
exit $status
