"""Are two runs' results the same? Two results folders compared table folder by table folder, each folder's rows as a
multiset (row order, the split into files, and timing and path columns do not count), for checking that a change of
code left every number as it was.

The tables are read as plain parquet, without the checksum records of ``amtheory.core.sweep.files``, so that a run
made by an older version (which wrote none) can be compared; parquet holds data only, nothing in it runs.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["IGNORED_COLUMNS", "compare_results"]

#: Columns that differ between two honest runs of the same cells: timings, where checkpoints were written, and the
#: bookkeeping the runner adds (which older runs lack).
IGNORED_COLUMNS = ("seconds", "wall_s", "ms_per_step", "checkpoint", "cell_fields", "root_seed")


def _text(value) -> str:
    """A value as comparable text: arrays by their elements, every missing value as "nan"."""
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return repr(value)


def _unquoted(text: str) -> str:
    """A text value back from its ``repr`` quotes, without evaluating anything."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def _table_folders(root: Path) -> list[Path]:
    """The folders under ``root`` (itself included) that hold parquet tables, set-aside and checkpoint folders out."""
    return sorted(
        {p.parent for p in root.rglob("*.parquet") if not {"damaged", "checkpoints"} & set(p.relative_to(root).parts)}
    )


def _read(folder: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def compare_results(
    a: str | os.PathLike,
    b: str | os.PathLike,
    studies: Sequence[str],
    *,
    ignore: Iterable[str] = IGNORED_COLUMNS,
) -> pd.DataFrame:
    """Compare the table folders under ``a/<study>`` with those at the same place under ``b``, for each of
    ``studies``. One row per table folder: ``tables`` (its path under the root), ``rows_a``, ``rows_b``, ``equal``
    (the same multiset of rows over the columns both runs have, ``ignore`` and any column named like a time left
    out), ``different`` (the columns whose multisets of values differ, comma-separated) and ``backends`` (where the
    tables have a ``backend`` column: the backends of the rows found in one run only)."""
    a, b = Path(a), Path(b)
    skip = set(ignore)
    rows = []
    for study in studies:
        folders = _table_folders(a / study) if (a / study).is_dir() else []
        if not folders:
            raise FileNotFoundError(f"studies: expected tables under {a / study}, found nothing")
        for folder in folders:
            rel = folder.relative_to(a)
            ta, tb = _read(folder), _read(b / rel)
            cols = sorted(c for c in set(ta.columns) & set(tb.columns) if c not in skip and "second" not in c)
            ra = Counter(map(tuple, ta[cols].map(_text).to_numpy()))
            rb = Counter(map(tuple, tb[cols].map(_text).to_numpy()))
            same = len(ta) == len(tb) and ra == rb
            differ = [] if same else [c for c in cols if Counter(map(_text, ta[c])) != Counter(map(_text, tb[c]))]
            # The backends of the rows found in one run only, where the tables name a backend.
            odd = (ra - rb) + (rb - ra)
            where = cols.index("backend") if "backend" in cols else None
            backends = sorted({_unquoted(row[where]) for row in odd}) if where is not None else []
            rows.append(
                {"tables": rel.as_posix(), "rows_a": len(ta), "rows_b": len(tb), "equal": same,
                 "different": ",".join(differ), "backends": ",".join(backends)}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=["tables", "rows_a", "rows_b", "equal", "different", "backends"])


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """``python experiments/compare_results.py RUN_A RUN_B STUDY...``: prints one line per table folder; exits
    with status 1 when any differs."""
    import argparse

    p = argparse.ArgumentParser(prog="python experiments/compare_results.py", description=__doc__.split("\n")[0])
    p.add_argument("a", help="the first results folder")
    p.add_argument("b", help="the second results folder")
    p.add_argument("studies", nargs="+", help="study folders under both, e.g. capacity main memorization")
    args = p.parse_args(argv)
    report = compare_results(args.a, args.b, args.studies)
    with pd.option_context("display.width", 200, "display.max_colwidth", 120):
        print(report.to_string(index=False))
    if not report["equal"].all():
        raise SystemExit(1)
    return report
