"""Results page of the memorization-to-generalization experiment (``docs/results_memorization.md``): the measured
numbers behind each claim, from the data folder that ``amtheory.studies.memorization.export`` writes.

Modules, by concern: ``numbers`` (formatting and the probe reference ranges), ``claims`` (the paper's claims with
their verdicts), ``tables`` (the measurements behind them, and the figures), ``setup`` (the run, the set-up, the
differences from the paper) and ``page`` (the page and the command line: export, then page).
"""

from amtheory.reports.memorization.numbers import probe_reference
from amtheory.reports.memorization.page import build_page, main
from amtheory.studies.memorization.export import export_results
from amtheory.studies.memorization.summary import read_data

__all__ = ["build_page", "export_results", "main", "probe_reference", "read_data"]
