#!/usr/bin/env bash
# Multi-GPU training through torchrun + DistributedDataParallel (NCCL) on two GPUs: 200 steps, then the same run
# resumed from its checkpoint to 300 steps, beside a one-GPU run of 300 steps with the same settings.
# Record: benchmarks/h200x2_ddp_train.txt.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/ddp.txt"
ARGS="--data data/brown-sotu --n-train 2048 --preset gpu-quick --length 64 --batch-size 512 --warmup 50 --lr 5e-4
      --checkpoint-every 100 --log-every 50 --compile --no-progress"
run() { echo "\$ $*" | tee -a "$OUT/ddp.txt"; S=$(date +%s); "$@" 2>&1 | grep -v Warning | tail -4 | tee -a "$OUT/ddp.txt";
        echo "wall $(( $(date +%s) - S )) s" | tee -a "$OUT/ddp.txt"; }
run timeout 150 torchrun --standalone --nproc-per-node 2 -m amtheory.diffusion.train $ARGS --steps 200 --out /tmp/ddp
run timeout 120 torchrun --standalone --nproc-per-node 2 -m amtheory.diffusion.train $ARGS --steps 300 --out /tmp/ddp
run timeout 150 python3 -m amtheory.diffusion.train $ARGS --steps 300 --out /tmp/one
for d in ddp one; do echo "--- /tmp/$d/log.jsonl" | tee -a "$OUT/ddp.txt"; cut -c1-220 /tmp/$d/log.jsonl | tee -a "$OUT/ddp.txt"; done
ls /tmp/ddp /tmp/one | tee -a "$OUT/ddp.txt"
