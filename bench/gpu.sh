#!/usr/bin/env bash
# Encoder and pipeline-stage benchmarks on a CUDA device in bf16 (falls back to the CPU), well
# inside 10 minutes. Run from the repo root. See bench/README.md for the offline GPU machine.
#   GPU_BENCH_QUICK=1  tiny sizes (a CPU smoke run of the script itself)
#   GPU_BENCH_OUT=dir  where the JSON results go (default: $OUT, else /tmp/simstream-bench)
#   GPU_BENCH_CARRY=dir  wheels/ and model/ made by bench/prepare_carry.sh (default: .gpu)
set -euo pipefail

PYTHON="${PYTHON:-python3}"
RESULTS="${GPU_BENCH_OUT:-${OUT:-/tmp/simstream-bench}}"
CARRY="${GPU_BENCH_CARRY:-.gpu}"
WHEELS="$CARRY/wheels"
mkdir -p "$RESULTS"

# The package maps top-level folders to simstream.* (package-dir), so it must be installed to import.
if ! "$PYTHON" -c 'import simstream.core.encoder' 2>/dev/null; then
  if [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/simstream-site "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/simstream-site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/simstream-pkg . \
    || { echo "cannot install simstream (no setuptools?): see bench/README.md" >&2; exit 2; }
  export PYTHONPATH="/tmp/simstream-pkg${PYTHONPATH:+:$PYTHONPATH}"
fi
# A model folder carried beside the repo (bench/prepare_carry.sh) wins over the installed model package.
if [ -z "${SIMSTREAM_MODEL:-}" ] && [ -d "$CARRY/model" ]; then
  export SIMSTREAM_MODEL="$PWD/$CARRY/model"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

CUDA="$("$PYTHON" -c 'import torch; print(torch.cuda.is_available())')"
echo "cuda available: $CUDA"
if [ "$CUDA" = "True" ]; then
  "$PYTHON" -c 'import torch; print(torch.cuda.get_device_name())'
  export SIMSTREAM_DEVICE=cuda
else
  export SIMSTREAM_DEVICE=cpu
fi

if [ "${GPU_BENCH_QUICK:-0}" = "1" ]; then
  ITEMS=64; REPEATS=1; CATALOG=256
elif [ "$CUDA" = "True" ]; then
  ITEMS=16384; REPEATS=3; CATALOG=100000
else
  ITEMS=512; REPEATS=2; CATALOG=10000
fi

# timeout keeps each step inside the 10-minute budget even on a slow machine.
timeout 300 "$PYTHON" -m simstream bench encoder --json --n-items "$ITEMS" --repeats "$REPEATS" \
  | tee "$RESULTS/encoder.json"
timeout 240 "$PYTHON" -m simstream bench stage --json --n-items "$ITEMS" --repeats "$REPEATS" \
  --catalog-limit "$CATALOG" | tee "$RESULTS/stage.json"

"$PYTHON" - "$RESULTS/encoder.json" "$RESULTS/stage.json" <<'PY'
import json, sys
encoder = json.load(open(sys.argv[1]))
stage = json.load(open(sys.argv[2]))
bound = stage["flop_bound"]
ours = encoder["simstream"]["items_per_s"]
print(f"device {stage['config']['device']} {stage['config']['gpu'] or ''}, matmul {stage['matmul']['tflops']} TFLOP/s "
      f"({stage['matmul']['dtype']} {stage['matmul']['n']}^2)")
print(f"encoder: {ours:.1f} items/s; FLOP bound {bound['items_per_s']:.1f} items/s "
      f"(2 x {bound['non_embedding_parameters']} params x {bound['tokens_per_item']} tokens): {ours / bound['items_per_s']:.1%}")
print(f"stage (encode + exact top-{stage['top_k']['k']} over {stage['top_k']['catalog']}): {stage['stage_items_per_s']} items/s")
PY
