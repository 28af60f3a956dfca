"""Basin radius against load for every backend, from ``experiments/basins_vs_load.py`` results.

One column per N. Top: the share of target patterns that are fixed points (Wilson band); bottom: the median basin
radius over the targets that are fixed points, as a fraction of N (order-statistic band), every replicate pooled,
against the load K/N on a log axis. Theory: the exponential memory's typical-pattern curve ``ln K / N =
I(1 - 2 rho)`` (Lucibello and Mézard 2024), which the median compares with, and the bound for all patterns at once
``ln K / N = I(1 - 2 rho) / 2`` (Demircigil et al. 2017), both at the experiment's N; the Hebbian ``alpha_c = 0.138``
for orientation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from amtheory.core.basins import fixed_point_radius_table
from amtheory.figures import radius, style

REQUIRED = ("backend", "N", "K", "replicate", "radius", "load")
#: The settings the figure draws (panels, lines, x) and pools (replicates); any other must be single.
VARY = ("backend", "N", "K", "replicate")


def pooled_radii(df: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, N, K): the share of fixed points and the median radius / N over them, every replicate pooled
    (``amtheory.core.basins.fixed_point_radius_table``), with the load K/N."""
    t = fixed_point_radius_table(df, ["backend", "N", "K"], length="N")
    return t.assign(load=t["K"] / t["N"])


def draw_basins(raw: pd.DataFrame) -> style.plt.Figure:
    """The figure from a checked per-pattern table."""
    from amtheory.core import theory

    plt = style.plt
    med = pooled_radii(raw)
    delta = f"{raw['delta'].iloc[0]:g}" if "delta" in raw else r"\delta"
    Ns = sorted(med["N"].unique())
    fig, axes = plt.subplots(
        2, len(Ns), figsize=(6.5 * len(Ns) + 3.5, 7.5), squeeze=False, sharex="col", height_ratios=(1, 1.6)
    )
    any_censored = False
    for j, N in enumerate(Ns):
        share_ax, median_ax = axes[0, j], axes[1, j]
        m = med[med["N"] == N]
        for b in style.backend_order(m["backend"]):
            d = m[m["backend"] == b]
            art = radius.draw_radius(
                share_ax, median_ax, d, "load", colour=style.backend_colour(b), label=style.backend_label(b)
            )
            any_censored |= art["censored"] is not None
        radius.exp_theory_curves(median_ax, float(m["load"].min()), float(m["load"].max()), int(N))
        for ax in (share_ax, median_ax):
            ax.axvline(theory.ALPHA_C, color="k", ls=":", lw=1, label=r"$\alpha_c = 0.138$")
            ax.set_xscale("log")
        share_ax.set(ylim=(-0.03, 1.03), ylabel=radius.SHARE_LABEL if j == 0 else "")
        share_ax.set_title(f"N = {N}, synchronous updates, success $\\geq$ 1 - {delta}")
        median_ax.set(ylim=(-0.01, 0.52), xlabel=r"load $K/N$", ylabel=radius.MEDIAN_LABEL if j == 0 else "")
    handles, labels = axes[1, 0].get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels) if not lab.startswith("_")]
    if any_censored:
        keep.append((radius.censored_handle(), "at the search limit"))
    style.legend_outside(fig, [h for h, _ in keep], [lab for _, lab in keep], fontsize=9)
    style.footnote(fig, radius.RADIUS_NOTE)
    return fig


def plot_basins(results, out_dir: str | Path = "paper_figures/out", name: str = "basins_vs_load") -> list[Path]:
    """Draw the basin-radius figure from a results folder (or table); returns the PDF and PNG paths."""
    style.setup()
    return style.save(draw_basins(style.read_results(results, REQUIRED, vary=VARY)), out_dir, name)
