"""The batched reverse chain of a measured group of the memorization study's models: milliseconds a step and where
they go. The benchmark and its options: ``amtheory.studies.benchmarks.group_chain``.

    python experiments/bench_group_chain.py --out /tmp/out --profile             # CUDA, the gpu preset's shapes
    python experiments/bench_group_chain.py --device cpu --tiny --out /tmp/t     # seconds on a CPU (the code path)
"""

from amtheory.studies.benchmarks.group_chain import main

if __name__ == "__main__":
    main()
