#!/usr/bin/env bash
# GPU session 3: the memorization-to-generalization sweep, gpu preset (full corpus carried in data/brown-sotu).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
START=$(date +%s)
timeout ${MEM_TIMEOUT:-560} python3 experiments/memorization.py --preset gpu --out results/memorization_gpu \
    --data data/brown-sotu --device cuda 2>&1 | tee "$OUT/memorization_gpu.log"
echo "wall $(( $(date +%s) - START )) s" | tee -a "$OUT/memorization_gpu.log"
tar czf "$OUT/memorization_gpu_tables.tgz" --exclude=checkpoints results/memorization_gpu
