#!/usr/bin/env bash
# The gpu preset of the memorization sweep on one GPU as two parts run side by side: gpu-micro and gpu-small with
# the Hopfield family (results/gpu_preset_a), and gpu-quick alone (results/gpu_preset_b). The small models' steps
# and the lockstep measurements are bound by host work, the 256-wide model's training by the GPU, so the two
# processes share the card with little waiting. Each part runs through memorization_gpu_preset.sh (resumable: run
# this again on the same machine to finish what a job did not, each job stopping within MEM_TIMEOUT seconds);
# when both have finished, their data folders are merged into $OUT/memorization_data. Then, anywhere:
#   python experiments/summarize_memorization.py --data DATA --out docs/results_memorization.md --figures docs/figures
# Needs the prepared corpus data/brown-sotu (make data). Record: benchmarks/h100_memorization_gpu.log.
set -u
# Two processes share the card: expandable segments keep the allocator of each from fragmenting what it holds.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/a" "$OUT/b"
START=$(date +%s)
MODELS=gpu-micro,gpu-small RESULTS=results/gpu_preset_a OUT="$OUT/a" \
    bash experiments/gpu/memorization_gpu_preset.sh > "$OUT/a/part.txt" 2>&1 &
MODELS=gpu-quick HOPFIELD=none RESULTS=results/gpu_preset_b OUT="$OUT/b" \
    bash experiments/gpu/memorization_gpu_preset.sh > "$OUT/b/part.txt" 2>&1 &
wait
echo "parts wall $(( $(date +%s) - START )) s" | tee -a "$OUT/parts.txt"
for part in a b; do grep -v " gpu-" "$OUT/$part/memorization_gpu.log" | tail -8 | sed "s/^/$part: /"; done
if [ -d "$OUT/a/memorization_data" ] && [ -d "$OUT/b/memorization_data" ]; then
    PYTHONPATH=$PWD python3 experiments/summarize_memorization.py --merge "$OUT/a/memorization_data" \
        "$OUT/b/memorization_data" --data "$OUT/memorization_data"
fi
