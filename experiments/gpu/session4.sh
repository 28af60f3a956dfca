#!/usr/bin/env bash
# GPU session 4: modern Hopfield kernels, diffusion LM training (plain vs optimised), full Hopfield presets.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 210 python3 experiments/bench_modern_hopfield.py --json "$OUT/bench_modern.json" 2>&1 | grep -v Warning | tee "$OUT/bench_modern.txt"
timeout 120 python3 experiments/bench_uddm_train.py --budget-s 90 --json "$OUT/bench_uddm.json" 2>&1 | tee "$OUT/bench_uddm.txt"
for e in capacity basins_vs_load dense_scaling; do
  timeout 55 python3 experiments/$e.py --preset full --out results/$e --device cuda --no-progress 2>&1 | tail -3 | tee -a "$OUT/hopfield_full.log"
done
timeout 45 python3 -m amtheory run --part hopfield --preset gpu --out results/main_gpu --no-progress 2>&1 | tail -25 | tee -a "$OUT/hopfield_full.log"
tar czf "$OUT/hopfield_results.tgz" results
