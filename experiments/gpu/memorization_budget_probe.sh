#!/usr/bin/env bash
# Which training memorizes the gpu preset's smallest sets: every model size of the preset on SIZES (16 and 39
# blocks), three seeds, at STEPS x BUDGETS steps (800, 1,600, 3,200) of 64 blocks, for each learning rate of LRS
# (1e-3, the preset's, and 3e-3) side by side, measuring the recovery alone (--measures recovery; no Hopfield
# family). Each learning rate's run goes to results/budget_probe_lr<LR> (resumable: run this again on the same
# machine) and, when finished, its per-cell tables to $OUT/probe_lr<LR>; read each anywhere with
#   python experiments/summarize_memorization.py --data DATA --out PAGE.md --figures ''
# (claim (a): the lowest training recovery at the smallest size, per model size and budget). Needs data/brown-sotu.
# PRECISION=bf16 trains every model under bf16 autocast instead of the preset's float32 (its runs go to
# results/budget_probe_bf16_lr<LR>, its tables to $OUT/probe_bf16_lr<LR>): whether bf16 memorizes the same sets.
# Record: benchmarks/h100_memorization_budget_probe.log.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}
SIZES=${SIZES:-16,39}; STEPS=${STEPS:-800}; BUDGETS=${BUDGETS:-1,2,4}; LRS=${LRS:-1e-3 3e-3}
MODELS=${MODELS:-gpu-micro,gpu-small,gpu-quick}
# PRESET, DATA and DEVICE let the script run elsewhere, e.g. on a CPU with the tiny preset and the embedded corpus.
PRESET=${PRESET:-gpu}; DATA=${DATA:-data/brown-sotu}
PRECISION=${PRECISION:-}; TAG=${PRECISION:+${PRECISION}_}
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
fi
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/machine.txt"
START=$(date +%s)
for LR in $LRS; do
    (
        ARGS=(--preset "$PRESET" --out "results/budget_probe_${TAG}lr$LR" --data "$DATA" --device "$DEVICE"
              --models "$MODELS" --sizes "$SIZES" --seeds 0,1,2 --steps "$STEPS" --budgets "$BUDGETS" --lr "$LR"
              --measures recovery --hopfield none ${PRECISION:+--precision "$PRECISION"})
        timeout "${MEM_TIMEOUT:-560}" python3 experiments/memorization.py "${ARGS[@]}" --figures '' --no-progress \
            2>&1 | grep -v Warning > "$OUT/probe_${TAG}lr$LR.log"
        echo "job wall $(( $(date +%s) - START )) s" >> "$OUT/probe_${TAG}lr$LR.log"
        if grep -q "^\[memorization\] total" "$OUT/probe_${TAG}lr$LR.log"; then
            CORPUS=(); [ -d "$DATA" ] && CORPUS=(--corpus "$DATA")
            python3 experiments/summarize_memorization.py --export "results/budget_probe_${TAG}lr$LR" \
                --data "$OUT/probe_${TAG}lr$LR" --log "$OUT/probe_${TAG}lr$LR.log" "${CORPUS[@]}" \
                --command "python experiments/memorization.py ${ARGS[*]}" \
                --machine "$(head -1 "$OUT/machine.txt"), $(tail -1 "$OUT/machine.txt")" >> "$OUT/probe_${TAG}lr$LR.log" 2>&1
        fi
    ) &
done
wait
for LR in $LRS; do grep -v " on [0-9]* blocks" "$OUT/probe_${TAG}lr$LR.log" | sed "s/^/lr $LR: /"; done
