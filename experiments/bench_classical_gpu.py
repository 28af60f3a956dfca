"""GPU check and throughput of classical Hopfield retrieval.

The code lives in :mod:`amtheory.studies.benchmarks.classical`; this script is its command line:

    python experiments/bench_classical_gpu.py            # on a CUDA machine
    python experiments/bench_classical_gpu.py --small    # a quick CPU run of the same code
"""

from amtheory.studies.benchmarks.classical import main

if __name__ == "__main__":
    main()
