#!/usr/bin/env bash
# The group training step of the gpu preset's models as the preset trains them (30 members, 64 blocks of 64
# tokens, float32 with TF32, compiled blocks), timed over 8 steps after 2, for the package here and, with BASE=DIR
# (a copy of the package at the commit to compare against), for that package first, on the same card; PROFILE=1
# profiles the steps of the package here (kernels by part of the step). SHAPES: a comma list (default all three).
# About a minute a shape and package.
#   OUT=DIR [BASE=DIR] [PROFILE=1] [SHAPES=gpu-micro,gpu-small] bash experiments/gpu/group_train_compare.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
ARGS=(--shapes "${SHAPES:-gpu-micro,gpu-small,gpu-quick}" --group-sizes 30 --steps 8 --warmup 2 --precision fp32)
if [ -n "${BASE:-}" ]; then
    # -P: the package comes from BASE alone, not from the working folder.
    PYTHONPATH=$BASE timeout 300 python3 -P experiments/bench_group_train.py "${ARGS[@]}" --out "$OUT/base" 2>&1 \
        | grep -v Warning | tee "$OUT/base.txt"
fi
PYTHONPATH=$PWD timeout 300 python3 experiments/bench_group_train.py "${ARGS[@]}" ${PROFILE:+--profile} \
    --out "$OUT/new" 2>&1 | grep -v Warning | tee "$OUT/new.txt"
