#!/usr/bin/env bash
# The gpu preset of the memorization sweep on one GPU as two parts run side by side: gpu-micro and gpu-small
# (results/gpu_preset_a), and gpu-quick with the Hopfield family (results/gpu_preset_b). The Hopfield family goes
# with gpu-quick since part A, with four groups to measure, was the longer part without it (about 1,000 s of
# training and measuring against 900 s; h100_memorization_gpu.log); the family took 154 s up to 21,595 blocks in
# the record at commit 9109c10 (git history), 53,167 not reached. Training keeps the card
# busy in both (beside part A, gpu-quick trained at a third of its rate alone: h100_memorization_gpu.log); the gain
# is in the measurements, whose lockstep passes wait on host work that the other part's GPU work fills. Each part
# runs through memorization_gpu_preset.sh (resumable: run this again on the same machine to finish what a job did
# not, each job stopping within MEM_TIMEOUT seconds);
# when both have finished, their data folders are merged into $OUT/memorization_data, with the wall time of all
# the jobs as the run's. Then, anywhere:
#   python experiments/summarize_memorization.py --data DATA --out docs/results_memorization.md --figures docs/figures
# Needs the prepared corpus data/brown-sotu (make data). Record: benchmarks/h100_memorization_gpu.log.
set -u
# Two processes share the card: expandable segments keep the allocator of each from fragmenting what it holds.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/a" "$OUT/b"
START=$(date +%s)
MODELS=gpu-micro,gpu-small HOPFIELD=none RESULTS=results/gpu_preset_a OUT="$OUT/a" \
    bash experiments/gpu/memorization_gpu_preset.sh > "$OUT/a/part.txt" 2>&1 &
MODELS=gpu-quick RESULTS=results/gpu_preset_b OUT="$OUT/b" \
    bash experiments/gpu/memorization_gpu_preset.sh > "$OUT/b/part.txt" 2>&1 &
wait
# The jobs' wall times add up in a file beside the results (kept while the machine is), for the run's total.
WALLS=results/gpu_preset_parts_wall_s.txt
WALL=$(( $(date +%s) - START ))
mkdir -p results && echo "$WALL" >> "$WALLS"
TOTAL=$(awk '{s += $1} END {print s}' "$WALLS")
echo "parts wall $WALL s; all jobs so far: $TOTAL s" | tee -a "$OUT/parts.txt"
for part in a b; do grep -v " gpu-" "$OUT/$part/memorization_gpu.log" | tail -8 | sed "s/^/$part: /"; done
if [ -d "$OUT/a/memorization_data" ] && [ -d "$OUT/b/memorization_data" ]; then
    PYTHONPATH=$PWD python3 experiments/summarize_memorization.py --merge "$OUT/a/memorization_data" \
        "$OUT/b/memorization_data" --data "$OUT/memorization_data" --wall-s "$TOTAL"
fi
