"""The Hopfield results page's export step: the sweeps' raw parquet folders -> the per-cell CSV tables of the data
folder (``docs/data/hopfield/``, described in :mod:`amtheory.reports.hopfield.data`), from which alone the page is
built.

Each raw folder is read checked (``read_folder``: checksums, one setting), its preset recognised from its cells, and
each cell summarised without loss of what the page uses: counts, and the per-pattern integers behind its bootstraps
and order statistics (the capacity's wrong bits are written as counts and checked to give the recorded shares back
bit for bit).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.reports.hopfield.data import (
    COLUMNS,
    ERROR_LISTS,
    SWEEP_COLUMNS,
    SWEEPS_FILE,
    HopfieldData,
    encode_list,
    read_data,
)
from amtheory.reports.hopfield.reading import EXPERIMENTS, RETRIEVAL_CUT, VARY, command, detect_preset, read_folder


def this_machine() -> str:
    """The CPU model (as ``lscpu`` names it) and the torch version of the machine running this, for ``--machine``."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, torch {torch.__version__}"


def _cell_rows(raw: pd.DataFrame, order: Sequence[str]):
    """(first row, the cell's rows sorted by pattern) per cell, the cells sorted by ``order``."""
    for _, g in raw.sort_values([*order, "pattern"] if "pattern" in raw else list(order)).groupby(
        "cell_key", sort=False
    ):
        if "pattern" in g and not np.array_equal(g["pattern"].to_numpy(), np.arange(len(g))):
            raise ValueError(f"results: expected patterns 0..{len(g) - 1} in cell {g['cell_key'].iloc[0]}")
        yield g.iloc[0], g


