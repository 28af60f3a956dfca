#!/usr/bin/env bash
# GPU session 11: the whole gpu memorization preset again, from an empty results folder, with the trainer's new
# defaults on CUDA (padded head, Triton loss kernels): end-to-end time and the same summary as session 7a, to
# compare with benchmarks/h100_memorization_gpu.log (compiled loss kernel).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
rm -rf /tmp/memorization_gpu
START=$(date +%s)
timeout ${MEM_TIMEOUT:-580} python3 experiments/memorization.py --preset gpu --out /tmp/memorization_gpu \
    --data data/brown-sotu --device cuda --figures /tmp/figures 2>&1 | grep -v "it/s\]" \
    | tee "$OUT/memorization_gpu_triton.log"
echo "wall $(( $(date +%s) - START )) s" | tee -a "$OUT/memorization_gpu_triton.log"
tar czf "$OUT/memorization_gpu_triton_tables.tgz" --exclude=checkpoints -C /tmp memorization_gpu
