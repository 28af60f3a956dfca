#!/usr/bin/env bash
# The whole gpu preset of the memorization sweep (training, every measurement) into results/gpu_preset, resumable:
# run it again on the same machine to finish what a job did not; each job stops within MEM_TIMEOUT seconds
# (default 560). MODELS=gpu-micro,gpu-small runs a part of the sweep (those model sizes, the Hopfield family beside
# them; HOPFIELD=none leaves those to another part, MODELS=none runs the family alone), so that each part fits one
# time-limited job and a machine lost between jobs costs one part only (memorization_gpu_parts.sh runs four such
# parts, staged); MEASURE_LOCK=FILE
# makes the parts that share the card measure one at a time. When a job
# finishes its sweep it exports the per-cell summary tables into $OUT/memorization_data (six files, a few MB).
# The parts' folders are merged, and the page and figures built, anywhere:
#   python experiments/summarize_memorization.py --merge PART_A PART_B --data docs/data/memorization
#   python experiments/summarize_memorization.py --data docs/data/memorization --out docs/results_memorization.md \
#       --figures docs/figures
# Needs the prepared corpus data/brown-sotu (make data; about 9 MB, carried to the machine).
# Record: benchmarks/h100_memorization_gpu.log (the stage times of every job, and the wall time).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RESULTS=${RESULTS:-results/gpu_preset}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/machine.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/machine.txt"
( nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 5 >> "$OUT/smi.txt" ) &
SMI=$!
START=$(date +%s)
PART=()
[ -n "${MODELS:-}" ] && PART=(--models "$MODELS")
[ -n "${HOPFIELD:-}" ] && PART+=(--hopfield "$HOPFIELD")
[ -n "${MEASURE_LOCK:-}" ] && PART+=(--measure-lock "$MEASURE_LOCK")
COMMAND="python experiments/memorization.py --preset gpu --out $RESULTS --data data/brown-sotu --device cuda ${PART[*]}"
timeout "${MEM_TIMEOUT:-560}" python3 experiments/memorization.py --preset gpu --out "$RESULTS" \
    --data data/brown-sotu --device cuda --figures '' --no-progress "${PART[@]}" 2>&1 \
    | grep --line-buffered -v Warning | tee -a "$OUT/memorization_gpu.log"
echo "job wall $(( $(date +%s) - START )) s" | tee -a "$OUT/memorization_gpu.log"
kill "$SMI"
if grep -q "^\[memorization\] total" "$OUT/memorization_gpu.log"; then
    python3 experiments/summarize_memorization.py --export "$RESULTS" --data "$OUT/memorization_data" \
        --log "$OUT/memorization_gpu.log" --corpus data/brown-sotu --command "$COMMAND" \
        --machine "$(head -1 "$OUT/machine.txt"), $(sed -n 2p "$OUT/machine.txt")"
fi
