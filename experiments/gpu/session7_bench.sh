#!/usr/bin/env bash
# GPU session 7b: the training benchmark on an H100 (tiny and small, three loss chunk sizes, kernel profiles,
# reverse-chain cost), then the per-phase step breakdown and a bf16 trace of the memorizing 32-block run with cuDNN
# attention left out.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 330 python3 experiments/bench_uddm_train.py --chunk-rows 1024,4096,16384 --profile --budget-s 280 \
    --json "$OUT/bench_uddm_train.json" 2>&1 | grep -v Warning | tee "$OUT/bench_uddm_train.txt"
timeout 150 python3 experiments/diagnose_training.py --data data/brown-sotu --compile 2>&1 | grep -v Warning | tail -80 \
    | tee "$OUT/diagnose_training.txt"
