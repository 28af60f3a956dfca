"""The Hopfield results page: the basin-radius sections."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from amtheory.core import registry, theory
from amtheory.core.basins import RADIUS_CONVENTION
from amtheory.reports.hopfield.statistics import basin_summary, fmt, md_table, radius_entry

#: How many missing cells the page names one by one.
MISSING_LISTED = 12
#: The header every radius table of the page carries.
TABLE_HEADER = f"Each entry: {RADIUS_CONVENTION}; radii as a fraction of N."


def basin_settings(bas: pd.DataFrame) -> dict:
    """The sweep's settings the prose names (one value each in a checked table; the full preset's where a column
    is absent)."""

    def one(col, default):
        return bas[col].iloc[0] if col in bas else default

    return dict(
        delta=float(one("delta", 0.1)),
        n_targets=int(one("n_targets", 32)),
        n_trials=int(one("n_trials", 32)),
        max_steps=int(one("max_steps", 50)),
        exp_beta=float(one("exp_beta", 1.0)),
        modern_beta=float(one("modern_beta", 0.5)),
        reps=int(bas["replicate"].nunique()),
    )


def basin_sections(bas: pd.DataFrame, missing: list, preset: str = "full") -> str:
    """Section 8 from the per-target table ``bas``; ``missing``: the cells of ``preset`` not in it."""
    out = ["\n## 8. Basin radius against load, all backends\n"]
    sm = basin_summary(bas)
    N = int(sm["N"].iloc[0])
    st = basin_settings(bas)
    delta = st["delta"]
    out.append(
        f"Measured: N = {N}, the same random patterns for every backend at each (K, replicate); per stored target "
        f"(the first {st['n_targets']} of each network, {st['reps']} replicates) the basin radius is the largest "
        f"number of flipped bits from which synchronous retrieval (at most {st['max_steps']} steps) returns exactly "
        f"that pattern in at least {1 - delta:.0%} of {st['n_trials']} trials (first-passage radius), searched up to "
        f"N/2 = {N // 2}. A target that is not retrieved from "
        "itself is not a fixed point and has no radius: it counts in the share of fixed points and stays out of the "
        "median (`amtheory.core.basins.fixed_point_radius`, the same summary as the figures and the main job's "
        "SUMMARY.md). The median's interval is distribution-free (order statistics over the pooled targets); it has "
        "zero width where the targets around the median share one integer radius, and it leaves out the Monte Carlo "
        "error of each target's radius. Backends: Hebbian, Storkey, pseudo-inverse (zero diagonal); dense `z^3`, "
        f"`max(z,0)^3`, `exp(z)` (beta = {st['exp_beta']:g}); modern continuous Hopfield (beta = "
        f"{st['modern_beta']:g}).\n\n"
    )
    order = [b for b in registry.backend_names() if b in set(sm["backend"])]
    order += sorted(set(sm["backend"]) - set(order))
    heads = ["load K/N", "K"] + [registry.label(b) for b in order]
    rows, rows_cens = [], []
    for K in sorted(sm["K"].unique()):
        row, rcens = [f"{K / N:.3g}", K], [f"{K / N:.3g}", K]
        for b in order:
            r = sm[(sm["backend"] == b) & (sm["K"] == K)]
            if r.empty:
                row.append("missing")
                rcens.append("missing")
                continue
            r = r.iloc[0]
            row.append(radius_entry(r) + (f" ({int(r['reps'])} reps)" if r["reps"] < st["reps"] else ""))
            rcens.append(f"{int(r['n_censored'])}/{int(r['n_fixed'])}")
        rows.append(row)
        rows_cens.append(rcens)
    out.append(TABLE_HEADER + "\n\n")
    out.append(md_table(heads, rows))
    if sm["n_censored"].sum():
        out.append(f"\n\nFixed-point targets whose radius is at the search limit N/2 = {N // 2} (censored):\n\n")
        out.append(md_table(heads, rows_cens))
    else:
        out.append(f"\n\nNo target's radius reached the search limit N/2 = {N // 2}: no radius is censored.")
    parts = []
    for b in order:
        d = sm[sm["backend"] == b].sort_values("K")
        gone = d[d["n_fixed"] == 0]
        parts.append(
            f"{registry.label(b)}: {fmt(d['median'].iloc[0])} at K = {int(d['K'].iloc[0])}, "
            + (
                f"no fixed point from load {gone['load'].iloc[0]:.3g}"
                if len(gone)
                else f"{fmt(d['median'].iloc[-1])} at K = {int(d['K'].iloc[-1])}"
            )
        )
    keep = sm[~sm["backend"].isin(CLASSICAL)]
    kmax = keep["K"].max() if len(keep) else None
    low_keep = keep[keep["K"] == kmax]["median"].min() if len(keep) else float("nan")
    out.append(
        "\n\nSummary (median radius / N over fixed points at the smallest load, and the first load without a fixed "
        "point or the value at the largest load): "
        + "; ".join(parts)
        + ". "
        + classical_words(sm)
        + (
            f"; the dense and modern memories keep median radii of at least {fmt(low_keep)} N up to the largest "
            f"load, K/N = {kmax / N:.3g}"
            if kmax
            else ""
        )
        + ". A pseudo-inverse fixed point may have radius 0: at K >= N its zero-diagonal W vanishes and every state "
        "is left unchanged."
    )
    if missing:
        out.append(
            f"\n\n{len(missing)} cells of the {preset} preset are not in the tables (the run stopped before them): "
            + ", ".join(f"{c.backend} K={c.K} rep {c.replicate}" for c in missing[:MISSING_LISTED])
            + (f" and {len(missing) - MISSING_LISTED} more" if len(missing) > MISSING_LISTED else "")
            + ". Their entries are marked 'missing' or computed from the replicates present."
        )
    ex = sm[(sm["backend"] == "exp") & (sm["n_fixed"] > 0)].sort_values("K")
    if len(ex):
        out.append(exp_section(ex, N, st))
    return "\n".join(out)


#: The classical rules, whose basins vanish within the sweep's loads.
CLASSICAL = ("hebbian", "storkey", "pseudoinverse")


def classical_words(sm: pd.DataFrame) -> str:
    """The first load at which each classical rule's basin is gone (no fixed point, or a median radius of 0)."""
    parts = []
    for b in CLASSICAL:
        d = sm[sm["backend"] == b].sort_values("K")
        if d.empty:
            continue
        gone = d[(d["n_fixed"] == 0) | (d["median"] == 0)]
        parts.append(
            f"{registry.label(b)} from load {gone['load'].iloc[0]:.3g}" if len(gone) else f"{registry.label(b)} never"
        )
    if not parts:
        return ""
    return "The classical rules' basins are gone (no fixed point, or a median radius of 0): " + ", ".join(parts)


