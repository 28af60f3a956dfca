"""The Hopfield results page's data folder (``docs/data/hopfield/``): one CSV per sweep, one row per cell of the
sweep, and ``sweeps.csv`` saying where each came from.

A cell's row holds its fields (the grid axes, the replicate, the run settings), its seed and ``cell_key``, the
device, counts over its stored patterns, and per-pattern integers only where the page bootstraps over patterns or
takes order statistics, written as space-separated lists in pattern order:

* ``capacity.csv``: one row per network; ``fixed_points`` (patterns one synchronous step leaves unchanged),
  ``retrieved`` (patterns with at most ``RETRIEVAL_CUT`` of their bits wrong when the dynamics stop), ``converged``
  (runs that stopped at a fixed point or a 2-cycle), and per pattern ``one_step_wrong_bits`` and
  ``final_wrong_bits`` (wrong bits after one step and when the dynamics stop; divided by N they are the raw tables'
  ``one_step_error`` and ``final_error``, bit for bit);
* ``dense_scaling.csv``: one row per capacity search, as the raw table has it (``K_max``, ``K_fail``, ``censored``,
  ``share_at_max``, the search record ``evals``);
* ``basins_vs_load.csv``: one row per (backend, K, replicate); ``targets``, ``fixed_points`` (radius >= 0),
  ``at_search_limit``, and per target ``radii`` (-1: not a fixed point) and ``censored`` (1: at the search limit).

This module reads the folder back (``read_data``), checking every column, list and count, and rebuilds the per-pattern
tables the sections and figures use (``capacity_patterns``, ``basin_targets``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.reports.hopfield.reading import EXPERIMENTS, RETRIEVAL_CUT, VARY

SWEEPS_FILE = "sweeps.csv"
#: ``sweeps.csv``: one row per sweep, with the preset recognised from its cells, the root seed, the command and the
#: machine that wrote the raw tables, a note on where they came from (may be empty), and the cell's field names
#: (JSON), the settings the page must not average over.
SWEEP_COLUMNS = {
    "sweep": "str",
    "file": "str",
    "preset": "str",
    "root_seed": "int",
    "command": "str",
    "machine": "str",
    "note": "str",
    "cell_fields": "str",
}
_META = {"seed": "int", "cell_key": "str", "device": "str"}
#: Per sweep, its CSV's columns and their types ('ints' and 'flags': space-separated per-pattern lists).
COLUMNS = {
    "capacity": {
        **{"rule": "str", "N": "int", "alpha": "float", "replicate": "int", "update": "str", "max_steps": "int"},
        **{"form": "str", "K": "int", "load": "float", "fixed_points": "int", "retrieved": "int", "converged": "int"},
        **{"one_step_wrong_bits": "ints", "final_wrong_bits": "ints"},
        **_META,
    },
    "dense_scaling": {
        **{"kind": "str", "n": "int", "N": "int", "replicate": "int", "vocab": "int", "threshold": "float"},
        **{"beta": "float", "k_limit": "int", "rel_tol": "float", "K_max": "int", "K_fail": "int"},
        **{"censored": "bool", "share_at_max": "float", "n_evals": "int", "seconds": "float", "evals": "str"},
        **_META,
    },
    "basins_vs_load": {
        **{"backend": "str", "N": "int", "K": "int", "replicate": "int", "pattern_seed": "int", "n_targets": "int"},
        **{"n_trials": "int", "delta": "float", "max_steps": "int", "exp_beta": "float", "modern_beta": "float"},
        **{"load": "float", "targets": "int", "fixed_points": "int", "at_search_limit": "int"},
        **{"radii": "ints", "censored": "flags"},
        **_META,
    },
}
#: The column types written as space-separated per-pattern lists.
LISTS = ("ints", "flags")
#: The per-pattern lists of the capacity table and the raw columns they give (divided by N).
ERROR_LISTS = {"one_step_wrong_bits": "one_step_error", "final_wrong_bits": "final_error"}


@dataclass(frozen=True)
class HopfieldData:
    """The page's tables: ``sweeps`` (one row per sweep, ``SWEEP_COLUMNS``) and ``cells`` (per sweep, one row per
    cell with typed columns; per-pattern lists as arrays, the capacity's wrong bits as the raw tables' shares
    ``one_step_error`` and ``final_error``; each frame with the ``cell_fields`` and ``root_seed`` of its sweep)."""

    sweeps: pd.DataFrame
    cells: dict[str, pd.DataFrame]

    def sweep(self, name: str) -> dict:
        """The ``sweeps.csv`` row of sweep ``name``."""
        return self.sweeps.set_index("sweep").loc[name].to_dict()


# ----------------------------------------------------------------------------------------------------------------------
# Text <-> typed columns


def encode_list(values) -> str:
    """A per-pattern list of integers as its CSV text: space-separated, in pattern order."""
    return " ".join(str(int(v)) for v in np.asarray(values).ravel())


def _decode_list(text: str, where: str) -> np.ndarray:
    try:
        return np.array([int(v) for v in text.split()], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{where}: expected space-separated integers, got {text[:40]!r}") from None


_EXPECTED = {"int": "integers", "float": "numbers", "bool": "True or False"}


def _typed(values: pd.Series, kind: str, where: str) -> pd.Series:
    """A column of CSV text as ``kind`` ('int', 'float', 'bool' or 'str'); ``ValueError`` naming the first value
    that is not one."""
    convert = {
        "int": int,
        "float": float,  # Python's parser: every written float back bit for bit
        "bool": lambda v: {"True": True, "False": False}[v],
    }.get(kind)
    if convert is None:
        return values.astype(str)
    out = []
    for v in values:
        try:
            out.append(convert(v))
        except (KeyError, ValueError):
            raise ValueError(f"{where}: expected {_EXPECTED[kind]}, got {v!r}") from None
    return pd.Series(out, index=values.index, dtype={"int": np.int64, "float": np.float64, "bool": bool}[kind])


def parse_cells(name: str, text: pd.DataFrame, sweep: dict, where: str) -> pd.DataFrame:
    """The typed cell table of sweep ``name`` from its CSV text (``text``: every column a str), checked: every
    column of ``COLUMNS[name]`` present, each per-pattern list as long as its cell's count and agreeing with the
    counts, one setting outside ``VARY[name]``. ``sweep``: its ``sweeps.csv`` row; ``where`` names the file."""
    from amtheory.core.sweep import check_single_setting

    cols = COLUMNS[name]
    missing = [c for c in cols if c not in text.columns]
    if missing:
        raise ValueError(f"{where}: expected the columns {list(cols)}, missing {missing}")
    if text.empty:
        raise ValueError(f"{where}: expected one row per cell, got none")
    df = pd.DataFrame({c: _typed(text[c], k, f"{where}, column {c}") for c, k in cols.items() if k not in LISTS})
    for c, k in cols.items():
        if k in LISTS:
            df[c] = [_decode_list(v, f"{where}, row {i + 2}, column {c}") for i, v in enumerate(text[c])]
    _check_lists(name, df, where)
    if name == "capacity":
        for col, raw in ERROR_LISTS.items():
            df[raw] = [bits / N for bits, N in zip(df[col], df["N"])]
        df = df.drop(columns=list(ERROR_LISTS))
    df["cell_fields"] = sweep["cell_fields"]
    df["root_seed"] = int(sweep["root_seed"])
    return check_single_setting(df, vary=VARY[name], what=where)


def _check_lists(name: str, df: pd.DataFrame, where: str) -> None:
    """Each per-pattern list as long as its cell's count, within range, and agreeing with the cell's counts."""

    def fail(i: int, col: str, expected: str, got: str):
        raise ValueError(f"{where}, row {i + 2}, column {col}: expected {expected}, got {got}")

    for i, r in enumerate(df.to_dict("records")):
        if name == "capacity":
            N, K = r["N"], r["K"]
            for col in ERROR_LISTS:
                v = r[col]
                if v.size != K:
                    fail(i, col, f"{K} integers (one per stored pattern)", f"{v.size}")
                if v.size and (v.min() < 0 or v.max() > N):
                    fail(i, col, f"wrong-bit counts in [0, {N}]", f"values from {v.min()} to {v.max()}")
            counts = {
                "fixed_points": int((r["one_step_wrong_bits"] == 0).sum()),
                "retrieved": int((r["final_wrong_bits"] / N <= RETRIEVAL_CUT).sum()),
            }
            if not 0 <= r["converged"] <= K:
                fail(i, "converged", f"a count in [0, {K}]", str(r["converged"]))
        elif name == "basins_vs_load":
            n = r["targets"]
            for col in ("radii", "censored"):
                if r[col].size != n:
                    fail(i, col, f"{n} integers (one per target)", f"{r[col].size}")
            if n and (r["radii"].min() < -1 or r["radii"].max() > r["N"] // 2):
                fail(i, "radii", f"radii in [-1, {r['N'] // 2}]", f"from {r['radii'].min()} to {r['radii'].max()}")
            if not np.isin(r["censored"], (0, 1)).all():
                fail(i, "censored", "flags 0 or 1", encode_list(r["censored"])[:40])
            fixed = r["radii"] >= 0
            counts = {"fixed_points": int(fixed.sum()), "at_search_limit": int((fixed & (r["censored"] == 1)).sum())}
        else:
            return
        for col, n in counts.items():
            if r[col] != n:
                fail(i, col, f"{n} (counted from the per-pattern lists)", str(r[col]))


# ----------------------------------------------------------------------------------------------------------------------
# Reading the folder


def read_data(folder: str | Path) -> HopfieldData:
    """The data folder: ``sweeps.csv`` and the CSV of every sweep it names, checked (``parse_cells``)."""
    folder = Path(folder)
    if not (folder / SWEEPS_FILE).is_file():
        raise ValueError(f"--data: expected a folder holding {SWEEPS_FILE} and one CSV per sweep, got {str(folder)!r}")
    text = pd.read_csv(folder / SWEEPS_FILE, dtype=str, keep_default_na=False)
    where = str(folder / SWEEPS_FILE)
    missing = [c for c in SWEEP_COLUMNS if c not in text.columns]
    if missing:
        raise ValueError(f"{where}: expected the columns {list(SWEEP_COLUMNS)}, missing {missing}")
    sweeps = pd.DataFrame({c: _typed(text[c], k, f"{where}, column {c}") for c, k in SWEEP_COLUMNS.items()})
    unknown = sorted(set(sweeps["sweep"]) - set(EXPERIMENTS))
    if unknown or sweeps["sweep"].duplicated().any():
        raise ValueError(f"{where}: expected one row each of some of {EXPERIMENTS}, got {sweeps['sweep'].tolist()}")
    cells = {}
    for r in sweeps.to_dict("records"):
        path = folder / r["file"]
        if Path(r["file"]).name != r["file"] or not path.is_file():
            raise ValueError(f"{where}: expected the file of sweep {r['sweep']} in {folder}, got {r['file']!r}")
        try:
            fields = json.loads(r["cell_fields"])
        except json.JSONDecodeError:
            fields = None
        if not isinstance(fields, list):
            raise ValueError(f"{where}, column cell_fields: expected a JSON list of names, got {r['cell_fields']!r}")
        csv = pd.read_csv(path, dtype=str, keep_default_na=False)
        cells[r["sweep"]] = parse_cells(r["sweep"], csv, r, str(path))
    return HopfieldData(sweeps.sort_values("sweep", key=lambda s: s.map(EXPERIMENTS.index)), cells)


# ----------------------------------------------------------------------------------------------------------------------
# Per-pattern tables


def _explode(cells: pd.DataFrame, lists: dict[str, str], length: str) -> pd.DataFrame:
    """One row per pattern: every scalar column repeated, the array columns ``lists`` (array -> new name)
    concatenated, and ``pattern`` the index within its cell."""
    n = cells[length].to_numpy(dtype=np.int64)
    scalar = [c for c in cells.columns if c not in lists and not isinstance(cells[c].iloc[0], np.ndarray)]
    out = cells[scalar].loc[cells.index.repeat(n)].reset_index(drop=True)
    out["pattern"] = np.concatenate([np.arange(k) for k in n]) if n.size else []
    for col, new in lists.items():
        out[new] = np.concatenate(list(cells[col])) if n.size else []
    return out


def capacity_patterns(cells: pd.DataFrame) -> pd.DataFrame:
    """The capacity sweep as one row per stored pattern (the columns of its figure): ``fixed_point``,
    ``one_step_error`` and ``final_error`` beside the cell's fields."""
    out = _explode(cells, {"one_step_error": "one_step_error", "final_error": "final_error"}, "K")
    out["fixed_point"] = out["one_step_error"] == 0
    return out


def basin_targets(cells: pd.DataFrame) -> pd.DataFrame:
    """The basin sweep as one row per target pattern: ``radius`` (-1: not a fixed point) and ``censored`` beside the
    cell's fields, as the raw tables have them."""
    out = _explode(cells, {"radii": "radius", "censored": "censored"}, "targets")
    out["censored"] = out["censored"].astype(bool)
    return out
