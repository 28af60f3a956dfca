"""The memorization study's data folder read back (``amtheory.studies.memorization.export`` writes it), and the
pooling of its per-cell summaries: over blocks of several seeds (means and standard errors from count, mean and
standard deviation) and over seeds (a mean per seed, then their mean with a t interval over seeds).

``read_data(folder)`` opens nothing but the folder's own files; ``open_data(source)`` takes a data folder or a
results folder (which it exports into a temporary folder first, so that both are read by the same code).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amtheory.studies.memorization.export import CELL, DATA_FILES, FORMAT, export_results
from amtheory.studies.memorization.rates import STAT_COLUMNS

__all__ = ["MemorizationData", "open_data", "pool_means", "read_data", "seed_means", "t_quantile"]

_REQUIRED = {
    "models.csv": [*CELL, "n_params", "final_loss", "wall_s"],
    "recovery.csv": [*CELL, "split", "t", "evaluated", *STAT_COLUMNS, "applicable", "reason"],
    "means.csv": [*CELL, "measure", "quantity", "split", "t", "count", "mean", "sd", "min", "max"],
    "basins.csv": [*CELL, "split", "pattern", "radius", "censored", "applicable", "reason"],
    "trajectory.csv": [*CELL, "split", "step", "t", "count", "entropy_mean", "entropy_sd", "gap_mean", "gap_sd"],
}
_TEXT = ("backend", "model_size", "split", "reason", "measure", "quantity")


@dataclass
class MemorizationData:
    """The tables of a data folder (``export.DATA_FILES``) and its ``run.json`` (``run``)."""

    folder: Path
    models: pd.DataFrame
    recovery: pd.DataFrame
    means: pd.DataFrame
    basins: pd.DataFrame
    trajectory: pd.DataFrame
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        return self.run.get("settings", {})

    @property
    def uddm_recovery(self) -> pd.DataFrame:
        r = self.recovery
        return r[(r["backend"] == "uddm") & r["applicable"]]

    def budgets(self) -> list[int]:
        """The step counts the models were trained for, ascending."""
        return sorted({int(s) for s in self.models["steps"].dropna()} | {int(s) for s in self.uddm_recovery["steps"]})

    def model_sizes(self) -> list[str]:
        """The UDDM model sizes, smallest (fewest parameters) first."""
        names = set(self.uddm_recovery["model_size"]) | set(self.models["model_size"])
        params = self.params()
        return sorted(names, key=lambda m: (params.get(m, math.inf), m))

    def params(self) -> dict[str, float]:
        m = self.models
        return m.groupby("model_size")["n_params"].first().astype(float).to_dict() if len(m) else {}

    def seeds(self) -> list[int]:
        return sorted({int(s) for s in self.uddm_recovery["seed"]})

    def measure(self, measure: str, quantity: str) -> pd.DataFrame:
        """The rows of ``means.csv`` of one measure and quantity."""
        m = self.means
        return m[(m["measure"] == measure) & (m["quantity"] == quantity)]


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=True)
    missing = [c for c in _REQUIRED[name] if c not in df.columns]
    if missing:
        raise ValueError(f"data: expected the columns {_REQUIRED[name]} in {path}, missing {missing}; was it "
                         f"written by `experiments/summarize_memorization.py --export`?")  # fmt: skip
    for c in _TEXT:
        if c in df:
            df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    for c in ("steps", "seed", "train_size"):
        df[c] = pd.array(df[c], dtype="Int64")
    for c in ("applicable", "censored"):
        if c in df:
            df[c] = df[c].map(lambda v: v if isinstance(v, bool) or pd.isna(v) else str(v) == "True")
    if "applicable" in df:
        df["applicable"] = df["applicable"].fillna(False).astype(bool)
    return df


def read_data(folder: str | Path) -> MemorizationData:
    """The data folder ``folder`` (``export.DATA_FILES``); a ``FileNotFoundError`` or ``ValueError`` names the
    missing file or column."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"data: expected a data folder of the memorization study, got {root} (no such "
                                "folder)")  # fmt: skip
    missing = [n for n in DATA_FILES if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"data: expected the files {list(DATA_FILES)} in {root}, missing {missing}")
    run = json.loads((root / "run.json").read_text())
    if run.get("format") != FORMAT:
        raise ValueError(f"data: expected {root / 'run.json'} of format {FORMAT!r}, got {run.get('format')!r}")
    tabs = {n.removesuffix(".csv"): _read_csv(root / n, n) for n in DATA_FILES if n.endswith(".csv")}
    if tabs["recovery"].empty:
        raise ValueError(f"data: expected recovery statistics in {root / 'recovery.csv'}, found no rows")
    return MemorizationData(folder=root, run=run, **tabs)


