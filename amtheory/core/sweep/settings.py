"""The settings check: tables of different settings (root seed, fixed cell fields) are never averaged together."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from amtheory.core.sweep.keys import FIELDS_COLUMN, ROOT_SEED_COLUMN


# ---- settings: what readers may average ------------------------------------------------------------------------
def _setting_values(df: pd.DataFrame, what: str) -> dict[str, set]:
    """Each setting column (a cell field of some row's table, and the root seed) with the values it takes over
    the rows whose cell has that field."""
    if FIELDS_COLUMN not in df.columns:
        raise ValueError(
            f"{what}: expected tables written by amtheory.core.sweep (with the column {FIELDS_COLUMN!r} naming each "
            f"table's cell fields), got columns {list(df.columns)[:12]}"
        )
    if df[FIELDS_COLUMN].isna().any():
        raise ValueError(f"{what}: expected every row to name its cell fields (column {FIELDS_COLUMN!r}), some do not")
    values: dict[str, set] = {}
    for fields_json, rows in df.groupby(FIELDS_COLUMN, sort=False):
        for name in [*json.loads(fields_json), ROOT_SEED_COLUMN]:
            if name not in rows.columns:
                raise ValueError(f"{what}: the tables name {name!r} as a setting column, but there is no such column")
            col = rows[name].astype(object)
            values.setdefault(name, set()).update(col.where(col.notna(), None).unique().tolist())
    return values


def _varying(df: pd.DataFrame, vary: Sequence[str], what: str) -> dict[str, list]:
    if isinstance(vary, str):
        raise TypeError(f"vary: expected a sequence of column names or patterns, got the str {vary!r}")
    out = {}
    for name, vals in _setting_values(df, what).items():
        if len(vals) > 1 and not any(fnmatch.fnmatchcase(name, pat) for pat in vary):
            out[name] = sorted(vals, key=repr)
    return out


def setting_groups(
    df: pd.DataFrame, *, vary: Sequence[str] = (), what: str = "results"
) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Split sweep results into parts of one setting each.

    Setting columns are the cell fields that each row's table names in its ``cell_fields`` column, and
    ``root_seed``. ``vary`` lists the columns (``fnmatch`` patterns, e.g. ``"train.arch.*"``) that a reader draws
    or averages over by design, such as the grid axes and replicates. Every other setting column that takes more
    than one value splits the rows; returns ``[(values of those columns, rows)]``, a single ``({}, df)`` when the
    table holds one setting. Rows whose cell lacks a splitting field have None for it.
    """
    varying = _varying(df, vary, what)
    if not varying:
        return [({}, df)]
    names = sorted(varying)
    keys = df[names].astype(object)
    keys = keys.where(keys.notna(), None)
    return [
        (dict(zip(names, key if isinstance(key, tuple) else (key,))), df.loc[rows.index])
        for key, rows in keys.groupby(names, dropna=False, sort=False)
    ]


def check_single_setting(df: pd.DataFrame, *, vary: Sequence[str] = (), what: str = "results") -> pd.DataFrame:
    """Raise ``ValueError`` naming every setting column (see ``setting_groups``) outside ``vary`` that takes more
    than one value in ``df``, with its values: such tables are of different settings and must not be averaged.
    Returns ``df``."""
    varying = _varying(df, vary, what)
    if varying:
        listed = "; ".join(f"{name} takes {vals}" for name, vals in sorted(varying.items()))
        raise ValueError(
            f"{what}: expected tables of one setting, found several: {listed}. Keep each setting's tables in a "
            "folder of its own (or select one setting's rows) before drawing or summarizing them"
        )
    return df
