"""Capacity of classical Hopfield networks: Hebbian, Storkey and pseudo-inverse rules against the load alpha = K/N.

The study lives in :mod:`amtheory.studies.hopfield.capacity`; this script is its command line:
``python experiments/capacity.py --help``.
"""

from amtheory.studies.hopfield.capacity import main

if __name__ == "__main__":
    main()