def open_data(source: str | Path) -> MemorizationData:
    """A data folder as it is, or a results folder (with ``recovery/``) exported into a temporary folder first."""
    root = Path(source)
    if (root / "run.json").is_file():
        return read_data(root)
    if (root / "recovery").is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            data = read_data(export_results(root, tmp)[0].parent)
        data.folder = root
        return data
    raise FileNotFoundError(f"source: expected a data folder (with run.json) or a results folder of the "
                            f"memorization study (with recovery/), got {root}")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------------------------
def pool_means(df: pd.DataFrame, by: Sequence[str], prefix: str = "") -> pd.DataFrame:
    """Pool rows of per-cell summaries (``<prefix>count``, ``<prefix>mean``, ``<prefix>sd``) within each group
    ``by`` (e.g. over seeds): the blocks of all rows together, ``count``, ``mean``, ``sd`` and ``se`` =
    ``sd / sqrt(count)`` (NaN with one block), and ``min``, ``max`` where the rows have them."""
    by = list(by)
    c, m, s = (df[f"{prefix}{k}"].astype(float) for k in ("count", "mean", "sd"))
    work = df[by].copy()
    work["c"], work["sx"] = c, (c * m).where(c > 0, 0.0)
    work["sxx"] = ((c - 1).clip(lower=0) * s.fillna(0.0) ** 2 + c * m.fillna(0.0) ** 2).where(c > 0, 0.0)
    g = work.groupby(by, sort=True, dropna=False)
    out = g[["c", "sx", "sxx"]].sum()
    n = out["c"]
    mean = out["sx"] / n.where(n > 0)
    var = (out["sxx"] - n * mean**2) / (n - 1).where(n > 1)
    res = pd.DataFrame({"count": n.astype(int), "mean": mean, "sd": np.sqrt(var.clip(lower=0))})
    res["se"] = res["sd"] / np.sqrt(n.where(n > 0))
    for k in ("min", "max"):
        if f"{prefix}{k}" in df:
            res[k] = df.groupby(by, sort=True, dropna=False)[f"{prefix}{k}"].agg(k)
    return res.reset_index()


def t_quantile(df: int, confidence: float = 0.95) -> float:
    """The two-sided Student t quantile with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def seed_means(df: pd.DataFrame, by: Sequence[str], confidence: float = 0.95) -> pd.DataFrame:
    """Over the seeds of each group ``by`` of per-cell summaries (one row per seed with ``mean``): ``mean`` of the
    per-seed means, ``se`` over seeds, the t interval ``low``, ``high`` (NaN with one seed) and ``seeds``."""
    by = list(by)
    g = df.groupby(by, sort=True, dropna=False)["mean"]
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "seeds": g.count()})
    out["se"] = out["sd"] / np.sqrt(out["seeds"])
    q = out["seeds"].map(lambda k: t_quantile(int(k) - 1, confidence) if k > 1 else math.nan)
    out["low"], out["high"] = out["mean"] - q * out["se"], out["mean"] + q * out["se"]
    return out.drop(columns="sd").reset_index()
