#!/usr/bin/env bash
# GPU session 12: the transformer blocks compiled with autotuning (mode max-autotune-no-cudagraphs: Triton GEMM
# templates and pointwise configs tried against cuBLAS) against the default mode, the loss kernel "triton".
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 140 python3 experiments/bench_uddm_train.py --chunk-rows 32768 --variants plain,triton --budget-s 120 \
    --steps 20 2>&1 | grep -v Warning | grep "^|" | tee "$OUT/compile_default.txt"
timeout 420 python3 experiments/bench_uddm_train.py --chunk-rows 32768 --variants triton --budget-s 400 \
    --compile-mode max-autotune-no-cudagraphs --steps 20 2>&1 | grep -v Warning | grep -v "^AUTOTUNE\|^  triton_\|^  mm \|SingleProcess" \
    | tail -30 | tee "$OUT/compile_max_autotune.txt"
