"""The Hopfield family's cells of the memorization study, timed one by one (seconds and what each computed). The
benchmark and its options: ``amtheory.studies.benchmarks.hopfield_family``.

    python experiments/bench_hopfield_family.py --out /tmp/out --profile                 # CUDA, the gpu preset
    python experiments/bench_hopfield_family.py --device cpu --tiny --out /tmp/t         # seconds on a CPU
"""

from amtheory.studies.benchmarks.hopfield_family import main

if __name__ == "__main__":
    main()
