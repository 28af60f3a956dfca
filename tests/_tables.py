"""Comparing the tables of two runs of the memorization study that must agree (grouped against one at a time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def assert_same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], root_a: Path, root_b: Path) -> None:
    """Every table of ``a`` equals the one of ``b``: discrete columns exactly, float columns (and float arrays) to
    1e-4 relative, checkpoint paths relative to their run's root; timings, and the size of the training group that
    shared them, are left out."""
    assert a.keys() == b.keys()
    for name in a:
        ta, tb = a[name], b[name]
        assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb) > 0, name
        for col in ta.columns:
            if col in ("wall_s", "ms_per_step", "group_size") or col.endswith("_s"):
                continue
            if col == "checkpoint":  # where the run's checkpoints are, relative to its root

                def rel(column, root):  # (a Hopfield-family row has none)
                    return [Path(x).relative_to(root) if isinstance(x, str) and x else None for x in column]

                assert rel(ta[col], root_a) == rel(tb[col], root_b), name
            elif pd.api.types.is_float_dtype(ta[col]):
                np.testing.assert_allclose(ta[col], tb[col], rtol=1e-4, atol=1e-5, err_msg=f"{name}.{col}")
            else:
                for x, y in zip(ta[col], tb[col]):
                    if isinstance(x, (np.ndarray, list)) and np.asarray(x).dtype.kind == "f":
                        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=f"{name}.{col}")
                    else:
                        np.testing.assert_equal(x, y, err_msg=f"{name}.{col}")
