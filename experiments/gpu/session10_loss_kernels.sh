#!/usr/bin/env bash
# GPU session 10: the Triton loss kernels' tests on the GPU; the row kernels against the compiled loss kernel
# (agreement, tile sweep, timings, GEMM rates over the padded and the unpadded vocabulary); the training benchmark
# (tiny and small: plain, compiled loss kernel, Triton row kernels) with kernel profiles; a short training run of
# the trainer's CLI with its defaults (loss kernel "auto": triton on CUDA).
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
timeout 90 python3 -m amtheory.diffusion.train --data data/brown-sotu --n-train 4096 --preset tiny --steps 300 \
    --warmup 50 --lr 1e-3 --compile --log-every 50 --no-progress --out /tmp/train_run 2>&1 | grep -v Warning \
    | tee "$OUT/train_cli.txt" | tail -5
