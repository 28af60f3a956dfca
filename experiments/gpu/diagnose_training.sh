#!/usr/bin/env bash
# Where the time of a training step goes and what happens at the first non-finite step: the diagnosis of the
# memorization sweep's setting (128 x 4 x 4 DiT, 32 blocks of 64 tokens, bf16 autocast), eager and compiled.
# Records: benchmarks/h200_diagnose_training.txt (the eager command, last 60 lines) and
# benchmarks/h100_diagnose_training.txt (the compiled one).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 100 python3 experiments/diagnose_training.py --data data/brown-sotu 2>&1 | grep -v Warning | tail -60 \
    | tee "$OUT/diagnose_training.txt"
timeout 150 python3 experiments/diagnose_training.py --data data/brown-sotu --compile 2>&1 | grep -v Warning | tail -80 \
    | tee "$OUT/diagnose_training_compiled.txt"
