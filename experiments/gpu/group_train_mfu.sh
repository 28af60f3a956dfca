#!/usr/bin/env bash
# Where the 256-wide model's group step (gpu-quick, 30 members, 64 blocks of 64 tokens, bf16 autocast, compiled)
# spends the time that keeps it from 30% MFU: the step timed and profiled as it trains today (kernels by part of
# the step, and the eager kernels by the operator that launched them), then timed with inductor autotuning its
# GEMMs (TORCHINDUCTOR_MAX_AUTOTUNE_GEMM=1: Triton GEMM templates that can take the elementwise work around them
# into their epilogues). About 4 minutes, most of it the autotuning's compile.
#   OUT=DIR [SHAPES=gpu-quick] bash experiments/gpu/group_train_mfu.sh
# Record: benchmarks/h100_profile_group_train_operators.txt.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
ARGS=(--shapes "${SHAPES:-gpu-quick}" --group-sizes 30 --steps 8 --warmup 2 --precision bf16)
timeout 240 python3 experiments/bench_group_train.py "${ARGS[@]}" --profile --out "$OUT/default" 2>&1 \
    | grep -v Warning | tee "$OUT/default.txt"
START=$(date +%s)
TORCHINDUCTOR_MAX_AUTOTUNE_GEMM=1 timeout 300 python3 experiments/bench_group_train.py "${ARGS[@]}" \
    --out "$OUT/autotune" 2>&1 | grep -v Warning | tee "$OUT/autotune.txt"
echo "autotuned run: $(( $(date +%s) - START )) s with its compile" | tee -a "$OUT/autotune.txt"
