"""Basin radii in figures, under the one convention of ``amtheory.core.basins.fixed_point_radius``: a panel of the
share of patterns that are fixed points (Wilson band) beside a panel of the median radius over those fixed points
(order-statistic band), a median at the search limit drawn as an open upward triangle (a lower bound); and the
exponential memory's two theory curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from amtheory.core import theory
from amtheory.figures import style

#: The caption every radius figure carries.
RADIUS_NOTE = (
    "Radius: median over the patterns that are fixed points; share: patterns that are fixed points. Bands: 95% "
    "intervals (share: Wilson; median: order statistics over the patterns). A band of zero width means that the "
    "order statistics around the median share one integer radius, so the median over patterns is that integer at "
    "95%; the band leaves out the Monte Carlo error of each pattern's radius. Open triangles: median at the search "
    "limit (a lower bound)."
)

SHARE_LABEL = "patterns that are fixed points"
MEDIAN_LABEL = r"median radius / N over fixed points"


def draw_radius(share_ax, median_ax, stats: pd.DataFrame, x: str, *, colour: str, label: str) -> dict:
    """Draw one series: its share of fixed points on ``share_ax`` and its median radius over the fixed points on
    ``median_ax`` (``stats``: rows of ``fixed_point_radius_table`` with the column ``x``). Returns the artists:
    ``share``, ``median`` (Line2D) and ``censored`` (the open triangles, None when no median is censored)."""
    d = stats.sort_values(x)
    out = {}
    if share_ax is not None:
        (out["share"],) = share_ax.plot(d[x], d["fixed_share"], "o-", ms=4, color=colour, label=label)
        share_ax.fill_between(d[x], d["fixed_share_low"], d["fixed_share_high"], color=colour, alpha=0.15, lw=0)
    (out["median"],) = median_ax.plot(d[x], d["median"], "o-", ms=4, color=colour, label=label)
    median_ax.fill_between(d[x], d["median_low"], d["median_high"], color=colour, alpha=0.15, lw=0)
    cens = d[d["median_censored"].astype(bool)] if "median_censored" in d else d.iloc[:0]
    out["censored"] = None
    if len(cens):
        (out["censored"],) = median_ax.plot(
            cens[x], cens["median"], "^", ms=9, mfc="white", mew=1.5, color=colour, ls="", label="_censored"
        )
    return out


def censored_handle():
    """The legend entry of a censored median."""
    return style.plt.Line2D([], [], marker="^", ls="", ms=8, mfc="white", color="0.3", label="at the search limit")


def exp_theory_curves(ax, load_min: float, load_max: float, N: int) -> list:
    """The exponential memory's basin against load K/N at size N: the typical-pattern curve ``ln K / N =
    I(1 - 2 rho)`` (Lucibello and Mézard 2024), which a median radius compares with, and the bound for all patterns
    at once ``ln K / N = I(1 - 2 rho) / 2`` (Demircigil et al. 2017). Returns the two lines."""
    loads = np.geomspace(max(load_min, 1.0 / N), load_max, 200)
    rate = np.log(loads * N) / N
    typical = [theory.exp_typical_basin_radius(r) if 0 <= r <= math.log(2) else np.nan for r in rate]
    bound = [theory.exp_basin_radius(r) if 0 <= r <= theory.EXP_ALPHA_MAX else np.nan for r in rate]
    c = style.backend_colour("exp")
    name = style.backend_label("exp")
    (a,) = ax.plot(loads, typical, "--", color=c, lw=1.3, label=f"{name}, typical pattern: $\\ln K/N = I(1-2\\rho)$")
    (b,) = ax.plot(
        loads, bound, ":", color=c, lw=1.3, label=f"{name}, bound for all patterns: $\\ln K/N = I(1-2\\rho)/2$"
    )
    return [a, b]
