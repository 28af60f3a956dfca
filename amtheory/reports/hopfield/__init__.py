"""Results page of the Hopfield-family experiments (``docs/results_hopfield.md``): every measured number beside its
closed-form theory.

Modules, by concern: ``reading`` (the sweeps, their commands, the checked reading of their folders), ``statistics``
(intervals, crossings, slopes, tables), ``classical``, ``dense`` and ``basins`` (the page's sections), ``figures``
(the figures redrawn beside the page) and ``page`` (the page and its command line).
"""

from amtheory.reports.hopfield.figures import make_figures
from amtheory.reports.hopfield.page import build_page, main
from amtheory.reports.hopfield.reading import completeness, read_folder

__all__ = ["build_page", "completeness", "main", "make_figures", "read_folder"]
