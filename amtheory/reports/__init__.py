"""Results pages: the Markdown pages of ``docs/`` computed from the studies' result tables.

``amtheory.reports.hopfield`` writes ``docs/results_hopfield.md`` (and redraws its figures) from the Hopfield sweeps;
``amtheory.reports.memorization`` writes ``docs/results_memorization.md`` from the memorization experiment. Each has a
``build_page`` (the page text) and a ``main(argv)`` (the command line of ``experiments/summarize_*.py``).
"""
