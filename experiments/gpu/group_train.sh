#!/usr/bin/env bash
# Group training against one model at a time on one GPU: the memorization study's gpu-preset models (gpu-small
# 128 x 4, gpu-quick 256 x 6; 64-token blocks, V = 8,192, batch 256), bf16 autocast, compiled blocks. One model at a
# time with the single trainer's step, then groups of 32, 16, 8 and 1 members (the 256-wide model first and the
# largest groups first, so the time budget cuts the least telling ones): aggregate tokens/s, speed-up and MFU
# against the bf16 rate measured in the same run and against 989 TFLOP/s. About 4-5 minutes.
# Record: benchmarks/h100_bench_group_train.txt (+ .json).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 290 python3 experiments/bench_group_train.py --shapes gpu-quick,gpu-small --group-sizes 32,16,8,1 \
    --budget-s 230 --out "$OUT" 2>&1 | grep -v Warning | tee "$OUT/bench_group_train.log"
