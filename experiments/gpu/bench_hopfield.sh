#!/usr/bin/env bash
# The Hopfield-family GPU benchmarks, on one GPU: what the machine has, then the classical Hopfield check and
# throughput, the modern Hopfield step across kernels, and every backend's synchronous step. Records:
# benchmarks/h200_bench_classical.txt, h200_bench_modern.txt, h200_bench_backends.txt (+ .json).
#   bash experiments/gpu/bench_hopfield.sh      (on a CUDA machine; writes into $OUT)
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 - <<'PY' 2>&1 | tee "$OUT/env.txt"
import importlib, sys
print("python", sys.version.split()[0])
for m in "torch triton numpy scipy pandas pyarrow networkx tqdm seaborn matplotlib hypothesis safetensors tokenizers".split():
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "?"))
    except Exception as e:
        print("MISSING", m, type(e).__name__)
PY
timeout 200 python3 experiments/bench_classical_gpu.py --json "$OUT/bench_classical.json" 2>&1 | tee "$OUT/bench_classical.txt"
timeout 210 python3 experiments/bench_modern_hopfield.py --json "$OUT/bench_modern.json" 2>&1 | grep -v Warning \
    | tee "$OUT/bench_modern.txt"
timeout 90 python3 experiments/bench_backends_gpu.py --json "$OUT/bench_backends.json" 2>&1 | grep -v Warning \
    | tee "$OUT/bench_backends.txt"
