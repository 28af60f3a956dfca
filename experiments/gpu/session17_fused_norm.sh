#!/usr/bin/env bash
# GPU session 17 (one H200): the fused residual update + modulated LayerNorm kernels. Their tests, the DiT's and the
# trainer's fused-kernel tests on the GPU (compiled kernels, bf16 included); the kernels alone against the same map
# compiled by inductor, over launch settings; the training step (tiny and small, plain and optimised, the optimised
# ones with the fused norms and with compiled torch norms) with the per-part profile of each optimised step (every
# inductor kernel listed) and the MFU accounting table.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 170 python3 -m pytest -q -p no:cacheprovider tests/test_norm_kernels.py \
    "tests/test_diffusion_train.py::test_training_with_fused_kernels_matches_torch" \
    2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
timeout 120 python3 experiments/probe_norm_kernels.py ${PROBE_ARGS:-} 2>&1 | grep -v Warning | tee "$OUT/probe_norm_kernels.txt"
timeout 330 python3 experiments/bench_uddm_train.py --chunk-rows 32768 --variants plain,triton --norm auto,torch \
    --opt-accum small=1,small=2 --profile --no-eval --budget-s 300 --json "$OUT/bench_uddm_train.json" 2>&1 \
    | grep -v Warning | tee "$OUT/bench_uddm_train.txt"
