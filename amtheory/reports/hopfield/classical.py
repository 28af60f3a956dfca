"""The Hopfield results page: the classical-capacity sections (Hebbian alpha_c and the one-step error here; exact
recall, Storkey and pseudo-inverse in ``recall``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amtheory.core import theory
from amtheory.reports.hopfield.reading import N_BOOT, RETRIEVAL_CUT
from amtheory.reports.hopfield.statistics import (
    boot_mean,
    cell_table,
    flip_prob_binomial,
    fmt,
    fmt_ci,
    grid_step,
    hebbian_alpha_c,
    md_table,
    near_alpha_c,
    one_step_rows,
    pct_ci,
)

#: The one-step table's loads: every grid load up to this one, and those of ``ONE_STEP_HIGH`` above it.
ONE_STEP_UP_TO = 0.16
ONE_STEP_HIGH = (0.2, 0.3, 0.5)


def run_words(cap: pd.DataFrame) -> dict:
    """The run settings the prose names: the update rule and the step limit (one of each in a checked table)."""
    update = str(cap["update"].iloc[0]) if "update" in cap else "sync"
    steps = int(cap["max_steps"].iloc[0]) if "max_steps" in cap else 50
    return dict(dynamics="synchronous" if update == "sync" else "asynchronous", steps=steps)


def classical_sections(cap: pd.DataFrame, rng: np.random.Generator) -> str:
    """Sections 1-5: Hebbian alpha_c, one-step error, McEliece, Storkey, pseudo-inverse."""
    from amtheory.reports.hopfield.recall import recall_sections

    out = []
    runs = run_words(cap)
    heb = cell_table(cap, "hebbian")
    Ns = sorted(heb["N"].unique())
    near = near_alpha_c(heb["alpha"])
    res = hebbian_alpha_c(heb, rng)
    pn = res["per_n"]
    out.append("## 1. Hebbian capacity alpha_c (Amit, Gutfreund, Sompolinsky 1985)\n")
    out.append(
        f"Theory: alpha_c = {theory.ALPHA_C}, with about 1.6% wrong bits in the retrieval state just below it; "
        "finite N shifts the measured threshold upward.\n\n"
        "Measured: K = round(alpha N) random patterns stored with the Hebbian rule (zero diagonal), "
        f"{runs['dynamics']} retrieval started at each stored pattern for at most {runs['steps']} steps; a pattern "
        f"counts as *retrieved* when at most {RETRIEVAL_CUT:.0%} of its bits are wrong when the run stops (the "
        "wrong-bit share is bimodal: near 0 or near 0.3). The crossing is the load where the retrieved share first "
        "falls below 1/2, interpolated linearly between grid loads (grid step "
        f"{grid_step(heb['alpha']):g} up to load 0.3); the interval is a bootstrap over stored patterns "
        f"({N_BOOT:,} draws). "
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
            f"\n\nFinite-size trend: the crossing {trend_words(pn['ret'].to_numpy())} as N grows "
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
        for a in near:
            if not isinstance(r.get(f"fe_{a}"), tuple):
                row += ["", "", ""]
                continue
            row += [
                fmt_ci(*(100 * np.array(r[f"fe_{a}"])), digits=2),
                fmt_ci(*(100 * np.array(r[f"fe_ok_{a}"])), digits=2),
                pct_ci(r[f"conv_{a}"]),
            ]
        rows.append(row)
    out.append(
        "\n\nWrong bits just below and at alpha_c (percent; mean over all stored patterns, and over the retrieved "
        "ones only, with bootstrap intervals over patterns), and the share of runs that reached a fixed point or a "
        f"2-cycle within the {runs['steps']} steps (Wilson interval):\n\n"
    )
    out.append(
        md_table(
            ["N"] + [h for a in near for h in (f"alpha={a:g}: all", "retrieved", "converged")],
            rows,
        )
    )
    out.append(
        f"\n\n{retrieved_words(pn, near)} (the replica value is "
        "that of the retrieval state at alpha_c itself, in the limit N -> infinity). Runs that had not stopped after "
        f"{runs['steps']} {runs['dynamics']} steps are scored at step {runs['steps']}: near and above alpha_c the "
        "retrieval state drifts slowly, so the step limit makes the measured threshold somewhat higher than with "
        "unlimited steps.\n"
    )

    out.append("\n## 2. One-step bit error Phi(-1/sqrt(alpha))\n")
    at = near[-1] if near and near[-1] >= theory.ALPHA_C else None
    at_words = f"; {100 * theory.one_step_error(at):.3f}% at the grid load {at:g}" if at is not None else ""
    out.append(
        "Theory: a bit of a stored pattern flips in one Hebbian update with probability `Phi(-1/sqrt(alpha))` "
        f"({100 * theory.one_step_error(theory.ALPHA_C):.2f}% at alpha = 0.138{at_words}). The finite-N column treats "
        "the `(K-1)(N-1)` crosstalk terms as independent fair +-1 and keeps the zero diagonal and the tie rule "
        "(a zero field keeps the bit), see `flip_prob_binomial` in the script. Measured: the share of bits that one "
        "synchronous step flips, mean over all stored patterns of all replicates, in percent, with a bootstrap "
        "interval over patterns.\n\n"
    )
    alphas = [
        a
        for a in sorted(heb["alpha"].unique())
        if a <= ONE_STEP_UP_TO + 1e-9 or any(np.isclose(a, h) for h in ONE_STEP_HIGH)
    ]
    out.append(
        md_table(
            ["alpha", "Phi(-1/sqrt a) %", f"binomial N={Ns[0]} %", f"binomial N={Ns[-1]} %"]
            + [f"measured N={N} %" for N in Ns],
            one_step_rows(heb, alphas, rng),
        )
    )
    out.append("\n\n" + one_step_sentence(heb, rng, at) + "\n")

    out.append(recall_sections(cap, heb, rng, runs))
    return "\n".join(out)


def one_step_sentence(heb: pd.DataFrame, rng: np.random.Generator, at: float | None) -> str:
    """Agreement of the measured one-step error with Phi(-1/sqrt(alpha)) and the binomial value, per N, and the
    value at the grid load ``at`` (at or just above alpha_c) at the largest N."""
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
    head = ""
    if at is not None:
        r_at = heb[np.isclose(heb["alpha"], at)]
        big = r_at[r_at["N"] == r_at["N"].max()].iloc[0]
        m, lo, hi = boot_mean(big["one_step_error"], rng)
        head = (
            f"At the grid load {at:g} and the largest N = {int(big['N'])} the measured one-step error is "
            f"{fmt_ci(100 * m, 100 * lo, 100 * hi)}% against `Phi(-1/sqrt(alpha))` = "
            f"{100 * theory.one_step_error(big['load']):.3f}% at the cell's load K/N = {big['load']:.4f} "
            f"({100 * theory.one_step_error(0.138):.3f}% at 0.138). "
        )
    return (
        head + "Over the loads 0.1 to 0.5, the number of loads whose "
        "interval contains `Phi(-1/sqrt(alpha))` and the binomial value, and the largest relative deviation from "
        "`Phi(-1/sqrt(alpha))`: " + "; ".join(parts) + ". The differences at small N come from what the Gaussian "
        "limit drops: the signal is `(N-1)/N` rather than 1 and the crosstalk is a discrete sum of `(K-1)(N-1)` "
        "terms (the binomial column keeps both); at small loads the error is a far tail and a few flipped bits "
        "decide the estimate. " + spread_words(heb)
    )


def trend_words(crossings) -> str:
    """How the retrieval crossings move with N (``crossings`` in the order of N)."""
    c = np.asarray(crossings, dtype=float)
    if c.size > 1 and np.all(np.diff(c) < 0):
        return "falls monotonically towards 0.138" if np.all(c > theory.ALPHA_C) else "falls monotonically"
    return "does not fall monotonically"


def retrieved_words(pn: pd.DataFrame, near: tuple[float, ...]) -> str:
    """Whether the retrieved patterns at the grid load at (or just above) alpha_c carry fewer wrong bits than the
    theory's 1.6%, by the upper ends of their intervals."""
    key = f"fe_ok_{near[-1]}" if near else None
    highs = [100 * v[2] for v in pn[key] if isinstance(v, tuple)] if key in pn else []
    if highs and max(highs) < 1.6:
        return f"At load {near[-1]:g} the retrieved patterns carry fewer wrong bits than the theory's 1.6% at alpha_c"
    return "The retrieved patterns' wrong bits are to be compared with the theory's 1.6% at alpha_c"


def spread_words(heb: pd.DataFrame) -> str:
    """The largest relative difference of the mean one-step error between the smallest and the largest N, over the
    loads 0.1 to 0.5 both hold."""
    t = heb[(heb["alpha"] >= 0.1) & (heb["alpha"] <= 0.5)]
    Ns = sorted(t["N"].unique())
    if len(Ns) < 2:
        return ""
    mean = {(r.N, r.alpha): float(np.mean(r.one_step_error)) for r in t.itertuples()}
    both = [a for a in sorted(t["alpha"].unique()) if (Ns[0], a) in mean and (Ns[-1], a) in mean]
    diffs = [abs(mean[(Ns[0], a)] / mean[(Ns[-1], a)] - 1.0) for a in both if mean[(Ns[-1], a)] > 0]
    if not diffs:
        return ""
    return (
        f"At fixed load the mean one-step error at N = {Ns[0]} and N = {Ns[-1]} differs by at most "
        f"{100 * max(diffs):.0f}% of the latter over these loads."
    )
