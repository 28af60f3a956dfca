"""Results page of the Hopfield-family experiments: every measured number beside its closed-form theory.

The page is built by :mod:`amtheory.reports.hopfield`; this script is its command line:
``python experiments/summarize_hopfield.py --results results --out docs/results_hopfield.md [--figures docs/figures]``
(``--figures ''`` leaves the figures as they are; ``--help`` lists the options).
"""

from amtheory.reports.hopfield import main

if __name__ == "__main__":
    main()
