"""Results page of the Hopfield-family experiments (``docs/results_hopfield.md``): every measured number beside its
closed-form theory, built from the per-cell tables of ``docs/data/hopfield/`` alone.

Modules, by concern: ``reading`` (the sweeps, their commands, the checked reading of their raw folders, their
presets), ``export`` (raw folders -> the data folder), ``data`` (the data folder's tables, read back and checked),
``statistics`` (intervals, crossings, slopes, tables), ``classical``, ``recall``, ``dense`` and ``basins`` (the
page's sections), ``figures`` (the figures redrawn beside the page) and ``page`` (the page and its command line).
"""

from amtheory.reports.hopfield.data import HopfieldData, read_data
from amtheory.reports.hopfield.export import export_tables, summarize_results
from amtheory.reports.hopfield.figures import make_figures
from amtheory.reports.hopfield.page import build_page, main, page_from_results, render_page
from amtheory.reports.hopfield.reading import completeness, read_folder

__all__ = [
    "HopfieldData",
    "build_page",
    "completeness",
    "export_tables",
    "main",
    "make_figures",
    "page_from_results",
    "read_data",
    "read_folder",
    "render_page",
    "summarize_results",
]
