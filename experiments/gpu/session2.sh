#!/usr/bin/env bash
# GPU session 2: diffusion LM training benchmark (plain vs optimised), classical Hopfield benchmark with fusion.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 330 python3 experiments/bench_uddm_train.py --json "$OUT/bench_uddm.json" 2>&1 | tee "$OUT/bench_uddm.txt"
timeout 200 python3 experiments/bench_classical_gpu.py --json "$OUT/bench_classical.json" 2>&1 | tee "$OUT/bench_classical.txt"
