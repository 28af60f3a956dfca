#!/usr/bin/env bash
# The training step of the paper's tiny and small DiTs at batch 512 x 128, V = 30,522, on one GPU: the trainer's
# optimised step with the fused residual norms ("auto") and with compiled torch norms, small in one pass of 512
# and as 2 x 256, with the MFU accounting table at the end. Record: benchmarks/h200_bench_uddm_train.txt (+ .json).
# Add --variants plain,triton to time the plain formulation beside it, and --profile for each step's kernels.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 170 python3 experiments/bench_uddm_train.py --configs small,tiny --chunk-rows 32768 --variants triton \
    --norm auto,torch --opt-accum small=1,small=2 --no-eval --budget-s 140 --json "$OUT/bench_uddm_train.json" 2>&1 \
    | grep -v Warning | tee "$OUT/bench_uddm_train.txt"
