"""Host cost of measuring many models in lockstep, per shared forward pass and per model. The benchmark and its
options: ``amtheory.studies.benchmarks.lockstep``.

    python experiments/bench_lockstep.py --device cpu --out /tmp/out
"""

from amtheory.studies.benchmarks.lockstep import main

if __name__ == "__main__":
    main()
