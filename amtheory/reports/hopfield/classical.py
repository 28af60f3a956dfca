"""The Hopfield results page: the classical-capacity sections (Hebbian, Storkey and pseudo-inverse rules)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amtheory.core import theory
from amtheory.reports.hopfield.reading import RETRIEVAL_CUT
from amtheory.reports.hopfield.statistics import (
    boot_mean,
    cell_table,
    exact_recall,
    flip_prob_binomial,
    fmt,
    fmt_ci,
    hebbian_alpha_c,
    k_at_share,
    md_table,
    one_step_rows,
    share_str,
)


def classical_sections(cap: pd.DataFrame, rng: np.random.Generator) -> str:
    """Sections 1-5: Hebbian alpha_c, one-step error, McEliece, Storkey, pseudo-inverse."""
    out = []
    heb = cell_table(cap, "hebbian")
    Ns = sorted(heb["N"].unique())
    res = hebbian_alpha_c(heb, rng)
    pn = res["per_n"]
    out.append("## 1. Hebbian capacity alpha_c (Amit, Gutfreund, Sompolinsky 1985)\n")
    out.append(
        f"Theory: alpha_c = {theory.ALPHA_C}, with about 1.6% wrong bits in the retrieval state just below it; "
        "finite N shifts the measured threshold upward.\n\n"
        f"Measured: K = round(alpha N) random patterns stored with the Hebbian rule (zero diagonal), synchronous "
        f"retrieval started at each stored pattern for at most 50 steps; a pattern counts as *retrieved* when at most "
        f"{RETRIEVAL_CUT:.0%} of its bits are wrong when the run stops (the wrong-bit share is bimodal: near 0 or near "
        "0.3). The crossing is the load where the retrieved share first falls below 1/2, interpolated linearly "
        "between grid loads (grid step 0.02); the interval is a bootstrap over stored patterns (2,000 draws). "
        "For comparison, the load where the share of patterns that are one-step fixed points falls to 1/2, beside "
        "its independent-bit estimate `(1 - p)^N = 1/2` with `p` the finite-N binomial flip probability.\n"
    )
    rows = []
    for _, r in pn.iterrows():
        rows.append(
            [
                int(r["N"]),
                fmt_ci(r["ret"], r["ret_lo"], r["ret_hi"]),
                fmt(r["ret"] - theory.ALPHA_C),
                fmt_ci(r["fp"], r["fp_lo"], r["fp_hi"]),
                fmt(r["fp_theory"]),
            ]
        )
    out.append(
        md_table(
            [
                "N",
                "retrieved share = 1/2 at load",
                "minus 0.138",
                "fixed-point share = 1/2 at load",
                "independent-bit estimate",
            ],
            rows,
        )
    )
    fit = res["fit"]
    if fit:
        out.append(
            f"\n\nFinite-size trend: the crossing falls monotonically towards 0.138 as N grows "
            f"({', '.join(fmt(v) for v in pn['ret'])} for N = {', '.join(str(n) for n in pn['N'])}). "
            f"A least-squares fit of the assumed form `a + b N^(-1/2)` over N = {int(fit['Ns'][0])}..."
            f"{int(fit['Ns'][-1])} gives a = {fmt_ci(fit['a'], fit['a_lo'], fit['a_hi'])} (bootstrap over the per-N "
            f"crossings), b = {fmt(fit['b'], 2)}; the form is an assumption, not a result of the theory, and the "
            f"interval does not include the uncertainty of that choice."
        )
        inside = fit["a_lo"] <= theory.ALPHA_C <= fit["a_hi"]
        out[-1] += (
            " The extrapolated value "
            + ("contains" if inside else "does not contain")
            + " 0.138."
            + (
                ""
                if inside
                else " The excess of the finite-N crossings is a finite-size effect; the remaining gap of the"
                " extrapolation depends on the assumed form and on the retrieval cut and the 50-step limit (below)."
            )
        )
    rows = []
    for _, r in pn.iterrows():
        row = [int(r["N"])]
        for a in (0.12, 0.14):
            row += [
                fmt_ci(*(100 * np.array(r[f"fe_{a}"])), digits=2),
                fmt_ci(*(100 * np.array(r[f"fe_ok_{a}"])), digits=2),
                f"{100 * r[f'conv_{a}']:.0f}%",
            ]
        rows.append(row)
    out.append(
        "\n\nWrong bits just below and at alpha_c (percent; mean over all stored patterns, and over the retrieved "
        "ones only), and the share of runs that reached a fixed point or a 2-cycle within the 50 steps:\n\n"
    )
    out.append(
        md_table(
            [
                "N",
                "alpha=0.12: all",
                "retrieved",
                "converged",
                "alpha=0.14: all",
                "retrieved",
                "converged",
            ],
            rows,
        )
    )
    out.append(
        "\n\nThe retrieved patterns carry fewer wrong bits than the theory's 1.6% at alpha_c (the replica value is "
        "that of the retrieval state at alpha_c itself, in the limit N -> infinity). Runs that had not stopped after "
        "50 synchronous steps are scored at step 50: near and above alpha_c the retrieval state drifts slowly, so "
        "the step limit makes the measured threshold somewhat higher than with unlimited steps.\n"
    )

    out.append("\n## 2. One-step bit error Phi(-1/sqrt(alpha))\n")
    out.append(
        "Theory: a bit of a stored pattern flips in one Hebbian update with probability `Phi(-1/sqrt(alpha))` "
        "(0.36% at alpha = 0.138; 0.376% at the grid load 0.14). The finite-N column treats the "
        "`(K-1)(N-1)` crosstalk terms as independent fair +-1 and keeps the zero diagonal and the tie rule "
        "(a zero field keeps the bit), see `flip_prob_binomial` in the script. Measured: the share of bits that one "
        "synchronous step flips, mean over all stored patterns of all replicates, in percent, with a bootstrap "
        "interval over patterns.\n\n"
    )
    alphas = [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2, 0.3, 0.5]
    out.append(
        md_table(
            ["alpha", "Phi(-1/sqrt a) %", f"binomial N={Ns[0]} %", f"binomial N={Ns[-1]} %"]
            + [f"measured N={N} %" for N in Ns],
            one_step_rows(heb, alphas, rng),
        )
    )
    out.append("\n\n" + one_step_sentence(heb, rng) + "\n")

    out.append("\n## 3. Exact recall: McEliece, Posner, Rodemich, Venkatesh (1987)\n")
    out.append(
        "Theory: `K = N / (2 ln N)` if most stored patterns must be fixed points, `N / (4 ln N)` if all must be "
        "(asymptotic in N). Measured: a stored pattern is a fixed point when one synchronous step leaves it "
        "unchanged. Per N, the largest grid K (loads 0.02, 0.04, ...) at which (a) at least half, (a') at least "
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
                f"{r['half_fail']} ({share_str(r.get('half_fail_share'))})",
                int(r["ninety"]),
                fmt(theory.mceliece_capacity(N, all_fixed=True), 1),
                k_at_share(N, 0.5, all_patterns=True, networks=int(r["reps"])),
                int(r["all"]),
                r["all_fail"],
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
    out.append("\n\n" + mceliece_sentence(er) + "\n")

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
                    r["half_fail"],
                    int(r["ninety"]),
                    int(r["all"]),
                    r["all_fail"],
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
        out.append("\n\n" + storkey_sentence(es, er) + "\n")

    pin = cell_table(cap, "pseudoinverse")
    if len(pin):
        out.append("\n## 5. Pseudo-inverse (projection) rule up to alpha -> 1\n")
        out.append(
            "Theory: every linearly independent set of patterns is stored exactly up to alpha = 1; basins shrink to "
            "nothing as alpha -> 1 (Kanter and Sompolinsky 1987). Measured: the share of stored patterns that are "
            "one-step fixed points (Wilson interval) and the mean wrong-bit share after retrieval from the "
            "pattern, per N and load; the backend removes the diagonal of W (the default).\n\n"
        )
        high = sorted(a for a in pin["alpha"].unique() if a >= 0.3)
        rows = []
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
                row.append(f"{100 * r['fixed'] / r['n']:.1f}% / {100 * r['final_error'].mean():.2f}%")
            rows.append(row)
        out.append(md_table(["N", "fixed, loads < 0.3"] + [f"{a:g}" for a in high], rows))
        out.append(
            "\n\n(each cell: fixed-point share / mean wrong bits after retrieval)\n\n"
            + pinv_sentence(pin)
            + " The basin radius (section 8) shows the other half of the theory: the radius falls with the load "
            "and is 0 at K = N. With the diagonal removed, at K = N the projection is the identity "
            "with zero diagonal, i.e. W = 0: every field is exactly 0 and the tie rule keeps every state, so every "
            "state is a fixed point and nothing is corrected.\n"
        )
    return "\n".join(out)


def one_step_sentence(heb: pd.DataFrame, rng: np.random.Generator) -> str:
    """Agreement of the measured one-step error with Phi(-1/sqrt(alpha)) and the binomial value, per N."""
    parts = []
    for N, t in heb.groupby("N"):
        t = t[(t["alpha"] >= 0.1) & (t["alpha"] <= 0.5)]
        in_phi = in_bin = 0
        worst = 0.0
        for r in t.itertuples():
            m, lo, hi = boot_mean(r.one_step_error, rng)
            phi = theory.one_step_error(r.load)
            in_phi += lo <= phi <= hi
            in_bin += lo <= flip_prob_binomial(int(N), int(r.K)) <= hi
            worst = max(worst, abs(m / phi - 1.0))
        parts.append(f"N = {int(N)}: {in_phi}/{len(t)} and {in_bin}/{len(t)}, largest deviation {100 * worst:.0f}%")
    r14 = heb[np.isclose(heb["alpha"], 0.14)]
    big = r14[r14["N"] == r14["N"].max()].iloc[0]
    m, lo, hi = boot_mean(big["one_step_error"], rng)
    return (
        f"At the grid load 0.14 and the largest N = {int(big['N'])} the measured one-step error is "
        f"{fmt_ci(100 * m, 100 * lo, 100 * hi)}% against `Phi(-1/sqrt(alpha))` = "
        f"{100 * theory.one_step_error(big['load']):.3f}% at the cell's load K/N = {big['load']:.4f} "
        f"({100 * theory.one_step_error(0.138):.3f}% at 0.138). Over the loads 0.1 to 0.5, the number of loads whose "
        "interval contains `Phi(-1/sqrt(alpha))` and the binomial value, and the largest relative deviation from "
        "`Phi(-1/sqrt(alpha))`: " + "; ".join(parts) + ". The differences at small N come from what the Gaussian "
        "limit drops: the signal is `(N-1)/N` rather than 1 and the crosstalk is a discrete sum of `(K-1)(N-1)` "
        "terms (the binomial column keeps both); at small loads the error is a far tail and a few flipped bits "
        "decide the estimate. At fixed load the measured error barely depends on N, as the theory says."
    )


def mceliece_sentence(er: pd.DataFrame) -> str:
    """Where the asymptotic formulas and the finite-N estimates fall relative to the measured brackets."""
    a_in, b_in, rows, miss = [], [], [], []
    for r in er.itertuples():
        N = int(r.N)
        ea = k_at_share(N, 0.5, all_patterns=False)
        eb = k_at_share(N, 0.5, all_patterns=True, networks=int(r.reps))
        fa = r.half_fail if r.half_fail is not None and np.isfinite(r.half_fail) else np.inf
        fb = r.all_fail if r.all_fail is not None and np.isfinite(r.all_fail) else np.inf
        a_in.append(r.half <= ea < fa)
        b_in.append(r.all <= eb < fb)
        if not a_in[-1]:
            miss.append(f"N = {N} (a): estimate {ea}, bracket [{r.half}, {r.half_fail})")
        if not b_in[-1]:
            miss.append(f"N = {N} (b): estimate {eb}, bracket [{r.all}, {r.all_fail})")
        rows.append(
            f"N = {N}: {r.ninety / theory.mceliece_capacity(N):.2f}, "
            f"{r.all / theory.mceliece_capacity(N, all_fixed=True):.2f}"
        )
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
        + "; the grid step (0.02 N) limits the resolution, and criterion (b) over 4 (or 2) networks is one random "
        "event per N."
    )


def storkey_sentence(es: pd.DataFrame, er: pd.DataFrame) -> str:
    """Measured Storkey counts relative to N / sqrt(2 ln N) and to the Hebbian counts."""
    parts = []
    for r in es.itertuples():
        th = theory.storkey_capacity(int(r.N))
        parts.append(f"N = {int(r.N)}: {r.half / th:.2f} / {r.ninety / th:.2f} / {r.all / th:.2f}")
    heb = er.set_index("N")
    more = all(
        getattr(r, c) > heb.loc[r.N, c] for r in es.itertuples() if r.N in heb.index for c in ("half", "ninety", "all")
    )
    between = all(r.all <= theory.storkey_capacity(int(r.N)) <= r.ninety for r in es.itertuples())
    return (
        "Measured over `N/sqrt(2 ln N)` (>= 1/2 fixed / >= 90% / all fixed): "
        + "; ".join(parts)
        + ". "
        + ("Storkey's rule stores more than the Hebbian rule under every criterion and N here. " if more else "")
        + "The formula is asymptotic and does not fix which share of patterns must be stable"
        + ("; at these N it lies between the 'all fixed' count and the '90%' count. " if between else ". ")
        + "The grid is coarse here (loads 0.3, 0.35, 0.4, 0.5 above "
        "0.3), which sets the 'fails at' values."
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
