"""Results page of the Hopfield-family experiments: every measured number beside its closed-form theory.

The page is built by :mod:`amtheory.reports.hopfield` from the per-cell tables of ``docs/data/hopfield/`` alone;
this script is its command line:
``python experiments/summarize_hopfield.py --data docs/data/hopfield --out docs/results_hopfield.md
[--figures docs/figures]``, with ``--export results`` to write those tables from the sweeps' parquet folders first
(``--help`` lists the options).
"""

from amtheory.reports.hopfield import main

if __name__ == "__main__":
    main()
