"""The least time a group's training step can take at the card's bandwidth, its GEMMs and attention as measured,
and the MFU that would give. The model of the floor: ``amtheory.studies.benchmarks.step_floor``.

    python experiments/group_step_floor.py --gemm-ms 11.76 --attention-ms 2.72 --bandwidth 3.0e12 --rate 797e12
"""

from amtheory.studies.benchmarks.step_floor import main

if __name__ == "__main__":
    main()
