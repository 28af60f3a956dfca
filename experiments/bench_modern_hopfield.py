"""Benchmark one modern-Hopfield update ``X^T softmax(beta X xi)`` at large K across kernels.

The code lives in :mod:`amtheory.studies.benchmarks.modern`; this script is its command line:

    python experiments/bench_modern_hopfield.py                  # GPU: K=65536 d=512 B=4096; K=2^20 d=128 B=1024
    python experiments/bench_modern_hopfield.py --small          # CPU-sized, a few seconds
    python experiments/bench_modern_hopfield.py --json out.json  # also write the rows as JSON
"""

from amtheory.studies.benchmarks.modern import main

if __name__ == "__main__":
    main()
