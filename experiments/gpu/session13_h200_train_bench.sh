#!/usr/bin/env bash
# GPU session 13 (one H200): the loss kernels' tests on the GPU; their tile sweep, agreement and timings at the
# 32,768-row chunk of the training step; the training step with the default tiles and with the swept ones (tiny
# and small, plain and Triton; small also without gradient accumulation), with the MFU accounting table.
# (In the run recorded in benchmarks/h200_bench_uddm_train.txt and h200_bench_loss_kernels.txt, the sweep also tried a one-read form of the statistics
# kernel that has since been removed: benchmarks/h200_row_stats_whole_row_trial.txt.)
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_loss_kernels.py tests/test_diffusion_loss.py 2>&1 \
    | tail -15 | tee "$OUT/gpu_tests.txt"
timeout 100 python3 experiments/bench_loss_kernels.py --rows 32768 --sweep --sweep-budget-s 20 \
    --json "$OUT/loss_kernels.json" 2>&1 | grep -v Warning | tee "$OUT/bench_loss_kernels.txt"
echo "=== training step, the previous default tiles (two sweeps)" | tee "$OUT/bench_uddm_train_old_tiles.txt"
timeout 90 python3 experiments/bench_uddm_train.py --chunk-rows 32768 --variants triton --steps 10 --budget-s 70 \
    2>&1 | grep -v Warning | grep "^|\|^{\|^device\|^measured\|^Triton" | tee -a "$OUT/bench_uddm_train_old_tiles.txt"
timeout 270 python3 experiments/bench_uddm_train.py --chunk-rows 32768 --variants plain,triton \
    --opt-accum small=1,small=2 --tiles "$OUT/loss_kernels.json" --budget-s 230 --json "$OUT/bench_uddm_train.json" \
    2>&1 | grep -v Warning | tee "$OUT/bench_uddm_train.txt"
