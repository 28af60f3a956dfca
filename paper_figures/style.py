"""Shared look of the paper figures: the Agg backend, one seaborn theme, fixed colours per backend, and a saver
that writes PDF and PNG side by side."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from amtheory.core import registry  # noqa: E402


class _ByBackend(Mapping):
    """A live view of one field of the backend registry (``amtheory.core.registry``), name -> value, over every
    registered backend; looking up an alias (a study's own name for a backend) gives the backend's value."""

    def __init__(self, get):
        self._get = get

    def __getitem__(self, name: str) -> str:
        try:
            return self._get(registry.backend_info(name))
        except ValueError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(registry.backend_names())

    def __len__(self) -> int:
        return len(registry.backend_names())


#: One colour per backend, the same in every figure: each backend's registered colour.
BACKEND_COLORS: Mapping[str, str] = _ByBackend(lambda b: b.colour)
#: One label per backend, the same in every figure: each backend's registered label.
BACKEND_LABELS: Mapping[str, str] = _ByBackend(lambda b: b.label)


def backend_colour(name: str) -> str:
    """The colour of backend ``name`` (registered, or one from the registry's palette by its name's hash)."""
    return registry.colour(name)


def backend_label(name: str) -> str:
    """The label of backend ``name`` (its registered label, else the name itself)."""
    return registry.label(name)


def setup() -> None:
    """Apply the theme (call before drawing)."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.25)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "legend.frameon": False, "axes.titleweight": "bold"})


def read_results(
    results: str | Path | pd.DataFrame, required: tuple[str, ...] = (), *, vary: tuple[str, ...] = ()
) -> pd.DataFrame:
    """A result table: a DataFrame as is, or every ``*.parquet`` in a folder, each checked against its checksum
    (``amtheory.core.sweep.load_results``); checks the needed columns and that the table holds one setting, allowing
    only the columns in ``vary`` (the figure's axes and what it averages over) to take several values."""
    from amtheory.core.sweep import check_single_setting, load_results

    if isinstance(results, pd.DataFrame):
        df, where = results, "results"
    else:
        folder = Path(results)
        df = load_results(folder) if folder.is_dir() else pd.DataFrame()
        if df.empty and not df.columns.size:
            raise FileNotFoundError(f"results: expected a folder of .parquet tables, found none in {folder}")
        where = f"results {folder}"
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"results: expected columns {list(required)}, missing {missing}")
    if df.empty:
        raise ValueError("results: the table is empty")
    return check_single_setting(df, vary=vary, what=where)


def save(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name.pdf`` and ``name.png`` into ``out_dir``; returns both paths and closes the figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths


def bootstrap_median(values: np.ndarray, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0):
    """Median of ``values`` with a percentile-bootstrap interval (Efron 1979), from a fixed-seed generator so that
    the figure is reproducible."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(v, size=(n_boot, v.size), replace=True), axis=1)
    a = (1.0 - confidence) / 2.0
    return float(np.median(v)), float(np.quantile(boots, a)), float(np.quantile(boots, 1.0 - a))


def cli(description: str, default_results: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--results", default=default_results, help="folder of parquet tables written by the sweep")
    p.add_argument("--out", default="paper_figures/out", help="folder for the PDF and PNG files")
    return p
