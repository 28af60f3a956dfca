#!/usr/bin/env bash
# GPU session 15 (one H200): the fused rotary attention kernels. Their tests and the DiT's on the GPU (bf16
# compiled); the block attention against SDPA's kernels at the benchmark's shapes; the training step (tiny and
# small, plain and optimised, the optimised ones with the fused attention and with SDPA's flash kernel) with the
# per-part profile of each optimised step and the MFU accounting table. (The tiles were chosen before, from
# experiments/probe_attention_kernels.py: benchmarks/h200_probe_attention_kernels.txt.)
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_attention_kernels.py tests/test_diffusion_model.py \
    2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
timeout 120 python3 experiments/bench_block_attention.py --json "$OUT/block_attention.json" 2>&1 \
    | grep -v Warning | tee "$OUT/block_attention.txt"
timeout 330 python3 experiments/bench_uddm_train.py --chunk-rows 32768 --variants plain,triton --attention auto,sdpa \
    --opt-accum small=1,small=2 --profile --budget-s 300 --json "$OUT/bench_uddm_train.json" 2>&1 \
    | grep -v Warning | tee "$OUT/bench_uddm_train.txt"
