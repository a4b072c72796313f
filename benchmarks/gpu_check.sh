#!/usr/bin/env bash
# benchmarks/gpu_check.py on the lent GPU machine (the `device` tool), from the repository root:
# installs the carried wheels (.whl/: vapoursynth 81, spandrel) and vsrestore itself into
# /tmp/site (that machine has torch, numba-cuda, OpenCV and scikit-image), then writes the
# report to $OUT. Fetch the wheels here first (see benchmarks/gpu_check.py).
set -euo pipefail
out=${OUT:-gpu-check}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
PYTHONPATH=/tmp/site python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --target /tmp/site .
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
python3 benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
