"""GPU training benchmark of the UDDM: a plain training step against the trainer's optimised one.

The code lives in :mod:`amtheory.studies.benchmarks.training_bench`; this script is its command line:

    python experiments/bench_uddm_train.py               # CUDA, about 3-5 minutes on one H100
    python experiments/bench_uddm_train.py --small-cpu   # a few seconds on a CPU (checks the code path)
    python experiments/bench_uddm_train.py --accounting-from benchmarks/h100_bench_uddm_train.json
"""

from amtheory.studies.benchmarks.training_bench import main

if __name__ == "__main__":
    main()
