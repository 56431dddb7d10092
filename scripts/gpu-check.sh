#!/usr/bin/env bash
# Prove the CUDA path on one GPU, in under 5 minutes: the `gpu`-marked tests (GPU == CPU in fp32,
# bf16 / fp16 within tolerance, out-of-memory halving under a forced memory cap, training steps), then
# the GPU throughput benchmark (output MP/s and achieved TFLOP/s of both presets at several tiles),
# the precision benchmark and whether torch.compile pays (benchmarks/compile.py; a failure there is
# reported, not fatal). Results go to $OUT (default benchmarks/results/gpu); copy the figures into
# benchmarks/README.md.
#
# Set-up as scripts/test.sh (venv, packages), keeping a CUDA build of torch already installed; on a
# machine with only the CPU wheel at hand set EMSR_TORCH_VERSION to a CUDA build pip can reach.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
emsr_venv "test"
cd "$ROOT"
OUT="${OUT:-$ROOT/benchmarks/results/gpu}"
mkdir -p "$OUT"
"$VENV/bin/python" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible to torch: run this on a GPU machine with a CUDA build of torch"
p = torch.cuda.get_device_properties(0)
print(f"[gpu] {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
PY
echo "[gpu] tests (-m gpu)"
timeout 180 "$VENV/bin/python" -m pytest -m gpu -p no:xvfb -q tests/test_gpu.py --junitxml="$OUT/gpu-tests.xml" 2>&1 | tee "$OUT/gpu-tests.log"
echo "[gpu] throughput (both presets, several tiles, fp32)"
timeout 120 "$VENV/bin/python" benchmarks/predict_throughput.py --device cuda --presets paper,lite \
    --tiles 256,512,1024 --repeats 3 --json "$OUT/predict_throughput_gpu.json" 2>&1 | tee "$OUT/throughput.log"
echo "[gpu] precision (fp32 against bf16, end to end)"
(cd benchmarks && timeout 60 "$VENV/bin/python" precision.py --device cuda --repeats 3 --json "$OUT/precision_gpu.json") \
    2>&1 | tee "$OUT/precision.log"
echo "[gpu] torch.compile (the default model, bf16, the default GPU window): does it pay?"
(cd benchmarks && timeout 120 "$VENV/bin/python" compile.py --device cuda --precisions bf16 --windows 1064 \
    --repeats 5 --json "$OUT/compile_gpu.json") 2>&1 | tee "$OUT/compile.log" || true
echo "[gpu] done: $OUT"
