#!/usr/bin/env bash
# The whole gpu preset of the memorization sweep (training, evaluation, figures) from an empty results folder,
# timed end to end, with the trainer's defaults on CUDA. Record: benchmarks/h100_memorization_gpu.log; the
# tables are those of docs/results_memorization.md (python experiments/summarize_memorization.py).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/machine.txt"
rm -rf /tmp/memorization_gpu
START=$(date +%s)
timeout ${MEM_TIMEOUT:-580} python3 experiments/memorization.py --preset gpu --out /tmp/memorization_gpu \
    --data data/brown-sotu --device cuda --figures /tmp/figures 2>&1 | grep -v "it/s\]" \
    | tee "$OUT/memorization_gpu.log"
echo "wall $(( $(date +%s) - START )) s" | tee -a "$OUT/memorization_gpu.log"
tar czf "$OUT/memorization_gpu_tables.tgz" --exclude=checkpoints -C /tmp memorization_gpu
