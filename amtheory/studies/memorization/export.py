"""The memorization study's results folder reduced to a small data folder: per-cell summary tables from which the
results page and its figures are computed (``amtheory.studies.memorization.summary`` reads them back).

A results folder holds one parquet table per cell and measurement, with every block's tokens: hundreds of MB for a
sweep of a few hundred models. The data folder keeps per cell (backend, model size, step budget, training size,
seed) only what the page needs, a few MB in six files (columns in ``docs/data/memorization/README.md``):

* ``models.csv`` — one row per trained model: architecture, training settings, parameters, final loss, time;
* ``recovery.csv`` — per (cell, split, t): the sufficient statistics of the pooled recovery rate
  (``rates.STAT_COLUMNS``), so the block-clustered standard error and the seed bootstrap are exact, and count,
  mean and standard deviation over blocks of ``broken``, ``exact`` and the token entropies; the Hopfield family
  too (their rows have no step budget or seed), with the reason where a memory does not apply;
* ``means.csv`` — per (cell, measure, quantity, split, t): count, mean, standard deviation, minimum and maximum
  over blocks of the fixed-point flag, the generation entropy, the longest shared span and the verbatim flag,
  the NELBO and the KL from the empirical denoiser;
* ``basins.csv`` — every block's basin radius (and whether it is censored at the search limit);
* ``trajectory.csv`` — per (cell, reverse step): count, mean and standard deviation over sequences of the
  prediction's entropy and top-two gap, at most ``TRAJECTORY_POINTS`` steps log-spaced in t;
* ``run.json`` — the evaluation settings, the corpus, the machine and time of the run, and the decoded token rows
  of the example figure.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amtheory.studies.memorization.analysis import SETTING_AXES, _read
from amtheory.studies.memorization.cells import DataSpec, ModelSpec, TrainCell
from amtheory.studies.memorization.rates import recovery_stats
from amtheory.studies.memorization.run_record import (
    corpus_record,
    examples,
    log_times,
    read_plan,
    run_json,
    settings_of,
)

__all__ = ["DATA_FILES", "FORMAT", "TRAJECTORY_POINTS", "export_results", "read_results"]

#: What a data folder holds, and the name of its format (``run.json``'s ``format``).
DATA_FILES = ("models.csv", "recovery.csv", "means.csv", "basins.csv", "trajectory.csv", "run.json")
FORMAT = "amtheory memorization data 1"
#: The columns that name a cell in every table of the data folder.
CELL = ["backend", "model_size", "steps", "train_size", "seed"]
#: Most reverse steps of the trajectory kept per cell (log-spaced in t, the first and the last always).
TRAJECTORY_POINTS = 64
#: The settings a data folder summarizes over by design: beyond the readers' axes, the training seeds and budgets.
VARY = (*SETTING_AXES, "train.seed", "train.steps", "steps")
_TABLES = ("train", "recovery", "basins", "fixed_points", "generation", "nelbo", "kl", "trajectory")
_MEANS = {  # measure -> quantities averaged over blocks, and the keys beside the split
    "fixed_points": (("fixed",), ()),
    "generation": (("entropy", "longest_span", "verbatim"), ()),
    "nelbo": (("nelbo",), ()),
    "kl": (("kl", "argmax_differs"), ("t",)),
}


# ---------------------------------------------------------------------------------------------------------------
# Reading the results folder
# ---------------------------------------------------------------------------------------------------------------
def read_results(results: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of a results folder, checked against its checksums and refused with a ``ValueError`` naming the
    differing columns when it mixes settings beyond the model sizes, training sizes, seeds and budgets."""
    from amtheory.core.sweep import check_single_setting

    root = Path(results)
    if not (root / "recovery").is_dir():
        raise FileNotFoundError(f"results: expected a results folder of the memorization study (with a recovery/ "
                                f"folder of parquet tables), got {root}")  # fmt: skip
    tabs = {}
    for name in _TABLES:
        df = _read(root / name)
        tabs[name] = check_single_setting(df, vary=VARY, what=f"results {root / name}") if len(df.columns) else df
    if tabs["recovery"].empty:
        raise FileNotFoundError(f"results: expected parquet tables under {root / 'recovery'}, found none")
    return tabs