def summarize_capacity(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per network: its fields, counts, and the per-pattern wrong bits (``ERROR_LISTS``), with the raw
    shares beside them as arrays; raises ``ValueError`` when a share is not a count over N."""
    rows = []
    for first, g in _cell_rows(raw, VARY["capacity"]):
        N = int(first["N"])
        row = {c: first[c] for c in COLUMNS["capacity"] if c in first.index}
        row.update(
            fixed_points=int(g["fixed_point"].sum()),
            retrieved=int((g["final_error"] <= RETRIEVAL_CUT).sum()),
            converged=int(g["converged"].sum()),
        )
        for col, share in ERROR_LISTS.items():
            err = g[share].to_numpy(dtype=np.float64)
            bits = np.rint(err * N).astype(np.int64)
            if not np.array_equal(bits / N, err):
                raise ValueError(f"results capacity: expected {share} to be wrong bits over N = {N}, got {err[:4]}")
            row[col], row[share] = bits, err
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_basins(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, K, replicate): its fields, counts, and the per-target radii and censoring flags."""
    rows = []
    for first, g in _cell_rows(raw, VARY["basins_vs_load"]):
        row = {c: first[c] for c in COLUMNS["basins_vs_load"] if c in first.index}
        radii = g["radius"].to_numpy(dtype=np.int64)
        cens = g["censored"].to_numpy(dtype=bool)
        row.update(
            targets=len(g),
            fixed_points=int((radii >= 0).sum()),
            at_search_limit=int(((radii >= 0) & cens).sum()),
            radii=radii,
            censored=cens.astype(np.int64),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_dense(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per capacity search, the raw table's columns of ``COLUMNS['dense_scaling']``."""
    return raw.sort_values(list(VARY["dense_scaling"]))[list(COLUMNS["dense_scaling"])].reset_index(drop=True)


SUMMARIES = {"capacity": summarize_capacity, "dense_scaling": summarize_dense, "basins_vs_load": summarize_basins}


def notes_by_sweep(notes: Sequence[str], sweeps: Sequence[str]) -> dict[str, str]:
    """``--note`` values ('SWEEP: TEXT', or TEXT for every sweep in ``sweeps``) joined per sweep."""
    out: dict[str, list[str]] = {}
    for note in notes:
        name, _, text = note.partition(":")
        targets = [name.strip()] if text and name.strip() in EXPERIMENTS else list(sweeps)
        text = text.strip() if text and name.strip() in EXPERIMENTS else note.strip()
        for t in targets:
            out.setdefault(t, []).append(text)
    return {k: " ".join(v) for k, v in out.items()}


def summarize_sweep(
    name: str, raw: pd.DataFrame, machine: str, run_args: str = "", note: str = ""
) -> tuple[dict, pd.DataFrame]:
    """The ``sweeps.csv`` row and the cell table (typed, per-pattern lists as arrays) of one raw table."""
    fields = raw["cell_fields"].unique()
    unknown = sorted(set(json.loads(fields[0])) - set(COLUMNS[name])) if len(fields) == 1 else ["several sets"]
    if unknown:
        raise ValueError(f"results {name}: expected cell fields among the columns of {name}.csv, got {unknown}")
    missing = [c for c in COLUMNS[name] if c not in raw.columns and c not in _DERIVED]
    if missing:
        raise ValueError(f"results {name}: expected the columns {missing} in the raw tables")
    preset = detect_preset(name, raw)
    seed = int(raw["root_seed"].iloc[0])
    devices = sorted(raw["device"].astype(str).unique())
    cmd = command(name, preset, devices[0], seed) + (f" {run_args}" if run_args else "")
    sweep = dict(
        sweep=name,
        file=f"{name}.csv",
        preset=preset,
        root_seed=seed,
        command=cmd,
        machine=machine,
        note=note,
        cell_fields=fields[0],
    )
    return sweep, SUMMARIES[name](raw)


#: Columns of the data folder that the export computes (counts and lists) rather than copies.
_DERIVED = {
    "fixed_points",
    "retrieved",
    "converged",
    "targets",
    "at_search_limit",
    "radii",
    "censored",
    "one_step_wrong_bits",
    "final_wrong_bits",
}


def _page_form(name: str, cells: pd.DataFrame, sweep: dict) -> pd.DataFrame:
    """The cell table as ``read_data`` gives it: the capacity's raw shares in place of the wrong bits, the sweep's
    ``cell_fields`` and ``root_seed`` beside every row."""
    cols = [c for c in COLUMNS[name] if c not in ERROR_LISTS] + (
        list(ERROR_LISTS.values()) if name == "capacity" else []
    )
    out = cells[cols].reset_index(drop=True).copy()
    out["cell_fields"] = sweep["cell_fields"]
    out["root_seed"] = int(sweep["root_seed"])
    return out


def _raw_tables(results: Path, sweeps: Sequence[str] | None) -> dict[str, pd.DataFrame]:
    results = Path(results)
    if not results.is_dir():
        raise ValueError(f"--export: expected a folder holding {', '.join(EXPERIMENTS)}, got {str(results)!r}")
    unknown = [s for s in sweeps or () if s not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"--sweeps: expected names among {EXPERIMENTS}, got {unknown}")
    tables = {name: read_folder(results / name, name) for name in sweeps or EXPERIMENTS}
    empty = [name for name, df in tables.items() if df is None]
    if (sweeps and empty) or len(empty) == len(tables):
        raise ValueError(f"--export: expected parquet tables in {results} for {', '.join(empty)}, found none")
    return {name: df for name, df in tables.items() if df is not None}


def summarize_results(
    results: str | Path, *, machine: str, run_args: str = "", sweeps: Sequence[str] | None = None
) -> HopfieldData:
    """The page's tables straight from the raw folders under ``results`` (those of ``sweeps``, default: every
    sweep with tables), in memory: what ``read_data`` gives after ``export_tables``."""
    rows, cells = [], {}
    for name, raw in _raw_tables(results, sweeps).items():
        sweep, table = summarize_sweep(name, raw, machine, run_args)
        rows.append(sweep)
        cells[name] = _page_form(name, table, sweep)
    return HopfieldData(pd.DataFrame(rows, columns=list(SWEEP_COLUMNS)), cells)


def export_tables(
    results: str | Path,
    data: str | Path,
    *,
    machine: str,
    run_args: str = "",
    sweeps: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> list[Path]:
    """Write the data folder ``data`` from the raw folders under ``results``: one CSV per sweep and ``sweeps.csv``
    (rows of sweeps not exported now are kept). Returns the files written, read back and checked."""
    data = Path(data)
    rows = {}
    if (data / SWEEPS_FILE).is_file():
        old = pd.read_csv(data / SWEEPS_FILE, dtype=str, keep_default_na=False)
        rows = {r["sweep"]: r for r in old.to_dict("records")}
    written = []
    raws = _raw_tables(results, sweeps)
    note = notes_by_sweep(notes, list(raws))
    for name, raw in raws.items():
        sweep, table = summarize_sweep(name, raw, machine, run_args, note.get(name, ""))
        text = table[list(COLUMNS[name])].copy()
        for c, kind in COLUMNS[name].items():
            if kind in ("ints", "flags"):
                text[c] = [encode_list(v) for v in text[c]]
        data.mkdir(parents=True, exist_ok=True)
        text.to_csv(data / sweep["file"], index=False, lineterminator="\n")
        rows[name] = sweep
        written.append(data / sweep["file"])
    table = pd.DataFrame([rows[n] for n in EXPERIMENTS if n in rows], columns=list(SWEEP_COLUMNS))
    table.to_csv(data / SWEEPS_FILE, index=False, lineterminator="\n")
    read_data(data)
    return [*written, data / SWEEPS_FILE]
