#!/usr/bin/env bash
# GPU session 7a: the whole gpu memorization preset (training, evaluation, figures) from an empty results folder,
# timed end to end on one H100.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/machine.txt"
rm -rf results/memorization_gpu
START=$(date +%s)
timeout ${MEM_TIMEOUT:-570} python3 experiments/memorization.py --preset gpu --out results/memorization_gpu \
    --data data/brown-sotu --device cuda --figures "$OUT/figures" 2>&1 | grep -v "it/s\]" \
    | tee "$OUT/memorization_gpu.log"
echo "wall $(( $(date +%s) - START )) s" | tee -a "$OUT/memorization_gpu.log"
tar czf "$OUT/memorization_gpu_tables.tgz" --exclude=checkpoints results/memorization_gpu
