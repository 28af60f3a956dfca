#!/usr/bin/env bash
# GPU session 6: every backend's synchronous step; the memorization sweep continued (finished cells are carried in
# as tables and skipped).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 90 python3 experiments/bench_backends_gpu.py --json "$OUT/bench_backends.json" 2>&1 | grep -v Warning | tee "$OUT/bench_backends.txt"
START=$(date +%s)
timeout ${MEM_TIMEOUT:-440} python3 experiments/memorization.py --preset gpu --out results/memorization_gpu \
    --data data/brown-sotu --device cuda --sizes 32,2048,8192,32768 2>&1 | grep -v "it/s\]" | tee "$OUT/memorization_gpu.log"
echo "wall $(( $(date +%s) - START )) s" | tee -a "$OUT/memorization_gpu.log"
tar czf "$OUT/memorization_gpu_tables.tgz" --exclude=checkpoints results/memorization_gpu
