"""Basin radius against load for every Hopfield-family backend on the same random binary patterns.

The study lives in :mod:`amtheory.studies.hopfield.basins_vs_load`; this script is its command line:
``python experiments/basins_vs_load.py --help``.
"""

from amtheory.studies.hopfield.basins_vs_load import main

if __name__ == "__main__":
    main()
