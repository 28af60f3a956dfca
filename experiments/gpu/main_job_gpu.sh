#!/usr/bin/env bash
# The main job with its GPU preset (every backend side by side; the diffusion part on the embedded corpus), as
# `make run` runs it on a machine with a GPU. Record: benchmarks/h100_main_job_gpu.log.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
S=$(date +%s)
timeout ${MAIN_TIMEOUT:-330} python3 -m amtheory.cli run --preset gpu --device cuda --out results/main_gpu --no-progress \
    2>&1 | grep -v Warning | tee "$OUT/main_job_gpu.log"
echo "wall $(( $(date +%s) - S )) s" | tee -a "$OUT/main_job_gpu.log"
cp results/main_gpu/SUMMARY.md "$OUT/" 2>/dev/null
tar czf "$OUT/main_gpu_tables.tgz" --exclude=checkpoints results/main_gpu
