"""The Hopfield results page is built from the committed per-cell tables (``docs/data/hopfield/``) only, and those
tables keep every number the page shows: the page from the exported tables equals the page from the sweeps' raw
tables, and building it opens no file outside the data folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amtheory.core.sweep import run_sweep
from amtheory.reports.hopfield import build_page, export_tables, main, page_from_results, read_data, read_folder
from amtheory.reports.hopfield.data import basin_targets
from amtheory.reports.hopfield.reading import RETRIEVAL_CUT
from amtheory.reports.hopfield.statistics import cell_table
from amtheory.studies.hopfield import basins_vs_load, capacity, dense_scaling

MACHINE = "test machine"


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> Path:
    """A small run of the tiny presets: two replicates of the capacity and dense grids, one of the basin grid."""
    root = tmp_path_factory.mktemp("hopfield") / "results"
    sweeps = (
        (capacity, capacity.capacity_cell, lambda c: c.replicate < 2),
        (dense_scaling, dense_scaling.scaling_cell, lambda c: c.replicate < 2),
        (basins_vs_load, basins_vs_load.basin_cell, lambda c: c.replicate == 0),
    )
    for module, fn, keep in sweeps:
        name = module.__name__.rsplit(".", 1)[1]
        run_sweep([c for c in module.build_cells("tiny") if keep(c)], fn, root / name, progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_data(tiny_results, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data") / "hopfield"
    export_tables(tiny_results, data, machine=MACHINE)
    return data


def test_page_from_exported_tables_equals_page_from_raw_tables(tiny_results, tiny_data):
    page = build_page(tiny_data)
    assert page == page_from_results(tiny_results, machine=MACHINE)
    # Every section is there, and the page names the preset and how much of it the tables hold.
    for head in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7.", "## 8."):
        assert head in page
    assert "| capacity | tiny |" in page and f"Machine: {MACHINE}" in page
    assert f"{2 * 108}/648 cells" in page  # two of the six replicates of the tiny capacity grid
    # A few MB at most: the tables are per cell, with per-pattern integers only where the page bootstraps.
    assert sum(p.stat().st_size for p in tiny_data.iterdir()) < 2_000_000


def test_exported_tables_keep_every_number_of_the_raw_tables(tiny_results, tiny_data):
    data = read_data(tiny_data)
    raw = read_folder(tiny_results / "capacity")
    cells = data.cells["capacity"]
    for rule in capacity.RULES:
        pooled = cell_table(cells, rule).set_index(["N", "alpha"])
        d = raw[raw["rule"] == rule].sort_values(["N", "alpha", "replicate", "pattern"])
        for (N, alpha), g in d.groupby(["N", "alpha"]):
            r = pooled.loc[(N, alpha)]
            nets = g.groupby("replicate")["fixed_point"].all()
            assert (r["n"], r["reps"], r["K"]) == (len(g), nets.size, g["K"].iloc[0])
            assert r["fixed"] == g["fixed_point"].sum() and r["all_fixed_nets"] == nets.sum()
            assert r["retrieved"] == (g["final_error"] <= RETRIEVAL_CUT).sum()
            assert r["converged"] == g["converged"].mean() and r["load"] == g["load"].iloc[0]
            # Bit for bit: the wrong-bit counts over N are the recorded shares.
            assert np.array_equal(r["final_error"], g["final_error"].to_numpy())
            assert np.array_equal(r["one_step_error"], g["one_step_error"].to_numpy())
    raw_b = read_folder(tiny_results / "basins_vs_load")
    cols = ["backend", "N", "K", "replicate", "pattern", "radius", "censored", "delta", "load"]
    key = ["backend", "K", "replicate", "pattern"]
    got = basin_targets(data.cells["basins_vs_load"])[cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, raw_b[cols].sort_values(key).reset_index(drop=True), check_dtype=False)
    raw_d = read_folder(tiny_results / "dense_scaling")
    cols = ["kind", "n", "N", "replicate", "K_max", "K_fail", "censored", "share_at_max", "threshold", "k_limit"]
    key = ["kind", "n", "N", "replicate"]
    got = data.cells["dense_scaling"][cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, raw_d[cols].sort_values(key).reset_index(drop=True), check_dtype=False)


_OPENED: list | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event in ("open", "os.listdir", "os.scandir") and args and args[0] is not None:
        path = args[0]
        if isinstance(path, (str, bytes, Path)) and not str(path).endswith((".py", ".pyc", ".so")):
            _OPENED.append(Path(path if not isinstance(path, bytes) else path.decode()).resolve())


def test_page_opens_no_file_outside_the_data_folder(tiny_results, tiny_data, tmp_path):
    global _OPENED
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    moved = tmp_path / "moved_results"
    shutil.copytree(tiny_results, moved)
    build_page(data)  # every module the page needs is imported before the audit
    out = tmp_path / "page" / "results_hopfield.md"
    sys.addaudithook(_audit)
    _OPENED = []
    try:
        page = build_page(data)
        main(["--data", str(data), "--out", str(out), "--figures", ""])
    finally:
        opened, _OPENED = _OPENED, None
    outside = sorted({str(p) for p in opened if data.resolve() not in (p, *p.parents) and p != out.resolve()})
    assert not outside, outside
    assert any(p.suffix == ".csv" for p in opened)
    assert out.read_text() == page


def test_bad_data_folders_are_named_with_what_was_expected(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="--data: expected a folder"):
        main(["--data", str(tmp_path / "none"), "--out", "-"])
    broken = tmp_path / "broken"
    shutil.copytree(tiny_data, broken)
    cap = pd.read_csv(broken / "capacity.csv", dtype=str, keep_default_na=False)
    cap.drop(columns=["fixed_points"]).to_csv(broken / "capacity.csv", index=False)
    with pytest.raises(ValueError, match=r"capacity\.csv.*missing.*fixed_points"):
        read_data(broken)
    text = cap.loc[0, "final_wrong_bits"]
    cap.loc[0, "final_wrong_bits"] = "0 1"
    cap.to_csv(broken / "capacity.csv", index=False)
    with pytest.raises(ValueError, match=r"final_wrong_bits.*expected \d+ integers.*got 2"):
        read_data(broken)
    cap.loc[0, "final_wrong_bits"] = text
    cap.loc[0, "N"] = "many"
    cap.to_csv(broken / "capacity.csv", index=False)
    with pytest.raises(ValueError, match=r"capacity\.csv, column N: expected integers, got 'many'"):
        read_data(broken)
    with pytest.raises(ValueError, match="--export: expected a folder"):
        main(["--export", str(tmp_path / "no_results"), "--data", str(tmp_path / "d"), "--out", "-"])