def exp_section(ex: pd.DataFrame, N: int, st: dict) -> str:
    """The exponential memory's measured median radius beside the typical-pattern curve and the all-patterns
    bound."""
    out = [
        "\n\n### Exponential memory: the typical-pattern curve `ln K / N = I(1 - 2 rho)` and the bound "
        "`I(1 - 2 rho) / 2`\n\n",
        "Theory, as N -> infinity, with `I(1 - 2 rho) = ln 2 - H(rho)`: a typical pattern corrects a share `rho` of "
        "flipped bits while `ln K / N < I(1 - 2 rho)` (Lucibello and Mézard 2024; "
        "`amtheory.core.theory.exp_typical_basin_radius`), and all patterns at once do while "
        "`ln K / N < I(1 - 2 rho) / 2` (Demircigil et al. 2017; `exp_basin_radius`), a lower bound for the typical "
        "pattern. The measured median radius over the fixed points is a typical pattern's radius: it compares with "
        "the first curve.\n\n",
        TABLE_HEADER + "\n\n",
    ]
    rows = []
    for r in ex.itertuples():
        rate = math.log(r.K) / N
        typ = theory.exp_typical_basin_radius(rate) if rate <= theory.EXP_TYPICAL_ALPHA_MAX else 0.0
        bound = theory.exp_basin_radius(rate) if rate < theory.EXP_ALPHA_MAX else 0.0
        rows.append([f"{r.load:.3g}", r.K, fmt(rate, 4), fmt(typ), fmt(bound), radius_entry(r), fmt(r.median - typ)])
    heads = ["load K/N", "K", "ln K / N", "typical pattern rho", "bound for all patterns rho*"]
    heads += ["measured: median radius / N over fixed points · share fixed", "median - typical"]
    out.append(md_table(heads, rows))
    out.append("\n\n" + exp_basin_sentence(ex, N, st) + "\n")
    return "".join(out)


def exp_basin_sentence(ex: pd.DataFrame, N: int, st: dict) -> str:
    """Measured exponential-memory radii against the typical-pattern curve (``st``: ``basin_settings``)."""
    rates = np.log(ex["K"].to_numpy()) / N
    typ = np.array([theory.exp_typical_basin_radius(float(r)) for r in rates])
    bound = np.array([theory.exp_basin_radius(float(r)) for r in rates])
    diff = ex["median"].to_numpy() - typ
    above = int(np.sum(ex["median_low"].to_numpy() > typ))
    below = int(np.sum(ex["median_high"].to_numpy() < typ))
    under_bound = int(np.sum(ex["median_high"].to_numpy() < bound))
    s = (
        f"At N = {N} every load of the sweep has `ln K / N` <= {rates.max():.3f}, below ln 2 / 2. The measured "
        f"median minus the typical-pattern curve runs from {diff.min():+.3f} to {diff.max():+.3f} (in units of N); "
        f"the interval lies above the curve at {above}/{len(ex)} loads and below it at {below}/{len(ex)}, and "
        f"below the all-patterns bound at {under_bound}/{len(ex)}. "
    )
    s += (
        "The definitions differ: the theorems' radius is the share of flipped bits that one update of every bit "
        f"corrects with probability -> 1 as N -> infinity, while the measured radius allows up to {st['max_steps']} "
        f"synchronous steps and a {st['delta']:.0%} failure rate over {st['n_trials']} random corruptions; the data "
        "do not separate this from finite-N effects."
    )
    return s
