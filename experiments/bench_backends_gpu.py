"""Retrieval throughput of every backend's deterministic synchronous step, on one GPU.

The code lives in :mod:`amtheory.studies.benchmarks.backends`; this script is its command line:

    python experiments/bench_backends_gpu.py --json out.json   # on a CUDA machine (about 2 minutes)
    python experiments/bench_backends_gpu.py --small           # a quick CPU run of the same code
"""

from amtheory.studies.benchmarks.backends import main

if __name__ == "__main__":
    main()
