"""Shared look of the figures: the Agg backend, one seaborn theme with constrained layout, one colour and one label
per backend read from the registry (``amtheory.core.registry``), the checked reading of result tables, a footnote
under a figure and a saver that writes PDF and PNG side by side."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402

from amtheory.core import registry  # noqa: E402

__all__ = [
    "BACKEND_COLORS",
    "BACKEND_LABELS",
    "backend_colour",
    "backend_label",
    "backend_order",
    "cli",
    "footnote",
    "legend_outside",
    "plt",
    "read_results",
    "save",
    "series_colours",
    "setup",
    "shades",
    "sns",
]


class _ByBackend(Mapping):
    """A live view of one field of the backend registry, name -> value, over every registered backend; looking up
    an alias (a study's own name for a backend) gives the backend's value."""

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


def backend_order(names: Iterable[str]) -> list[str]:
    """``names`` in the registry's order (an alias at its backend's place), then any unregistered name sorted:
    none is left out."""
    rank = {b: i for i, b in enumerate(registry.backend_names())}

    def key(name: str) -> tuple:
        return (0, rank[registry.backend_info(name).name], name) if _registered(name) else (1, 0, name)

    return sorted(set(names), key=key)


def _registered(name: str) -> bool:
    try:
        registry.backend_info(name)
    except ValueError:
        return False
    return True


def series_colours(names: Iterable[str]) -> dict[str, str]:
    """A colour per series: a registered backend's own colour, any other series the next palette colour that no
    registered backend (and no earlier series) has, so that a series never looks like a backend it is not."""
    names = list(names)
    used = {registry.colour(b) for b in registry.backend_names()}
    free = [c for c in registry.PALETTE + registry.EXTRA_PALETTE if c not in used]
    out = {}
    for n in names:
        if _registered(n):
            out[n] = registry.colour(n)
        else:
            out[n] = free.pop(0) if free else registry.colour(n)
    return out


def shades(colour: str, n: int) -> list[str]:
    """``n`` shades of one colour, light to dark, for the sizes of one backend (e.g. the UDDM's model sizes)."""
    if n <= 1:
        return [to_hex(colour)][:n]
    base = to_rgb(colour)
    out = []
    for i in range(n):
        w = -0.45 + 0.9 * i / (n - 1)  # < 0: towards white, > 0: towards black
        target = (0.0, 0.0, 0.0) if w > 0 else (1.0, 1.0, 1.0)
        out.append(to_hex(tuple(c + abs(w) * (t - c) for c, t in zip(base, target))))
    return out


def setup() -> None:
    """Apply the theme (call before drawing): constrained layout, so labels, titles and legends never overlap."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.25)
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "legend.frameon": False,
            "axes.titleweight": "bold",
            "figure.constrained_layout.use": True,
        }
    )


def legend_outside(fig: plt.Figure, handles=None, labels=None, **kw) -> matplotlib.legend.Legend:
    """One legend for the figure, right of every panel (constrained layout makes room for it)."""
    if handles is None:
        handles, labels = [], []
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels and not lab.startswith("_"):
                    handles.append(h)
                    labels.append(lab)
    return fig.legend(handles, labels, loc="outside right center", **kw)


def footnote(fig: plt.Figure, text: str) -> None:
    """A caption line under the panels (wrapped to the figure's width)."""
    fig.supxlabel(text, fontsize=8, wrap=True, ha="center", color="0.25", fontweight="normal")


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


def cli(description: str, default_results: str) -> argparse.ArgumentParser:
    """The command line of a figure script: ``--results`` and ``--out``, with their defaults shown."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--results", default=default_results, help="folder of parquet tables written by the sweep")
    p.add_argument("--out", default="paper_figures/out", help="folder for the PDF and PNG files")
    return p
