"""The optimizer and EMA update of a training group on its own, eager against compiled. The benchmark and its
options: ``amtheory.studies.benchmarks.group_update``.

    python experiments/bench_group_update.py --out /tmp/out                    # CUDA, the gpu preset's shapes, G = 30
    python experiments/bench_group_update.py --device cpu --tiny --out /tmp/t  # seconds on a CPU (the code path)
"""

from amtheory.studies.benchmarks.group_update import main

if __name__ == "__main__":
    main()
