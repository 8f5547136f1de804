#!/usr/bin/env bash
# Encoder, pipeline-stage and dense-scoring benchmarks on a CUDA device (bf16 encoder; falls back to
# the CPU), inside 10 minutes. Run from the repo root. See bench/README.md for the offline GPU machine.
#   GPU_BENCH_QUICK=1  tiny sizes (a CPU smoke run of the script itself)
#   GPU_BENCH_PIPELINE=1  also `bench pipeline --catalog-size` (the bulk load of a generated catalog,
#                      then the worker): needs Kafka and Redis (SIMSTREAM_KAFKA_BOOTSTRAP, SIMSTREAM_REDIS_URL)
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

# SCORING: block_top_k's catalog rows (bench scoring runs it on the CPU, and on cuda when there is one).
# PIPELINE: the bench pipeline arguments (a generated catalog of --catalog-size products in all).
if [ "${GPU_BENCH_QUICK:-0}" = "1" ]; then
  ITEMS=64; REPEATS=1; CATALOG=256; SCORING=500
  PIPELINE=(--catalog-size 300 --catalog-limit 100 --backlog 20 --paced-seconds 2 --encode-budget-s 0)
elif [ "$CUDA" = "True" ]; then
  ITEMS=16384; REPEATS=3; CATALOG=100000; SCORING=100000
  PIPELINE=(--catalog-size 100000 --encode-budget-s 30 --paced-seconds 10)
else
  ITEMS=512; REPEATS=2; CATALOG=10000; SCORING=20000
  PIPELINE=(--catalog-size 10000 --encode-budget-s 30 --paced-seconds 10)
fi

# timeout keeps each step inside the 10-minute budget even on a slow machine.
timeout 300 "$PYTHON" -m simstream bench encoder --json --n-items "$ITEMS" --repeats "$REPEATS" \
  | tee "$RESULTS/encoder.json"
timeout 240 "$PYTHON" -m simstream bench stage --json --n-items "$ITEMS" --repeats "$REPEATS" \
  --catalog-limit "$CATALOG" | tee "$RESULTS/stage.json"
timeout 240 "$PYTHON" -m simstream bench scoring --json --size "$SCORING" | tee "$RESULTS/scoring.json"
if [ "${GPU_BENCH_PIPELINE:-0}" = "1" ]; then
  timeout 300 "$PYTHON" -m simstream bench pipeline --json "${PIPELINE[@]}" | tee "$RESULTS/pipeline.json"
else
  echo "bench pipeline skipped (GPU_BENCH_PIPELINE=1 with Kafka and Redis reachable runs it)"
fi

"$PYTHON" - "$RESULTS/encoder.json" "$RESULTS/stage.json" "$RESULTS/scoring.json" "$RESULTS/pipeline.json" <<'PY'
import json, os, sys
encoder = json.load(open(sys.argv[1]))
stage = json.load(open(sys.argv[2]))
scoring = json.load(open(sys.argv[3]))
bound = stage["flop_bound"]
ours = encoder["simstream"]["items_per_s"]
print(f"device {stage['config']['device']} {stage['config']['gpu'] or ''}, matmul {stage['matmul']['tflops']} TFLOP/s "
      f"({stage['matmul']['dtype']} {stage['matmul']['n']}^2)")
print(f"encoder: {ours:.1f} items/s; FLOP bound {bound['items_per_s']:.1f} items/s "
      f"(2 x {bound['non_embedding_parameters']} params x {bound['tokens_per_item']} tokens): {ours / bound['items_per_s']:.1%}")
print(f"stage (encode + exact top-{stage['top_k']['k']} over {stage['top_k']['catalog']}): {stage['stage_items_per_s']} items/s")
for device, rows in scoring["devices"].items():
    for row in rows["dense_scores"]:
        print(f"{device} dense_scores {row['batch']} x {row['affected']}: {row['seconds']} s, {row['rows_per_s']} rows/s")
    for row in rows["block_top_k"]:
        print(f"{device} block_top_k k={row['k']} N={row['n']}: {row['seconds']} s, {row['rows_per_s']} rows/s")
if os.environ.get("GPU_BENCH_PIPELINE") == "1":
    pipeline = json.load(open(sys.argv[4]))
    setup, saturate = pipeline.get("setup", {}), pipeline["saturate"]
    print(f"pipeline on {pipeline['config']['catalog']} products: setup generate {setup.get('generate_s')} s, "
          f"write {setup.get('write_s')} s, lists {setup.get('lists_s')} s; load {pipeline['load']['products_per_s']}/s, "
          f"sustained {saturate['products_per_s']}/s, {saturate['round_trips_per_batch']} round trips/batch")
PY
