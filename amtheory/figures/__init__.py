"""The figures, each drawn only from result tables (folders of per-cell parquet files written by
``amtheory.core.sweep.run_sweep``), in the colour and label of each backend from the registry.

One module per figure: ``capacity``, ``dense_scaling``, ``basins`` (basin radius against load), ``compare`` (the
main job's side by side), ``memorization`` (with ``memorization_example``); ``style`` holds the shared look and
``radius`` the one way every figure draws basin radii. ``FIGURES`` names them for ``amtheory figures <name>``;
``draw(name, results, out)`` draws one. Importing this package does not import matplotlib (the ``plot`` extra);
drawing does.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FIGURES", "FigureSpec", "draw"]


@dataclass(frozen=True)
class FigureSpec:
    """A figure: ``function`` (``module:function``, called with the results folder and the output folder), the
    results folder it reads by default, the command that writes that folder, and what it shows."""

    function: str
    results: str
    command: str
    help: str


FIGURES = {
    "capacity": FigureSpec(
        "amtheory.figures.capacity:plot_capacity", "results/capacity", "python experiments/capacity.py",
        "classical capacity: fixed-point share, one-step and final bit errors against load",
    ),
    "dense_scaling": FigureSpec(
        "amtheory.figures.dense_scaling:plot_dense_scaling", "results/dense_scaling",
        "python experiments/dense_scaling.py", "capacity of the dense memories against N",
    ),
    "basins": FigureSpec(
        "amtheory.figures.basins:plot_basins", "results/basins_vs_load", "python experiments/basins_vs_load.py",
        "fixed-point share and median basin radius against load, every backend",
    ),
    "compare": FigureSpec(
        "amtheory.figures.compare:figure", "results/main/hopfield", "amtheory run --part hopfield",
        "the main job's Hopfield family side by side: exact retrieval, fixed points and basin radii",
    ),
    "memorization": FigureSpec(
        "amtheory.figures.memorization:make_figures", "results/memorization", "python experiments/memorization.py",
        "the memorization experiment's seven figures",
    ),
}  # fmt: skip


def draw(name: str, results: str | Path | None = None, out: str | Path = "figures") -> list[Path]:
    """Draw figure ``name`` (a key of ``FIGURES``) from the folder ``results`` (default: the figure's own) into
    ``out``; returns the files written."""
    if name not in FIGURES:
        raise ValueError(f"name: expected one of {tuple(FIGURES)}, got {name!r}")
    spec = FIGURES[name]
    folder = Path(spec.results if results is None else results)
    if not folder.is_dir():
        raise FileNotFoundError(f"results: no results folder {str(folder)!r} (written by `{spec.command}`)")
    module, function = spec.function.split(":")
    return getattr(importlib.import_module(module), function)(folder, out)
