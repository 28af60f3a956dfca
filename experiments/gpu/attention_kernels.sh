#!/usr/bin/env bash
# The fused rotary attention kernels, on one GPU: their tests and the DiT's on the GPU (bf16, compiled); the
# per-kernel probe at small's and tiny's shapes (tiles, registers, spills, against SDPA's flash kernels); the
# block attention against each of SDPA's kernels at the training benchmark's shapes.
# Records: benchmarks/h200_probe_attention_kernels.txt, h200_bench_block_attention.txt (+ .json); the tests are
# part of the whole suite in benchmarks/h200_gpu_tests.txt.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_attention_kernels.py tests/test_diffusion_model.py \
    2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
for c in small tiny; do
    timeout 120 python3 experiments/probe_attention_kernels.py --config $c 2>&1 | grep -v Warning \
        | tee -a "$OUT/probe_attention_kernels.txt"
done
timeout 120 python3 experiments/bench_block_attention.py --json "$OUT/block_attention.json" 2>&1 \
    | grep -v Warning | tee "$OUT/block_attention.txt"
