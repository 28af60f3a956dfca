#!/usr/bin/env bash
# Scale-out of one training run over 1, 2, 4 and 8 GPUs of one host: torchrun + DistributedDataParallel (NCCL, NVLink
# multicast off), the paper's small and tiny DiTs on 128-token blocks of brown-sotu (full vocabulary, V = 30,522),
# the global batch 512 x 128 at every count (512 / N sequences per GPU), bf16 autocast, compiled blocks, 150 steps a
# run. Steady-state tokens/s from the runs' log.jsonl after the first 30 steps, efficiency against one GPU, and the
# 90% target for small at 8 GPUs. small runs first, so the time budget cuts tiny rather than the target; PRESETS=tiny
# runs the rest (into another OUT). Record: benchmarks/h100x8_ddp_scaling.txt (+ .json).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PRESETS=${PRESETS:-small,tiny}
nvidia-smi -L | tee "$OUT/gpus.txt"
nvidia-smi topo -m | tee -a "$OUT/gpus.txt"
timeout 590 python3 experiments/bench_ddp_scaling.py --presets "$PRESETS" --gpus 1,2,4,8 --data data/brown-sotu \
    --steps 150 --timeout-s 180 --budget-s 400 --out "$OUT" 2>&1 | grep -v Warning | tee "$OUT/bench_ddp_scaling.log"
