"""The results pages' bookkeeping: which cells of the full preset a result folder holds."""

from __future__ import annotations

from amtheory.core.sweep import cell_key, run_sweep
from amtheory.reports.hopfield import completeness, read_folder
from amtheory.studies.hopfield import capacity


def test_hopfield_page_counts_cells_of_the_full_preset(tmp_path):
    full = capacity.build_cells("full")
    # Two cells of the full grid at its smallest load, run at the micro preset's cost: only the cell keys matter.
    cells = [c for c in full if c.rule == "hebbian" and c.N == 256 and c.replicate == 0][:2]
    run_sweep(cells, capacity.capacity_cell, tmp_path / "capacity", progress=False)
    df = read_folder(tmp_path / "capacity")
    done, total, missing = completeness("capacity", df)
    assert (done, total) == (2, len(full))
    assert len(missing) == len(full) - 2
    assert {cell_key(c) for c in cells}.isdisjoint(cell_key(c) for c in missing)
