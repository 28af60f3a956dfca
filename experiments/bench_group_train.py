"""Group training against one model at a time: aggregate tokens/s, speed-up and MFU of the memorization study's
models. The benchmark and its options: ``amtheory.studies.benchmarks.group_training``.

    python experiments/bench_group_train.py --out /tmp/out                  # CUDA, bf16, compiled
    python experiments/bench_group_train.py --device cpu --tiny --out /tmp/t  # seconds on a CPU (the code path)
"""

from amtheory.studies.benchmarks.group_training import main

if __name__ == "__main__":
    main()
