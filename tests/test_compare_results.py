"""Two results folders compared table folder by table folder, as multisets of rows."""

from __future__ import annotations

import pandas as pd
import pytest

from amtheory.core.sweep.compare import compare_results


def _write(folder, name, df):
    folder.mkdir(parents=True, exist_ok=True)
    df.to_parquet(folder / f"{name}.parquet")


def _runs(tmp_path, change=None):
    a, b = tmp_path / "a", tmp_path / "b"
    t1 = pd.DataFrame({"backend": ["x", "y"], "radius": [3, 4], "seconds": [0.1, 0.2], "tokens": [[1, 2], [3, 4]]})
    t2 = pd.DataFrame({"backend": ["z"], "radius": [5], "seconds": [0.3], "tokens": [[5, 6]]})
    for root in (a, b):
        _write(root / "study" / "radius", "one", t1)
        _write(root / "study" / "radius", "two", t2)
    # The second run wrote its rows in another order, other timings and another file split: still equal.
    both = pd.concat([t2, t1], ignore_index=True).assign(seconds=9.0)
    for p in (b / "study" / "radius").glob("*.parquet"):
        p.unlink()
    if change is not None:
        both.loc[both["backend"] == "y", change[0]] = change[1]
    _write(b / "study" / "radius", "all", both)
    return a, b


def test_equal_runs_are_equal_whatever_the_order_files_and_timings(tmp_path):
    a, b = _runs(tmp_path)
    report = compare_results(a, b, ["study"])
    assert report.to_dict("records") == [
        {"tables": "study/radius", "rows_a": 3, "rows_b": 3, "equal": True, "different": "", "backends": ""}
    ]


def test_a_changed_value_names_its_column(tmp_path):
    a, b = _runs(tmp_path, change=("radius", 7))
    (row,) = compare_results(a, b, ["study"]).to_dict("records")
    assert not row["equal"] and row["different"] == "radius" and row["backends"] == "y"


def test_a_missing_folder_is_named(tmp_path):
    a, b = _runs(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing"):
        compare_results(a, b, ["nothing"])
