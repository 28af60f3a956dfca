"""Results page of the memorization-to-generalization experiment (``docs/results_memorization.md``): the measured
numbers behind each claim.

Modules, by concern: ``reading`` (the tables and the run log), ``numbers`` (formatting and the numbers computed from
the tables), ``machine``, ``recovery`` and ``generation`` (the page's sections) and ``page`` (the page, the probe
reference ranges and the command line).
"""

from amtheory.reports.memorization.numbers import probe_reference
from amtheory.reports.memorization.page import build_page, data_summary, main
from amtheory.reports.memorization.reading import read_tables, stage_times

__all__ = ["build_page", "data_summary", "main", "probe_reference", "read_tables", "stage_times"]
