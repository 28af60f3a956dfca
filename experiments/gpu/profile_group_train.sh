#!/usr/bin/env bash
# Where the group step of the gpu preset's 256-wide model spends its time: gpu-quick (256 x 6, 64-token blocks,
# V = 8,192, batch 64) in a group of 30, float32 with TF32 as the preset trains and then bf16 autocast, compiled;
# each timed over 8 steps and then 3 steps profiled (top kernels, device time by part of the step): about a
# minute (59 s on an H100). Record: benchmarks/h100_profile_group_train.txt.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
for precision in fp32 bf16; do
    timeout 200 python3 experiments/bench_group_train.py --shapes gpu-quick --group-sizes 30 --steps 8 --warmup 2 \
        --precision "$precision" --profile --out "$OUT/$precision" 2>&1 | grep -v Warning \
        | tee -a "$OUT/profile_group_train.txt"
done
# The update on its own, eager against compiled, for the three shapes at 30 members (record:
# benchmarks/h100_bench_group_update.txt; about a minute).
timeout 150 python3 experiments/bench_group_update.py --group-size 30 --out "$OUT/update" 2>&1 | grep -v Warning
