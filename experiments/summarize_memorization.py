"""Results page of the memorization experiment, in two steps: a results folder exported to a small data folder, then
the page and its figures from the data folder alone.

The page is built by :mod:`amtheory.reports.memorization`; this script is its command line (``--help`` lists the
options): ``python experiments/summarize_memorization.py --export results/memorization_gpu --data DIR [--log LOG]
[--corpus data/brown-sotu] [--machine TEXT]``, then ``python experiments/summarize_memorization.py --data DIR
--out docs/results_memorization.md --figures docs/figures [--probe amtheory/data/probe_reference.json]``.
"""

from amtheory.reports.memorization import main

if __name__ == "__main__":
    main()
