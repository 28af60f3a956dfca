"""Results page of the memorization-to-generalization experiment: the measured numbers behind each claim.

The page is built by :mod:`amtheory.reports.memorization`; this script is its command line:
``python experiments/summarize_memorization.py --results results/memorization_gpu --out docs/results_memorization.md
[--probe amtheory/data/probe_reference.json]`` (``--help`` lists the options).
"""

from amtheory.reports.memorization import main

if __name__ == "__main__":
    main()
