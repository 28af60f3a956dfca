"""The Hopfield results page: the exact-recall sections (McEliece's criteria for the Hebbian rule, the Storkey rule,
the pseudo-inverse rule)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amtheory.core import theory
from amtheory.reports.hopfield.reading import N_BOOT
from amtheory.reports.hopfield.statistics import (
    boot_mean,
    cell_table,
    exact_recall,
    flip_prob_binomial,
    fmt,
    fmt_ci,
    grid_step,
    hebbian_alpha_c,
    k_at_share,
    md_table,
    pct_ci,
    share_ci,
    share_str,
)


def k_str(v) -> str:
    """A grid K for the page; '' for none (no grid K fails)."""
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else str(int(v))


def recall_sections(cap: pd.DataFrame, heb: pd.DataFrame, rng: np.random.Generator, runs: dict) -> str:
    """Sections 3-5 from the capacity table ``cap`` and its Hebbian cells ``heb`` (``cell_table``)."""
    out = []
    grid = ", ".join(f"{a:g}" for a in sorted(heb["alpha"].unique())[:2])
    out.append("\n## 3. Exact recall: McEliece, Posner, Rodemich, Venkatesh (1987)\n")
    out.append(
        "Theory: `K = N / (2 ln N)` if most stored patterns must be fixed points, `N / (4 ln N)` if all must be "
        "(asymptotic in N). Measured: a stored pattern is a fixed point when one synchronous step leaves it "
        f"unchanged. Per N, the largest grid K (loads {grid}, ...) at which (a) at least half, (a') at least "
        "90% of the stored patterns of all replicates are fixed points, (b) every stored pattern of every replicate "
        "network is; 'fails at' is the next grid K. The finite-N column solves the independent-bit estimate "
        "`(1 - p)^N = 1/2` (a) and `(1 - p)^(N K R) = 1/2` (b) for all R replicate networks at once; 'est. share at "
        "N/(2 ln N)' is `(1 - p)^N` at that K. Shares are given with Wilson intervals.\n\n"
    )
    er = exact_recall(heb)
    rows = []
    for _, r in er.iterrows():
        N = int(r["N"])
        rows.append(
            [
                N,
                int(r["reps"]),
                fmt(theory.mceliece_capacity(N), 1),
                k_at_share(N, 0.5, all_patterns=False),
                f"{100 * (1 - flip_prob_binomial(N, round(theory.mceliece_capacity(N)))) ** N:.0f}%",
                f"{int(r['half'])} ({share_str(r.get('half_share'))})",
                f"{k_str(r['half_fail'])} ({share_str(r.get('half_fail_share'))})",
                int(r["ninety"]),
                fmt(theory.mceliece_capacity(N, all_fixed=True), 1),
                k_at_share(N, 0.5, all_patterns=True, networks=int(r["reps"])),
                int(r["all"]),
                k_str(r["all_fail"]),
            ]
        )
    out.append(
        md_table(
            [
                "N",
                "reps",
                "N/(2 ln N)",
                "finite-N est. (a)",
                "est. share at N/(2 ln N)",
                "(a) >= 1/2 fixed: largest K (share)",
                "fails at K (share)",
                "(a') >= 90%: largest K",
                "N/(4 ln N)",
                "finite-N est. (b)",
                "(b) all fixed: largest K",
                "fails at K",
            ],
            rows,
        )
    )
    out.append("\n\n" + mceliece_sentence(er, grid_step(heb["alpha"])) + "\n")

    sto = cell_table(cap, "storkey")
    if len(sto):
        out.append("\n## 4. Storkey rule: N / sqrt(2 ln N)\n")
        out.append(
            "Theory: Storkey's rule stores about `N / sqrt(2 ln N)` patterns (Storkey 1997), in the same sense as "
            "McEliece's `N / (2 ln N)` for the Hebbian rule (a stored pattern is a fixed point with probability "
            "near 1). Measured quantity: as in section 3, the largest grid K at which at least half / at least 90% "
            "/ all stored patterns are one-step fixed points, and the retrieval crossing of section 1.\n\n"
        )
        es = exact_recall(sto)
        ac = hebbian_alpha_c(sto, rng)["per_n"].set_index("N")
        her = er.set_index("N")
        rows = []
        for _, r in es.iterrows():
            N = int(r["N"])
            rows.append(
                [
                    N,
                    fmt(theory.storkey_capacity(N), 1),
                    f"{int(r['half'])} ({share_str(r.get('half_share'))})",
                    k_str(r["half_fail"]),
                    int(r["ninety"]),
                    int(r["all"]),
                    k_str(r["all_fail"]),
                    fmt_ci(ac.loc[N, "ret"] * N, ac.loc[N, "ret_lo"] * N, ac.loc[N, "ret_hi"] * N, 1),
                    int(her.loc[N, "half"]) if N in her.index else "",
                ]
            )
        out.append(
            md_table(
                [
                    "N",
                    "N/sqrt(2 ln N)",
                    ">= 1/2 fixed: largest K (share)",
                    "fails at K",
                    ">= 90%: largest K",
                    "all fixed: largest K",
                    "fails at K",
                    "retrieved share = 1/2 at K",
                    "Hebbian >= 1/2: K",
                ],
                rows,
            )
        )
        out.append("\n\n" + storkey_sentence(es, er, sto["alpha"]) + "\n")

    pin = cell_table(cap, "pseudoinverse")
    if len(pin):
        out.append("\n## 5. Pseudo-inverse (projection) rule up to alpha -> 1\n")
        out.append(
            "Theory: every linearly independent set of patterns is stored exactly up to alpha = 1; basins shrink to "
            "nothing as alpha -> 1 (Kanter and Sompolinsky 1987). Measured: the share of stored patterns that are "
            "one-step fixed points (Wilson interval) and the mean wrong-bit share after retrieval from the "
            f"pattern (bootstrap interval over patterns, {N_BOOT:,} draws), per N and load; the backend removes the "
            "diagonal of W (the default).\n\n"
        )
        high = sorted(a for a in pin["alpha"].unique() if a >= 0.3)
        rows = []
        # Its own stream of the page's generator: the sections after this one draw what they drew without it.
        pin_rng = rng.spawn(1)[0]
        for N, t in pin.groupby("N"):
            low = t[t["alpha"] < 0.3]
            allfix = int(low["fixed"].sum()) == int(low["n"].sum())
            row = [int(N), "all" if allfix else f"{low['fixed'].sum()}/{low['n'].sum()}"]
            for a in high:
                r = t[np.isclose(t["alpha"], a)]
                if r.empty:
                    row.append("")
                    continue
                r = r.iloc[0]
                m, lo, hi = boot_mean(r["final_error"], pin_rng)
                fixed = pct_ci(share_ci(int(r["fixed"]), int(r["n"])), 1)
                row.append(f"{fixed} / {fmt_ci(100 * m, 100 * lo, 100 * hi, 2)}%")
            rows.append(row)
        out.append(md_table(["N", "fixed, loads < 0.3"] + [f"{a:g}" for a in high], rows))
        out.append(
            "\n\n(each cell: fixed-point share / mean wrong bits after retrieval)\n\n"
            + pinv_sentence(pin)
            + " Section 8 measures the other half of the theory, the basin radius against the load. With the "
            "diagonal removed, at K = N the projection is the identity "
            "with zero diagonal, i.e. W = 0: every field is exactly 0 and the tie rule keeps every state, so every "
            "state is a fixed point and nothing is corrected.\n"
        )
    return "\n".join(out)


def mceliece_sentence(er: pd.DataFrame, step: float) -> str:
    """Where the asymptotic formulas and the finite-N estimates fall relative to the measured brackets (``step``:
    the grid step of the loads)."""
    a_in, b_in, rows, miss = [], [], [], []
    for r in er.itertuples():
        N = int(r.N)
        ea = k_at_share(N, 0.5, all_patterns=False)
        eb = k_at_share(N, 0.5, all_patterns=True, networks=int(r.reps))
        fa = np.inf if k_str(r.half_fail) == "" else r.half_fail
        fb = np.inf if k_str(r.all_fail) == "" else r.all_fail
        a_in.append(r.half <= ea < fa)
        b_in.append(r.all <= eb < fb)
        if not a_in[-1]:
            miss.append(f"N = {N} (a): estimate {ea}, bracket [{r.half}, {k_str(r.half_fail) or 'none'})")
        if not b_in[-1]:
            miss.append(f"N = {N} (b): estimate {eb}, bracket [{r.all}, {k_str(r.all_fail) or 'none'})")
        rows.append(
            f"N = {N}: {r.ninety / theory.mceliece_capacity(N):.2f}, "
            f"{r.all / theory.mceliece_capacity(N, all_fixed=True):.2f}"
        )
    reps = sorted({int(v) for v in er["reps"]}, reverse=True)
    networks = f"{reps[0]}" + (f" (or {', '.join(str(v) for v in reps[1:])})" if len(reps) > 1 else "")
    return (
        "Measured against the asymptotic formulas (largest K with >= 90% fixed over `N/(2 ln N)`, largest K with all "
        "fixed over `N/(4 ln N)`): "
        + "; ".join(rows)
        + ". At `K = N/(2 ln N)` the expected number of flipped bits per pattern is about "
        "`N Phi(-sqrt(2 ln N)) ~ 1/sqrt(4 pi ln N)`, which falls only logarithmically, so at these N 'most' means "
        "about 90% of the patterns (the 'est. share' column); the 90% column is the finite-N counterpart of (a). "
        f"The finite-N independent-bit estimate lies inside the measured bracket [largest passing K, failing K) for "
        f"{sum(a_in)}/{len(a_in)} sizes under (a) and {sum(b_in)}/{len(b_in)} under (b)"
        + ("" if all(a_in) and all(b_in) else " (outside: " + "; ".join(miss) + ")")
        + f"; the grid step ({step:g} N) limits the resolution, and criterion (b) over {networks} networks is one "
        "random event per N."
    )


def storkey_sentence(es: pd.DataFrame, er: pd.DataFrame, alphas: pd.Series) -> str:
    """Measured Storkey counts relative to N / sqrt(2 ln N) and to the Hebbian counts (``alphas``: the Storkey
    grid's loads)."""
    parts = []
    for r in es.itertuples():
        th = theory.storkey_capacity(int(r.N))
        parts.append(f"N = {int(r.N)}: {r.half / th:.2f} / {r.ninety / th:.2f} / {r.all / th:.2f}")
    heb = er.set_index("N")
    more = all(
        getattr(r, c) > heb.loc[r.N, c] for r in es.itertuples() if r.N in heb.index for c in ("half", "ninety", "all")
    )
    between = all(r.all <= theory.storkey_capacity(int(r.N)) <= r.ninety for r in es.itertuples())
    coarse = "loads " + ", ".join(f"{a:g}" for a in sorted(alphas.unique()) if a >= 0.3 - 1e-9)
    return (
        "Measured over `N/sqrt(2 ln N)` (>= 1/2 fixed / >= 90% / all fixed): "
        + "; ".join(parts)
        + ". "
        + ("Storkey's rule stores more than the Hebbian rule under every criterion and N here. " if more else "")
        + "The formula is asymptotic and does not fix which share of patterns must be stable"
        + ("; at these N it lies between the 'all fixed' count and the '90%' count. " if between else ". ")
        + f"The grid is coarse from load 0.3 on ({coarse}), which sets the 'fails at' values."
    )


def pinv_sentence(pin: pd.DataFrame) -> str:
    """One sentence on whether every stored pattern was a fixed point at every load of the sweep."""
    tot, fix = int(pin["n"].sum()), int(pin["fixed"].sum())
    amax = float(pin["load"].max())
    if tot == fix:
        return (
            f"All {tot} stored patterns at every N and load up to {amax:.2f} are fixed points, as the theory says "
            "(random +-1 patterns with K < N are linearly independent with probability close to 1)."
        )
    bad = pin[pin["fixed"] < pin["n"]]
    where = ", ".join(f"N={int(r.N)} alpha={r.alpha:g}" for r in bad.itertuples())
    return f"{tot - fix} of {tot} stored patterns are not fixed points ({where})."
