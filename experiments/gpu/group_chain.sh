#!/usr/bin/env bash
# A measured group's batched reverse chain on one GPU: the CUDA tests of the chain step and its statistics kernel,
# then bench_group_chain.py for the recovery chain (ancestral, from t = 0.5) and the fixed-point chain (argmax,
# from t = 1) of 30 members x 64 queries at each gpu preset shape. With BASE=DIR (a copy of the package at the
# commit to compare against) the same benchmark runs first on that code, for a before-and-after on one machine.
# COMPILE="off static dynamic" times the chains with the blocks eager and compiled (bench_group_chain.py --compile);
# SAMPLERS=ancestral runs the recovery chain alone. Record: benchmarks/<machine>_bench_group_chain.txt.
#   OUT=DIR [BASE=DIR] [PROFILE=1] [COMPILE="off static"] [SAMPLERS=ancestral] bash experiments/gpu/group_chain.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/machine.txt"
PYTHONPATH=$PWD timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_chain_kernels.py tests/test_sampler.py \
    tests/test_group_eval.py 2>&1 | tail -3 | tee "$OUT/cuda_tests.txt"
run() {  # run NAME PYTHONPATH [extra python flags]: the chains, into $OUT/NAME
    for S in ${SAMPLERS:-ancestral argmax}; do
        T=0.5; [ "$S" = argmax ] && T=1.0
        for C in ${COMPILE:-off}; do
            PYTHONPATH=$2 timeout 300 python3 $3 experiments/bench_group_chain.py --out "$OUT/$1_${S}_$C" \
                --sampler "$S" --t-start "$T" --repeats 2 --compile "$C" ${PROFILE:+--profile} 2>&1 | grep -v Warning
        done
    done | tee "$OUT/$1.txt"
}
if [ -n "${BASE:-}" ]; then
    # -P: the package comes from BASE alone, not from the working folder.
    run base "$BASE" -P
fi
run new "$PWD" ""
