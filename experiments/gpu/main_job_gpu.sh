#!/usr/bin/env bash
# The main job with its GPU preset (`amtheory run --preset gpu`: the Hopfield family side by side at N = 256 and
# 1024, then the diffusion part on the embedded corpus), timed, with the GPU memory it took: nvidia-smi's reading of
# the device every 500 ms (all the process holds, PyTorch's cached blocks included) and, per part, the peak memory
# PyTorch allocated, which the job prints itself. Every run starts from an empty results folder, so nothing is
# reused from an earlier one.
#
#   OUT=/tmp/out bash experiments/gpu/main_job_gpu.sh [more `amtheory run` arguments]
#   e.g. ... --max-memory 40GiB, or --part hopfield for the Hopfield part alone
#
# Writes into $OUT: main_job_gpu.log (machine, command, the job's output, exit status, wall time, peak reading),
# gpu_memory.csv (the nvidia-smi readings, MiB), SUMMARY.md and main_gpu_tables.tgz (the tables, no checkpoints).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
RESULTS=${RESULTS:-$(mktemp -d /tmp/main_gpu.XXXXXX)}
LOG="$OUT/main_job_gpu.log"
CMD=("$PY" -m amtheory.cli run --preset gpu --device cuda --out "$RESULTS" --no-progress "$@")
{
    echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
    "$PY" -c 'import torch; print("# torch", torch.__version__, "CUDA", torch.version.cuda)'
    echo "# command: ${CMD[*]}"
} | tee "$LOG"
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 500 >"$OUT/gpu_memory.csv" &
SMI=$!
START=$(date +%s.%N)
timeout "${MAIN_TIMEOUT:-900}" "${CMD[@]}" 2>&1 | grep --line-buffered -v Warning | tee -a "$LOG"
RC=${PIPESTATUS[0]}
END=$(date +%s.%N)
kill "$SMI" 2>/dev/null
wait "$SMI" 2>/dev/null
PEAK=$(awk -F', *' '$2 + 0 > m { m = $2 + 0 } END { print m + 0 }' "$OUT/gpu_memory.csv")
{
    echo "exit status $RC$([ "$RC" = 124 ] && echo " (stopped by the ${MAIN_TIMEOUT:-900} s limit)")"
    awk -v s="$START" -v e="$END" 'BEGIN { printf "wall %.0f s\n", e - s }'
    echo "peak GPU memory in use (nvidia-smi, every 500 ms): $PEAK MiB"
} | tee -a "$LOG"
cp "$RESULTS/SUMMARY.md" "$OUT/" 2>/dev/null
tar czf "$OUT/main_gpu_tables.tgz" --exclude=checkpoints -C "$RESULTS" . 2>/dev/null
exit "$RC"
