#!/usr/bin/env bash
# The Triton loss kernels at the training step's 32,768-row chunk, on one GPU: their tests and the loss's on the
# GPU, then the tile sweep, agreement with the compiled loss kernel, timings and the head's GEMM rates.
# Record: benchmarks/h200_bench_loss_kernels.txt (+ .json), the tests' summary at its top.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_loss_kernels.py tests/test_diffusion_loss.py 2>&1 \
    | tail -15 | tee "$OUT/gpu_tests.txt"
timeout 100 python3 experiments/bench_loss_kernels.py --rows 32768 --sweep --sweep-budget-s 20 \
    --json "$OUT/loss_kernels.json" 2>&1 | grep -v Warning | tee "$OUT/bench_loss_kernels.txt"
