"""Capacity of dense associative memories against N, from ``experiments/dense_scaling.py`` results.

Left: the capacity K_max (largest K with the chosen share of stored patterns fixed points) of the polynomial memory
``F(z) = z^n`` on log-log axes, every seed as a faint point and the median per N as a line, with the theory
``N^(n-1) / (2 (2n-3)!! ln N)`` (Krotov and Hopfield 2016) dashed for binary patterns and a least-squares slope of
``log K_max`` on ``log N`` in the legend (theory: n - 1, approached as ``n - 1 - 1/ln N``). Right: the exponential
memory's ``ln K_max / N`` against N with the typical pattern's ``ln 2`` (Lucibello and Mézard 2024), which K_max (a
share of the patterns) compares with, and the bound for all patterns at once ``ln 2 / 2`` (Demircigil et al. 2017).
One figure per vocabulary size found in the results (``dense_scaling`` for V = 2, ``dense_scaling_V3`` ...). Each
degree has the colour and label of its registered backend (``poly3`` ...; a degree that is not registered gets a
colour no backend has), the exponential memory its registered colour and label; a capacity at the search limit
(censored, a lower bound) is an upward triangle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.figures import style

REQUIRED = ("kind", "n", "N", "replicate", "vocab", "K_max", "censored")
#: The settings the figures draw (one figure per vocabulary, lines, x) and pool (replicates); others must be single.
VARY = ("kind", "n", "N", "replicate", "vocab")


def fitted_slopes(df: pd.DataFrame) -> dict[int, float]:
    """Least-squares slope of ``log K_max`` on ``log N`` per polynomial degree (cells with K_max > 0)."""
    out = {}
    for n, d in df[(df["kind"] == "poly") & (df["K_max"] > 0)].groupby("n"):
        if d["N"].nunique() >= 2:
            out[int(n)] = float(np.polyfit(np.log(d["N"]), np.log(d["K_max"]), 1)[0])
    return out


def _degree_label(n: int) -> str:
    """The registered label of the degree-n polynomial memory (``poly<n>``), else one in the same form."""
    name = f"poly{n}"
    return style.backend_label(name) if name in style.BACKEND_LABELS else f"dense, $z^{n}$"


def plot_dense_scaling(results, out_dir: str | Path = "paper_figures/out", name: str = "dense_scaling") -> list[Path]:
    """Draw one dense-scaling figure per vocabulary size; returns all PDF and PNG paths."""
    import matplotlib.pyplot as plt

    from amtheory.core import theory

    style.setup()
    df = style.read_results(results, REQUIRED, vary=VARY)
    paths: list[Path] = []
    for V, dv in df.groupby("vocab"):
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 5.6), gridspec_kw={"width_ratios": [1.35, 1]})
        poly = dv[dv["kind"] == "poly"]
        degrees = sorted(poly["n"].unique())
        by_name = style.series_colours(f"poly{n}" for n in degrees)
        colors = {n: by_name[f"poly{n}"] for n in degrees}
        slopes = fitted_slopes(dv)
        for n in degrees:
            d = poly[poly["n"] == n]
            c = colors[n]
            ax.scatter(d["N"], d["K_max"].clip(lower=1), color=c, alpha=0.3, s=14, lw=0)
            med = d.groupby("N")["K_max"].median()
            fit = f"fit slope {slopes[n]:.2f}" if n in slopes else "fit n/a"
            ax.plot(
                med.index,
                med.clip(lower=1).to_numpy(),
                marker="o",
                color=c,
                label=f"{_degree_label(n)}: {fit} ({'' if V == 2 else 'binary '}theory {n - 1})",
            )
            cens = d[d["censored"]]
            if len(cens):
                ax.scatter(
                    cens["N"],
                    cens["K_max"],
                    marker="^",
                    color=c,
                    s=40,
                    label=f"{_degree_label(n)}: censored (lower bound)",
                )
            Ns = np.unique(np.geomspace(d["N"].min(), d["N"].max(), 50).round().astype(int))
            if V == 2:
                ax.plot(Ns, [theory.dense_poly_capacity(int(N), int(n)) for N in Ns], ls="--", color=c, lw=1.2)
        if V == 2 and degrees:
            ax.plot([], [], ls="--", color="gray", label=r"theory $N^{n-1}/(2(2n-3)!!\ln N)$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Plain numbers at powers of two: the default log labels overlap on a narrow range of N.
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        lo_N, hi_N = float(dv["N"].min()), float(dv["N"].max())
        ticks = [2**k for k in range(2, 16) if lo_N / 1.01 <= 2**k <= hi_N * 1.01] or sorted(dv["N"].unique())
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("N (units)")
        ax.set_ylabel(r"capacity $K_{\max}$")
        thr = dv["threshold"].iloc[0] if "threshold" in dv else None
        share = f"{100 * thr:g}% fixed points" if thr is not None else "fixed points"
        ax.set_title(f"polynomial $F(z)=z^n$, V = {V} ({share})")
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2)

        ex = dv[dv["kind"] == "exp"]
        if len(ex):
            c = style.BACKEND_COLORS["exp"]
            rate = np.log(ex["K_max"].clip(lower=1)) / ex["N"]
            bx.scatter(ex["N"], rate, color=c, alpha=0.3, s=14, lw=0)
            med = (np.log(ex["K_max"].clip(lower=1)) / ex["N"]).groupby(ex["N"]).median()
            bx.plot(med.index, med.to_numpy(), marker="o", color=c, label=r"median $\ln K_{\max}/N$")
            cens = ex[ex["censored"]]
            if len(cens):
                bx.scatter(
                    cens["N"],
                    np.log(cens["K_max"]) / cens["N"],
                    marker="^",
                    color=c,
                    s=40,
                    label="censored (lower bound)",
                )
        bound = theory.EXP_ALPHA_MAX
        bx.axhline(bound, color="k", ls=":", lw=1.2, label=r"$\ln 2/2$: bound for all patterns at once")
        typical = theory.EXP_TYPICAL_ALPHA_MAX
        bx.axhline(typical, color="k", ls="--", lw=1.2, label=r"$\ln 2$: typical pattern")
        bx.set_ylim(
            0, max(typical, float(np.nanmax(np.log(ex["K_max"].clip(lower=1)) / ex["N"])) if len(ex) else bound) * 1.15
        )
        bx.set_xlabel("N (units)")
        bx.set_ylabel(r"$\ln K_{\max} / N$")
        bx.set_title(f"{style.backend_label('exp')}, V = {V}")
        bx.legend(fontsize=9, loc="upper left", bbox_to_anchor=(0.0, -0.14))
        paths += style.save(fig, out_dir, name if V == 2 else f"{name}_V{V}")
    return paths
