"""Capacity of dense associative memories against the size N: polynomial n = 2, 3, 4 and exponential.

The study lives in :mod:`amtheory.studies.hopfield.dense_scaling`; this script is its command line:
``python experiments/dense_scaling.py --help``.
"""

from amtheory.studies.hopfield.dense_scaling import main

if __name__ == "__main__":
    main()
