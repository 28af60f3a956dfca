#!/usr/bin/env bash
# The fused residual update + modulated LayerNorm kernels, on one GPU: their tests and the trainer's fused-kernel
# test on the GPU (compiled kernels, bf16 included); the kernels alone against the same map compiled by inductor,
# over launch settings, with the host's cost per call (PROBE_ARGS=--no-sweep keeps the default launch settings).
# Records: benchmarks/h200_gpu_tests_norm_kernels.txt, h200_probe_norm_kernels.txt (both with
# PROBE_ARGS=--no-sweep).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 170 python3 -m pytest -q -p no:cacheprovider tests/test_norm_kernels.py \
    "tests/test_diffusion_train.py::test_training_with_fused_kernels_matches_torch" \
    2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
timeout 120 python3 experiments/probe_norm_kernels.py ${PROBE_ARGS:-} 2>&1 | grep -v Warning | tee "$OUT/probe_norm_kernels.txt"
