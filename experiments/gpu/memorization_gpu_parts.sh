#!/usr/bin/env bash
# The gpu preset of the memorization sweep on one GPU as four parts, staged so that at most one part trains at a
# time: the Hopfield family alone (results/gpu_preset_h, `--models none`) and gpu-micro (results/gpu_preset_a) start
# first, gpu-quick (results/gpu_preset_c) when part A has trained its models, gpu-small (results/gpu_preset_b) when
# part C has. A part measures while the next one trains. Training is bound by the card, and two trainings side by
# side only time-slice it (gpu-quick trained at 0.40-0.68M tokens/s beside the others against 1.56M alone:
# h100_memorization_gpu.log at commit 3f5d0fe, git history); measuring waits much of its time on host work (one
# core a part), which the training beside it fills. Two parts never measure at once: each holds a lock file from
# its first measurement to its last (--measure-lock), since two measuring groups of 30 need more memory than the
# card has (gpu-quick's and gpu-small's, 35 and 37 GiB, ran an H100 out of memory: h100_memorization_gpu.log), and
# so did the family beside a measuring group. The family needs no trained model: its part takes the lock at once
# and measures while the model parts train, where with gpu-micro's part it measured after that part's groups, on
# the run's critical path (the lock busy from gpu-micro's training to the end: h100_memorization_gpu.log).
# Each part runs through memorization_gpu_preset.sh (resumable: run this again on the same machine to finish what a
# job did not; a part that finished its training starts the next at once). Every part stops by the same deadline,
# MEM_TIMEOUT seconds after this script starts. When all have finished, their data folders are merged into
# $OUT/memorization_data, with the wall time of all the jobs as the run's, and the page and figures are built from
# it into $OUT/page (the run's time end to end goes to $OUT/parts.txt). From the committed tables, anywhere:
#   python experiments/summarize_memorization.py --data DATA --out docs/results_memorization.md --figures docs/figures
# PARTS="c b" runs only those parts (a fresh machine keeps nothing of an earlier one); DATA_OF_A=DIR (DATA_OF_H=DIR)
# then names the data folder of part A (H) exported before (its memorization_data), merged in its place.
# Needs the prepared corpus data/brown-sotu (make data). Record: benchmarks/h100_memorization_gpu.log.
set -u
# Several processes share the card: expandable segments keep the allocator of each from fragmenting what it holds;
# a few CPU threads each, so that their host work does not oversubscribe the cores.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
export MEASURE_LOCK=${MEASURE_LOCK:-results/gpu_preset_measure.lock}
OUT=${OUT:-/tmp/out}
START=$(date +%s)
DEADLINE=$(( START + ${MEM_TIMEOUT:-560} ))
read -r -a PARTS <<< "${PARTS:-h a c b}"
declare -A MODELS_OF=([h]=none [a]=gpu-micro [b]=gpu-small [c]=gpu-quick)
declare -A HOPFIELD_OF=([h]="" [a]=none [b]=none [c]=none)
for part in "${PARTS[@]}"; do
    [ -n "${MODELS_OF[$part]:-}" ] || { echo "PARTS: expected names among h, a, b, c, got '$part'" >&2; exit 2; }
done
PIDS=()
for part in "${PARTS[@]}"; do
    left=$(( DEADLINE - $(date +%s) ))
    [ "$left" -gt 30 ] || { echo "part $part not started: the deadline is near" | tee -a "$OUT/parts.txt"; break; }
    mkdir -p "$OUT/$part"
    echo "part $part (${MODELS_OF[$part]}) starts $(( $(date +%s) - START )) s in" | tee -a "$OUT/parts.txt"
    MODELS=${MODELS_OF[$part]} HOPFIELD=${HOPFIELD_OF[$part]} RESULTS=results/gpu_preset_$part OUT="$OUT/$part" \
        MEM_TIMEOUT=$left bash experiments/gpu/memorization_gpu_preset.sh > "$OUT/$part/part.txt" 2>&1 &
    PIDS+=($!)
    # The next part starts when this one has trained its models (its training stage's line), or has stopped.
    while kill -0 "$!" 2>/dev/null && ! grep -q "^\[memorization\] train " "$OUT/$part/part.txt"; do sleep 2; done
done
wait "${PIDS[@]}"
# The jobs' wall times add up in a file beside the results (kept while the machine is), for the run's total.
WALLS=results/gpu_preset_parts_wall_s.txt
WALL=$(( $(date +%s) - START ))
mkdir -p results && echo "$WALL" >> "$WALLS"
TOTAL=$(awk '{s += $1} END {print s}' "$WALLS")
echo "parts wall $WALL s; all jobs so far: $TOTAL s" | tee -a "$OUT/parts.txt"
for part in h a b c; do
    [ -f "$OUT/$part/memorization_gpu.log" ] || continue
    grep -v " gpu-" "$OUT/$part/memorization_gpu.log" | tail -8 | sed "s/^/$part: /"
done
# The merge needs every part's data: from this machine, or a part's from DATA_OF_<PART> (DATA_OF_A, DATA_OF_H). The
# run's wall time is that of the jobs here, plus each such part's own (its run.json) where it ran elsewhere.
FOLDERS=()
WALL_S=$TOTAL
for part in a b c h; do
    elsewhere=DATA_OF_${part^^}
    if [ -d "$OUT/$part/memorization_data" ]; then FOLDERS+=("$OUT/$part/memorization_data")
    elif [ -n "${!elsewhere:-}" ]; then
        FOLDERS+=("${!elsewhere}")
        WALL_S=$(python3 -c "import json, sys; print($WALL_S + json.load(open(sys.argv[1]))['log']['total_s'])" \
            "${!elsewhere}/run.json")
    fi
done
if [ "${#FOLDERS[@]}" -eq 4 ]; then
    # The merge, then the page and its figures from the merged tables, here, so that the run is timed end to end
    # (built from the committed tables anywhere, the page is the same: tests/test_committed_pages.py).
    PAGE_START=$(date +%s)
    PYTHONPATH=$PWD python3 experiments/summarize_memorization.py --merge "${FOLDERS[@]}" \
        --data "$OUT/memorization_data" --wall-s "$WALL_S"
    PYTHONPATH=$PWD python3 experiments/summarize_memorization.py --data "$OUT/memorization_data" \
        --out "$OUT/page/results_memorization.md" --figures "$OUT/page/figures" > "$OUT/page.txt" 2>&1
    PAGE_RC=$?
    PAGE_S=$(( $(date +%s) - PAGE_START ))
    echo "merge, page and figures: $PAGE_S s (exit $PAGE_RC); the run end to end: $(( WALL_S + PAGE_S )) s" \
        | tee -a "$OUT/parts.txt"
fi
