#!/usr/bin/env bash
# GPU session 5: what makes small-set training non-finite in bf16, then the memorization sweep (gpu preset).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 100 python3 experiments/diagnose_training.py --data data/brown-sotu 2>&1 | grep -v Warning | tail -60 | tee "$OUT/diagnose_training.txt"
START=$(date +%s)
timeout ${MEM_TIMEOUT:-430} python3 experiments/memorization.py --preset gpu --out results/memorization_gpu \
    --data data/brown-sotu --device cuda 2>&1 | grep -v "it/s\]" | tee "$OUT/memorization_gpu.log"
echo "wall $(( $(date +%s) - START )) s" | tee -a "$OUT/memorization_gpu.log"
tar czf "$OUT/memorization_gpu_tables.tgz" --exclude=checkpoints results/memorization_gpu
