"""Side by side: every Hopfield-family backend on the same patterns and corruptions (the main job's tables).

One row per network size N, every panel titled with its N. Left: exact-retrieval rate against the fraction of
corrupted tokens, one panel per load, with Wilson bands. Right: the share of stored patterns that are fixed points
(Wilson band) and the median basin radius / N over those fixed points (order-statistic band) against load, every
replicate pooled, with the exponential memory's typical-pattern curve and all-patterns bound at that N. The tables
must hold one setting otherwise (``amtheory.core.sweep.check_single_setting``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from amtheory.core.basins import fixed_point_radius_table, wilson_interval
from amtheory.figures import radius, style

#: The settings the figure draws (rows, panels, lines, x) and pools (replicates); any other must be single.
VARY = ("backend", "n", "load", "replicate")
RECOVERY = ("backend", "n", "load", "rho", "exact")
RADIUS = ("backend", "n", "load", "replicate", "radius")


def exact_rates(rec: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, n, load, rho): the exact-retrieval rate over every trial with its Wilson interval."""
    g = rec.groupby(["backend", "n", "load", "rho"], as_index=False, observed=True)["exact"].agg(["sum", "count"])
    lo, hi = wilson_interval(g["sum"].to_numpy(), g["count"].to_numpy())
    return g.assign(exact=g["sum"] / g["count"], low=lo, high=hi)


def radius_data(rad: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, n, load): share of fixed points and median radius / N over them, replicates pooled."""
    return fixed_point_radius_table(rad, ["backend", "n", "load"], length="n")


def draw_compare(rec: pd.DataFrame, rad: pd.DataFrame) -> style.plt.Figure:
    """The figure from the checked recovery and radius tables."""
    from amtheory.core import theory

    plt = style.plt
    rates, radii = exact_rates(rec), radius_data(rad)
    ns = sorted(set(rates["n"]) | set(radii["n"]))
    loads = sorted(rates["load"].unique())
    backends = style.backend_order(set(rates["backend"]) | set(radii["backend"]))
    fig, axes = plt.subplots(
        len(ns), len(loads) + 2, figsize=(3.2 * (len(loads) + 2) + 3.5, 3.5 * len(ns) + 0.6), squeeze=False
    )
    any_censored = False
    # One row per network size: curves of different N are never averaged into one line.
    for row, n in zip(axes, ns):
        for ax, load in zip(row[:-2], loads):
            d = rates[(rates["n"] == n) & (rates["load"] == load)]
            for b in backends:
                s = d[d["backend"] == b].sort_values("rho")
                c = style.backend_colour(b)
                ax.plot(s["rho"], s["exact"], "o-", ms=4, color=c, label=style.backend_label(b))
                ax.fill_between(s["rho"], s["low"], s["high"], color=c, alpha=0.15, lw=0)
            ax.set(title=f"N = {n}, load K/N = {load:g}", xlabel="fraction of tokens corrupted", ylim=(-0.03, 1.03))
            ax.set_ylabel("exact retrieval" if load == loads[0] else "")
        share_ax, median_ax = row[-2], row[-1]
        m = radii[radii["n"] == n]
        for b in backends:
            d = m[m["backend"] == b]
            if len(d):
                art = radius.draw_radius(
                    share_ax, median_ax, d, "load", colour=style.backend_colour(b), label=style.backend_label(b)
                )
                any_censored |= art["censored"] is not None
        if len(m):
            radius.exp_theory_curves(median_ax, float(m["load"].min()), float(m["load"].max()), int(n))
        for ax in (share_ax, median_ax):
            ax.axvline(theory.ALPHA_C, color="k", ls=":", lw=1, label=r"$\alpha_c = 0.138$")
            ax.set_xlabel("load K/N")
        share_ax.set(title=f"N = {n}, fixed points", ylabel=radius.SHARE_LABEL, ylim=(-0.03, 1.03))
        median_ax.set(title=f"N = {n}, basin radius", ylabel=radius.MEDIAN_LABEL, ylim=(-0.01, 0.52))
    handles, labels = axes[0, -1].get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels) if not lab.startswith("_")]
    if any_censored:
        keep.append((radius.censored_handle(), "at the search limit"))
    style.legend_outside(fig, [h for h, _ in keep], [lab for _, lab in keep], fontsize=9)
    style.footnote(fig, "Exact retrieval: share of trials, Wilson band. " + radius.RADIUS_NOTE)
    return fig


def figure(results: str | Path, out: str | Path) -> list[Path]:
    """Draw ``compare_hopfield`` from a folder holding ``recovery/`` and ``radius/``; returns the PDF and PNG."""
    style.setup()
    rec = style.read_results(Path(results) / "recovery", RECOVERY, vary=VARY)
    rad = style.read_results(Path(results) / "radius", RADIUS, vary=VARY)
    return style.save(draw_compare(rec, rad), out, "compare_hopfield")
