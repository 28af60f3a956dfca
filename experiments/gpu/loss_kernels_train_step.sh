#!/usr/bin/env bash
# The Triton loss kernels and the training step, on one GPU: the kernels' tests on the GPU; the row kernels
# against the compiled loss kernel (agreement, tile sweep, timings, GEMM rates over the padded and the unpadded
# vocabulary); the training benchmark (tiny and small: plain, compiled loss kernel, Triton row kernels with the
# swept tiles, three loss chunk sizes) with kernel profiles and the cost of retrieval evaluation.
# Records: benchmarks/h100_gpu_tests_loss_kernels.txt, h100_bench_loss_kernels.txt, h100_bench_uddm_train.txt
# (+ .json). The MFU accounting of the recorded run needs no GPU:
#   python experiments/bench_uddm_train.py --accounting-from benchmarks/h100_bench_uddm_train.json
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader
if python3 -c "import pytest, hypothesis" 2>/dev/null; then
    timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_loss_kernels.py tests/test_diffusion_loss.py 2>&1 \
        | tail -15 | tee "$OUT/gpu_tests.txt"
else
    echo "pytest or hypothesis missing here: GPU tests not run" | tee "$OUT/gpu_tests.txt"
fi
timeout 150 python3 experiments/bench_loss_kernels.py --sweep --sweep-budget-s 25 --json "$OUT/loss_kernels.json" 2>&1 \
    | grep -v Warning | tee "$OUT/bench_loss_kernels.txt"
timeout 230 python3 experiments/bench_uddm_train.py --chunk-rows 4096,16384,32768 --tiles "$OUT/loss_kernels.json" \
    --profile --budget-s 200 --json "$OUT/bench_uddm_train.json" 2>&1 | grep -v Warning | tee "$OUT/bench_uddm_train.txt"
