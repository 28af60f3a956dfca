#!/usr/bin/env bash
# GPU session 16 (one H200): inductor options of the compiled blocks against the default, each in its own process
# (tiny and small in one pass, the trainer's optimised step, 10 timed steps).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
for opts in "" '{"coordinate_descent_tuning": true}' '{"aggressive_fusion": true}'; do
    echo "=== compile options: ${opts:-default}" | tee -a "$OUT/inductor_options.txt"
    timeout 170 python3 experiments/bench_uddm_train.py --chunk-rows 32768 --variants triton --opt-accum small=1 \
        --steps 10 --no-eval --budget-s 140 ${opts:+--compile-options "$opts"} 2>&1 | grep -v Warning \
        | grep "^|\|^{\|^device\|^measured\|options" | tee -a "$OUT/inductor_options.txt"
done
