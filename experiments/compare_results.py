"""Are two runs' results the same? Compares the tables of two results folders, study by study.

    python experiments/compare_results.py RUN_A RUN_B capacity dense_scaling basins_vs_load main memorization

The comparison is ``amtheory.core.sweep.compare.compare_results``; this script is its command line."""

from amtheory.core.sweep.compare import main

if __name__ == "__main__":
    main()
