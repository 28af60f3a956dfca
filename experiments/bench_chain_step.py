"""One stochastic reverse-chain step against the draw from the full step distribution. The benchmark and its
options: ``amtheory.studies.benchmarks.chain_step``.

    python experiments/bench_chain_step.py --device cpu --rows 32 --out /tmp/out
"""

from amtheory.studies.benchmarks.chain_step import main

if __name__ == "__main__":
    main()