#: Step budget and seed of the Hopfield family's rows while they are grouped (written as empty fields).
_NONE = -1


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    """The cell columns of an evaluation table: backend, model size, step budget and seed (``_NONE`` for the
    Hopfield family), training size."""
    none = pd.Series(_NONE, index=df.index)
    return pd.DataFrame(
        {
            "backend": df["backend"].astype(str),
            "model_size": df["model_size"].fillna("").astype(str),
            "steps": df.get("train.steps", none).fillna(_NONE).astype("int64"),
            "train_size": df["train_size"].astype("int64"),
            "seed": df.get("train.seed", none).fillna(_NONE).astype("int64"),
        },
        index=df.index,
    )


def _written(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as it is written: no step budget or seed (an empty field) where a row has none."""
    df = df.copy()
    for c in ("steps", "seed"):
        if c in df:
            v = df[c].astype("Int64")
            df[c] = v.mask(v == _NONE)
    return df


def _with_cells(df: pd.DataFrame, cols) -> pd.DataFrame:
    return pd.concat([_cells(df), df[[c for c in cols if c in df]]], axis=1)


def _stats(df: pd.DataFrame, by: list[str], value: str, prefix: str = "", extremes: bool = False) -> pd.DataFrame:
    """Count, mean and standard deviation (ddof 1) of ``value`` over the rows of each group (NaN values left out)."""
    v = df[value].astype(float)
    g = v.groupby([df[b] for b in by], sort=True, dropna=False)
    out = pd.DataFrame({f"{prefix}count": g.count(), f"{prefix}mean": g.mean(), f"{prefix}sd": g.std(ddof=1)})
    if extremes:
        out[f"{prefix}min"], out[f"{prefix}max"] = g.min(), g.max()
    return out


# ---------------------------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------------------------
def _cell_of_training_row(row: pd.Series, seed: int) -> TrainCell:
    """The TrainCell of a training-table row with ``seed`` (the table's own ``seed`` column is the runner's)."""

    def build(cls, prefix: str):
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "seed" and cls is TrainCell:
                kwargs[f.name] = seed
            elif f.name in ("data", "arch"):
                kwargs[f.name] = build(DataSpec if f.name == "data" else ModelSpec, f"{f.name}.")
            else:
                v = row[prefix + f.name]
                kind = str(f.type).replace(" ", "")
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    kwargs[f.name] = None
                elif kind.startswith("int"):
                    kwargs[f.name] = int(v)
                else:
                    kwargs[f.name] = {"float": float, "bool": bool, "str": str}[kind](v)
        return cls(**kwargs)

    return build(TrainCell, "")


def _models(train: pd.DataFrame, seeds: list[int], eval_s: dict | None) -> pd.DataFrame:
    """One row per trained model, its training seed found by matching the cell key (the runner's own ``seed``
    column shadows the cell's)."""
    from amtheory.core.sweep import cell_key

    if train.empty:
        return pd.DataFrame(columns=[*CELL, "n_params", "final_loss", "wall_s"])
    candidates = sorted(set(seeds)) + [s for s in range(64) if s not in seeds]
    found = []
    for _, row in train.iterrows():
        seed = next((s for s in candidates if cell_key(_cell_of_training_row(row, s)) == row["cell_key"]), None)
        if seed is None:
            raise ValueError(f"results: the training row of {row['model_size']} on {row['train_size']} blocks "
                             f"matches no TrainCell with seeds {candidates[:8]}...; was it written by another "
                             "version of the study?")  # fmt: skip
        found.append(seed)
    drop = {"checkpoint", "cell_key", "cell_fields", "root_seed", "seed", "n_train", "arch.name", "backend", "steps"}
    out = pd.DataFrame({"backend": "uddm", "model_size": train["model_size"].astype(str),
                        "steps": train["steps"].astype(int), "train_size": train["train_size"].astype(int),
                        "seed": found})  # fmt: skip
    out = pd.concat([out, train[[c for c in train.columns if c not in drop and c not in out]]], axis=1)
    key = zip(out["model_size"], out["train_size"], out["seed"])
    out["eval_s"] = [np.nan if eval_s is None else eval_s.get(k, np.nan) for k in key]
    return out.sort_values(CELL, kind="stable").reset_index(drop=True)


def _recovery(rec: pd.DataFrame) -> pd.DataFrame:
    ok = rec[rec["applicable"].astype(bool)]
    df = _with_cells(ok, ["split", "t", "block", "recovered", "n_changed", "broken", "exact", "entropy_recovered",
                          "entropy_unrecovered", "applicable"])  # fmt: skip
    by = [*CELL, "split", "t"]
    out = recovery_stats(df, by).set_index(by)
    for k, c in out.items():
        out[k] = c.round().astype("int64")
    parts = [out, _stats(df, by, "broken", "broken_")]
    df["exact"] = df["exact"].astype(float)
    parts.append(_stats(df, by, "exact", "exact_")[["exact_mean"]])
    for col in ("entropy_recovered", "entropy_unrecovered"):
        # Rows without the UDDM's per-token entropies (the Hopfield family's) count none, also in a table of the
        # family alone, so that a part of a sweep exports its rows as the whole sweep does.
        df[col] = df[col].astype(float) if col in df else np.nan
        parts.append(_stats(df, by, col, f"{col}_"))
    out = pd.concat(parts, axis=1).reset_index()
    out["applicable"], out["reason"] = True, ""
    na = rec[~rec["applicable"].astype(bool)]
    if len(na):
        missing = _cells(na).assign(split="", t=np.nan, applicable=False, reason=na["reason"].astype(str).values)
        out = pd.concat([out, missing.drop_duplicates()], ignore_index=True)
    return out


def _means(tabs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for measure, (quantities, keys) in _MEANS.items():
        t = tabs[measure]
        if t.empty:
            continue
        t = t[t["applicable"].astype(bool)] if "applicable" in t else t
        df = _with_cells(t, ["split", *keys, *quantities])
        for q in quantities:
            if q not in df or df[q].isna().all():
                continue
            by = [*CELL, "split", *keys]
            s = _stats(df, by, q, extremes=True).reset_index()
            frames.append(s[s["count"] > 0].assign(measure=measure, quantity=q))  # a split without the quantity
    cols = [*CELL, "measure", "quantity", "split", "t", "count", "mean", "sd", "min", "max"]
    return pd.concat(frames, ignore_index=True).reindex(columns=cols) if frames else pd.DataFrame(columns=cols)


def _basins(b: pd.DataFrame) -> pd.DataFrame:
    if b.empty:
        return pd.DataFrame(columns=[*CELL, "split", "pattern", "radius", "censored", "applicable", "reason"])
    ok = b["applicable"].astype(bool)
    df = _with_cells(b, ["split", "pattern", "radius", "censored", "applicable", "reason"])
    df = df.astype({"pattern": float, "radius": float, "censored": object})
    df.loc[~ok, ["pattern", "radius", "censored"]] = np.nan
    df = df[ok | ~df.drop(columns=["pattern", "radius", "censored"]).duplicated()]
    df["pattern"] = pd.array(df["pattern"], dtype="Int64")
    df["radius"] = pd.array(df["radius"], dtype="Int64")
    return df.sort_values([*CELL, "split", "pattern"], kind="stable", na_position="first").reset_index(drop=True)


def _kept_steps(steps: pd.DataFrame, points: int) -> set[int]:
    """At most ``points`` reverse steps (columns step, t), log-spaced in t; the first and the last always."""
    s = steps.drop_duplicates("step").sort_values("step")
    if len(s) <= points:
        return set(s["step"].astype(int))
    t = s["t"].to_numpy(float)
    keep = {int(s["step"].iloc[0]), int(s["step"].iloc[-1])}
    pos = t[t > 0]
    for target in np.geomspace(pos.min(), pos.max(), points - 2):
        keep.add(int(s["step"].iloc[int(np.argmin(np.abs(np.log(np.where(t > 0, t, np.nan)) - np.log(target))))]))
    return keep


def _trajectory(traj: pd.DataFrame, points: int) -> pd.DataFrame:
    cols = [*CELL, "split", "step", "t", "count", "entropy_mean", "entropy_sd", "gap_mean", "gap_sd"]
    if traj.empty:
        return pd.DataFrame(columns=cols)
    df = _with_cells(traj, ["split", "step", "t", "entropy", "gap"])
    df = df[df["step"].isin(_kept_steps(df[["step", "t"]], points))]
    by = [*CELL, "split", "step", "t"]
    e, g = _stats(df, by, "entropy", "entropy_"), _stats(df, by, "gap", "gap_")
    out = pd.concat([e.rename(columns={"entropy_count": "count"}), g.drop(columns="gap_count")], axis=1)
    return out.reset_index()[cols]


# ---------------------------------------------------------------------------------------------------------------
# The export
# ---------------------------------------------------------------------------------------------------------------
def _data_spec(models: pd.DataFrame, tabs: dict[str, pd.DataFrame]) -> dict:
    """The corpus the run read: from its models, else (a run of the Hopfield family alone) from the family's rows,
    whose cells name it too; the compacted vocabulary size only a trained model records (None without one)."""
    spec = {"source": None, "length": None, "vocab": None, "vocab_size": None}
    family = [t for t in (tabs["recovery"], tabs["basins"]) if "data.source" in t and len(t)]
    if not models.empty or family:
        r0 = models.iloc[0] if not models.empty else family[0].iloc[0]
        spec = {"source": str(r0["data.source"]), "length": int(r0["data.length"]),
                "vocab": None if pd.isna(r0["data.vocab"]) else int(r0["data.vocab"]),
                "vocab_size": int(r0["vocab_size"]) if not models.empty else None}  # fmt: skip
    return spec


def export_results(
    results: str | Path,
    data: str | Path,
    *,
    log: str | Path | None = None,
    corpus: str | Path | None = None,
    machine: str | None = None,
    command: str | None = None,
    trajectory_points: int = TRAJECTORY_POINTS,
) -> list[Path]:
    """Write the data folder ``data`` (``DATA_FILES``) from the results folder ``results``; ``log``: the run's
    log (per-model measurement time and the total), ``corpus``: the prepared corpus folder (blocks available and
    the ``[UNK]`` share after compaction), ``machine``: what the run ran on, in words; ``command``: the command
    line that made the results folder. Returns the files written."""
    if isinstance(trajectory_points, bool) or not isinstance(trajectory_points, int) or trajectory_points < 2:
        raise ValueError(f"trajectory_points: expected an int >= 2, got {trajectory_points!r}")
    if log is not None and not Path(log).is_file():
        raise FileNotFoundError(f"log: expected the run's log file, got {log} (no such file)")
    if corpus is not None and not Path(corpus).is_dir():
        raise FileNotFoundError(f"corpus: expected a prepared corpus folder, got {corpus} (no such folder)")
    root = Path(results)
    tabs = read_results(root)
    seeds = sorted({int(s) for s in tabs["recovery"].get("train.seed", pd.Series(dtype=float)).dropna()})
    models = _models(tabs["train"], seeds, None)
    eval_s, total = log_times(log, models)
    if eval_s is not None:
        models = _models(tabs["train"], seeds, eval_s)
    settings = settings_of(tabs["recovery"])
    spec = _data_spec(models, tabs)
    run = {
        "format": FORMAT,
        "results": str(root),
        "settings": settings,
        "data": spec,
        "corpus": corpus_record(corpus, spec) if corpus is not None and spec["length"] else None,
        "machine": machine,
        "command": command,
        "log": None if log is None else {"file": Path(log).name, "total_s": total},
        "trajectory_points": trajectory_points,
        "plan": read_plan(root),
        "examples": examples(tabs["recovery"], models, root, settings.get("ts", [])),
    }
    out = Path(data)
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "models.csv": models,
        "recovery.csv": _recovery(tabs["recovery"]),
        "means.csv": _means(tabs),
        "basins.csv": _basins(tabs["basins"]),
        "trajectory.csv": _trajectory(tabs["trajectory"], trajectory_points),
    }
    paths = []
    for name, df in frames.items():
        _written(df).to_csv(out / name, index=False, float_format="%.12g")
        paths.append(out / name)
    (out / "run.json").write_text(run_json(run))
    return [*paths, out / "run.json"]
