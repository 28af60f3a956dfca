#!/usr/bin/env bash
# The three Hopfield-family sweeps with their full presets on one GPU (capacity, basins vs load, dense scaling),
# then the Hopfield part of the main job with its GPU preset. Their per-cell tables (docs/data/hopfield) come from
# python experiments/summarize_hopfield.py --export results --data docs/data/hopfield, and the page from them with
# python experiments/summarize_hopfield.py --data docs/data/hopfield --out docs/results_hopfield.md. A sweep cut
# short by its time limit resumes where it stopped when the script runs again.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for e in capacity basins_vs_load dense_scaling; do
  timeout 55 python3 experiments/$e.py --preset full --out results/$e --device cuda --no-progress 2>&1 | tail -3 | tee -a "$OUT/hopfield_full.log"
done
timeout 45 python3 -m amtheory run --part hopfield --preset gpu --out results/main_gpu --no-progress 2>&1 | tail -25 | tee -a "$OUT/hopfield_full.log"
tar czf "$OUT/hopfield_results.tgz" results
