"""Diagnose a UDDM training run: where the time of a step goes, and what happens at the first non-finite step.

The code lives in :mod:`amtheory.studies.benchmarks.training_diagnosis`; this script is its command line:

    python experiments/diagnose_training.py             # the GPU sweep's setting (128x4x4, V=8192, L=64, 32 blocks)
    python experiments/diagnose_training.py --small     # a few seconds on a CPU (checks the code path)
    python experiments/diagnose_training.py --device cpu --cpu-bf16 --batch-size 64 --steps 400   # bf16 on CPU
"""

from amtheory.studies.benchmarks.training_diagnosis import main

if __name__ == "__main__":
    main()
