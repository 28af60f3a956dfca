#!/usr/bin/env bash
# The gpu preset of the memorization sweep on one GPU as three parts run side by side, one model size each:
# gpu-micro with the Hopfield family (results/gpu_preset_a), gpu-small (results/gpu_preset_b) and gpu-quick
# (results/gpu_preset_c). The family goes with gpu-micro, the part with the least training and measuring; it took
# 154 s up to 21,595 blocks in the record at commit 9109c10 (git history). Training keeps the card busy in every
# part; the gain of parts is in the measurements, whose lockstep passes wait on host work (one core a part) that
# the other parts' GPU work fills (a group of 30 measured alone kept the card below 10% busy in 23 of 99 samples:
# h100_memorization_gpu.log). Each part runs through memorization_gpu_preset.sh (resumable: run this again on the
# same machine to finish what a job did not, each job stopping within MEM_TIMEOUT seconds); when all have
# finished, their data folders are merged into $OUT/memorization_data, with the wall time of all the jobs as the
# run's. Then, anywhere:
#   python experiments/summarize_memorization.py --data DATA --out docs/results_memorization.md --figures docs/figures
# Needs the prepared corpus data/brown-sotu (make data). Record: benchmarks/h100_memorization_gpu.log.
set -u
# Three processes share the card: expandable segments keep the allocator of each from fragmenting what it holds;
# a few CPU threads each, so that their host work does not oversubscribe the cores.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
OUT=${OUT:-/tmp/out}
START=$(date +%s)
PARTS=(a b c)
MODELS_OF=(gpu-micro gpu-small gpu-quick)
HOPFIELD_OF=("" none none)
for i in 0 1 2; do
    part=${PARTS[$i]}; mkdir -p "$OUT/$part"
    MODELS=${MODELS_OF[$i]} HOPFIELD=${HOPFIELD_OF[$i]} RESULTS=results/gpu_preset_$part OUT="$OUT/$part" \
        bash experiments/gpu/memorization_gpu_preset.sh > "$OUT/$part/part.txt" 2>&1 &
done
wait
# The jobs' wall times add up in a file beside the results (kept while the machine is), for the run's total.
WALLS=results/gpu_preset_parts_wall_s.txt
WALL=$(( $(date +%s) - START ))
mkdir -p results && echo "$WALL" >> "$WALLS"
TOTAL=$(awk '{s += $1} END {print s}' "$WALLS")
echo "parts wall $WALL s; all jobs so far: $TOTAL s" | tee -a "$OUT/parts.txt"
for part in "${PARTS[@]}"; do grep -v " gpu-" "$OUT/$part/memorization_gpu.log" | tail -8 | sed "s/^/$part: /"; done
if [ -d "$OUT/a/memorization_data" ] && [ -d "$OUT/b/memorization_data" ] && [ -d "$OUT/c/memorization_data" ]; then
    PYTHONPATH=$PWD python3 experiments/summarize_memorization.py --merge "$OUT/a/memorization_data" \
        "$OUT/b/memorization_data" "$OUT/c/memorization_data" --data "$OUT/memorization_data" --wall-s "$TOTAL"
fi
