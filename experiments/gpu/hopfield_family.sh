#!/usr/bin/env bash
# The memorization study's Hopfield family on one GPU: the CUDA tests of its posterior and scores, then every
# recovery and basin cell of the empirical denoiser, the exponential dense memory and the modern network at the
# sizes in SIZES (default the two largest of the gpu preset), timed one by one (bench_hopfield_family.py, after
# its two operations against their old forms, --kernels). With
# BASE=DIR (a copy of the package at the commit to compare against, with the benchmark module copied into it) the
# same cells run first on that code, for a before-and-after on one machine. Needs the prepared corpus
# data/brown-sotu (make data). Record: benchmarks/h200_bench_hopfield_family.txt.
#   OUT=DIR [BASE=DIR] [SIZES=8772,53167] bash experiments/gpu/hopfield_family.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SIZES=${SIZES:-8772,53167}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/machine.txt"
PYTHONPATH=$PWD timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_empirical.py tests/test_dense.py \
    -k "cuda" 2>&1 | tail -3 | tee "$OUT/cuda_tests.txt"
if [ -n "${BASE:-}" ]; then
    # -P: the package comes from BASE alone, not from the working folder.
    PYTHONPATH=$BASE timeout "${BASE_TIMEOUT:-400}" python3 -P -c "import amtheory; print('package:', amtheory.__file__)" \
        | tee "$OUT/base.txt"
    PYTHONPATH=$BASE timeout "${BASE_TIMEOUT:-400}" python3 -P -m amtheory.studies.benchmarks.hopfield_family \
        --sizes "$SIZES" --out "$OUT/base" 2>&1 | grep -v Warning | tee -a "$OUT/base.txt"
fi
PYTHONPATH=$PWD timeout 300 python3 experiments/bench_hopfield_family.py --sizes "$SIZES" --out "$OUT/new" --kernels \
    ${PROFILE:+--profile} 2>&1 | grep -v Warning | tee "$OUT/new.txt"
