"""The Hopfield results page: intervals, crossing loads, fitted slopes and the per-sweep tables behind the prose."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom

from amtheory.core import theory
from amtheory.core.basins import fixed_point_radius_table, wilson_interval
from amtheory.reports.hopfield.reading import N_BOOT, RETRIEVAL_CUT

# ----------------------------------------------------------------------------------------------------------------------
# Statistics


def fmt(x: float, digits: int = 3) -> str:
    """A number for the page ('n/a' for NaN)."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def fmt_ci(x: float, lo: float, hi: float, digits: int = 3) -> str:
    """``x [lo, hi]``."""
    return f"{fmt(x, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def boot_mean(values: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT) -> tuple[float, float, float]:
    """Mean with a 95% percentile-bootstrap interval over the entries (here: stored patterns)."""
    v = np.asarray(values, dtype=float)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    boots = v[idx].mean(axis=1)
    return float(v.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def first_crossing(x: np.ndarray, y: np.ndarray, level: float = 0.5) -> float:
    """Load at which ``y`` first falls below ``level``, by linear interpolation between grid points (NaN: never).

    ``x`` is sorted ascending; ``y`` may be 2-D (bootstrap draws in rows), then one crossing per row.
    """
    y2 = np.atleast_2d(y)
    out = np.full(y2.shape[0], np.nan)
    for b, row in enumerate(y2):
        below = np.nonzero(row < level)[0]
        if below.size == 0 or below[0] == 0:
            continue
        j = below[0]
        y0, y1 = row[j - 1], row[j]
        out[b] = x[j - 1] + (y0 - level) / (y0 - y1) * (x[j] - x[j - 1])
    return out if np.ndim(y) == 2 else float(out[0])


def flip_prob_binomial(N: int, K: int) -> float:
    """One-step flip probability of a bit of a stored pattern in the zero-diagonal Hebbian network at finite N.

    The local field times the bit is ``(N - 1) + C`` with ``C`` a sum of ``M = (K - 1)(N - 1)`` crosstalk terms
    ``+-1``; treating them as independent and fair, ``C = 2B - M`` with ``B ~ Binomial(M, 1/2)``, and the bit flips
    when ``C < -(N - 1)`` (a zero field keeps the bit). For large N it tends to ``Phi(-1/sqrt(alpha))``
    (Hertz, Krogh and Palmer 1991, Sec. 2.2), which drops the ``-1``s and the discreteness.
    """
    M = (K - 1) * (N - 1)
    if M == 0:
        return 0.0
    # B < (M - N + 1) / 2  <=>  B <= ceil((M - N + 1) / 2) - 1
    return float(binom.cdf(math.ceil((M - N + 1) / 2) - 1, M, 0.5))


def k_at_share(N: int, target: float, *, all_patterns: bool, networks: int = 1) -> int:
    """Largest K at which the independent-bit estimate of the fixed-point share, ``(1 - p)^N`` (or of all K patterns
    of ``networks`` networks being fixed, ``(1 - p)^(N K networks)``), is still ``>= target``;
    ``p = flip_prob_binomial(N, K)``."""
    k = 1
    while k < N:
        p = flip_prob_binomial(N, k + 1)
        share = (1.0 - p) ** (N * (k + 1) * networks if all_patterns else N)
        if share < target:
            return k
        k += 1
    return k


# ----------------------------------------------------------------------------------------------------------------------
# Classical capacity


def cell_table(cells: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Per (N, alpha) of one rule, from the capacity's cell table (one row per network, ``data.COLUMNS``): the
    patterns of all replicates pooled, in the order (replicate, pattern), so the bootstraps below do not depend on
    the order of the rows; the per-network 'all fixed' flags."""
    d = cells[cells["rule"] == rule].sort_values(["N", "alpha", "replicate"], kind="stable")
    rows = []
    for (N, alpha), g in d.groupby(["N", "alpha"]):
        n = int(g["K"].sum())
        rows.append(
            dict(
                N=int(N),
                alpha=float(alpha),
                K=int(g["K"].iloc[0]),
                load=float(g["load"].iloc[0]),
                n=n,
                reps=len(g),
                fixed=int(g["fixed_points"].sum()),
                all_fixed_nets=int((g["fixed_points"] == g["K"]).sum()),
                retrieved=int(g["retrieved"].sum()),
                converged=float(g["converged"].sum()) / n,
                converged_count=int(g["converged"].sum()),
                final_error=np.concatenate(list(g["final_error"])),
                one_step_error=np.concatenate(list(g["one_step_error"])),
            )
        )
    return pd.DataFrame(rows).sort_values(["N", "load"]).reset_index(drop=True)


def near_alpha_c(alphas: Sequence[float]) -> tuple[float, ...]:
    """The grid loads just below alpha_c = 0.138 and at (or first above) it, those the grid has."""
    grid = sorted({float(a) for a in alphas})
    below = [a for a in grid if a < theory.ALPHA_C]
    above = [a for a in grid if a >= theory.ALPHA_C]
    return tuple(below[-1:] + above[:1])


def grid_step(alphas: Sequence[float], up_to: float = 0.3) -> float:
    """The smallest spacing of the grid loads up to ``up_to`` (NaN for fewer than two)."""
    grid = np.array(sorted({float(a) for a in alphas if a <= up_to + 1e-9}))
    return float(np.round(np.diff(grid).min(), 6)) if grid.size > 1 else float("nan")


def hebbian_alpha_c(tab: pd.DataFrame, rng: np.random.Generator) -> dict:
    """Per N: the load where the retrieved share falls to 1/2 (and where the one-step fixed-point share does), with
    binomial-bootstrap intervals; the finite-size extrapolation ``a + b N^(-1/2)``."""
    rows, boots = [], {}
    for N, t in tab.groupby("N"):
        x = t["load"].to_numpy()
        n = t["n"].to_numpy()
        out = {"N": int(N)}
        for key, col in (("ret", "retrieved"), ("fp", "fixed")):
            p = t[col].to_numpy() / n
            # Resampling patterns of a 0/1 indicator with replacement is a Binomial(n, p_hat) draw of the count.
            draws = rng.binomial(n[None, :], p[None, :], size=(N_BOOT, len(n))) / n[None, :]
            c = first_crossing(x, draws)
            out[key] = first_crossing(x, p)
            out[key + "_lo"], out[key + "_hi"] = np.nanquantile(c, [0.025, 0.975])
            if key == "ret":
                boots[int(N)] = c
        # The fixed-point share falls to 1/2 where (1 - p)^N = 1/2 under independent bits.
        out["fp_theory"] = k_at_share(int(N), 0.5, all_patterns=False) / N
        for a in near_alpha_c(tab["alpha"]):
            r = t[np.isclose(t["alpha"], a)]
            if len(r):
                fe = r["final_error"].iloc[0]
                ok = fe[fe <= RETRIEVAL_CUT]
                out[f"fe_{a}"] = boot_mean(fe, rng)
                out[f"fe_ok_{a}"] = boot_mean(ok, rng) if ok.size else (np.nan,) * 3
                out[f"conv_{a}"] = share_ci(int(r["converged_count"].iloc[0]), int(r["n"].iloc[0]))
        rows.append(out)
    per_n = pd.DataFrame(rows)
    fit = {}
    Ns = np.array(sorted(boots))
    if Ns.size >= 3:
        X = np.column_stack([np.ones(Ns.size), Ns**-0.5])
        coef = np.linalg.lstsq(X, per_n.set_index("N").loc[Ns, "ret"].to_numpy(), rcond=None)[0]
        B = np.column_stack([boots[N] for N in Ns])
        ok = np.all(np.isfinite(B), axis=1)
        bc = np.linalg.lstsq(X, B[ok].T, rcond=None)[0]
        fit = dict(a=coef[0], b=coef[1], a_lo=np.quantile(bc[0], 0.025), a_hi=np.quantile(bc[0], 0.975), Ns=Ns)
    return dict(per_n=per_n, fit=fit)


def one_step_rows(tab: pd.DataFrame, alphas: Sequence[float], rng: np.random.Generator) -> list[list[str]]:
    """Rows: load, Phi(-1/sqrt(alpha)), the finite-N binomial value at the smallest and largest N, measured per N."""
    Ns = sorted(tab["N"].unique())
    rows = []
    for a in alphas:
        sel = tab[np.isclose(tab["alpha"], a)]
        if sel.empty:
            continue
        row = [f"{a:g}", f"{100 * theory.one_step_error(a):.3f}"]
        for N in (Ns[0], Ns[-1]):
            K = int(sel[sel["N"] == N]["K"].iloc[0]) if (sel["N"] == N).any() else max(1, round(a * N))
            row.append(f"{100 * flip_prob_binomial(int(N), K):.3f}")
        for N in Ns:
            r = sel[sel["N"] == N]
            if r.empty:
                row.append("")
                continue
            m, lo, hi = boot_mean(r["one_step_error"].iloc[0], rng)
            row.append(fmt_ci(100 * m, 100 * lo, 100 * hi))
        rows.append(row)
    return rows


def exact_recall(tab: pd.DataFrame) -> pd.DataFrame:
    """Per N: the largest grid K (with the next grid K, which fails) at which the fixed-point share is >= 1/2,
    >= 0.9, and at which every stored pattern of every replicate network is a fixed point."""
    rows = []
    for N, t in tab.groupby("N"):
        t = t.sort_values("K")
        share = t["fixed"].to_numpy() / t["n"].to_numpy()
        every = (t["all_fixed_nets"] == t["reps"]).to_numpy()
        out = {"N": int(N), "reps": int(t["reps"].max())}
        for key, ok in (("half", share >= 0.5), ("ninety", share >= 0.9), ("all", every)):
            bad = np.nonzero(~ok)[0]
            j = bad[0] if bad.size else len(t)
            out[key] = int(t["K"].iloc[j - 1]) if j > 0 else 0
            out[key + "_fail"] = int(t["K"].iloc[j]) if j < len(t) else None
            if j > 0:
                lo, hi = wilson_interval(int(t["fixed"].iloc[j - 1]), int(t["n"].iloc[j - 1]))
                out[key + "_share"] = (share[j - 1], lo, hi)
            if j < len(t):
                lo, hi = wilson_interval(int(t["fixed"].iloc[j]), int(t["n"].iloc[j]))
                out[key + "_fail_share"] = (share[j], lo, hi)
        rows.append(out)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------------
# Dense capacity


def poly_slopes(ds: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Per degree n: least-squares slope of ln K_max on ln N over all cells, with a bootstrap over replicates
    (resampled within each N), beside n - 1, the local theory slope and the slope of the theory curve on the same N."""
    rows = []
    # Replicates in order within each N: the bootstrap does not depend on the order of the rows.
    poly = ds[(ds["kind"] == "poly") & (ds["K_max"] > 0)].sort_values(["n", "N", "replicate"], kind="stable")
    for n, d in poly.groupby("n"):
        groups = [g["K_max"].to_numpy(dtype=float) for _, g in d.groupby("N")]
        Ns = np.array(sorted(d["N"].unique()), dtype=float)
        if Ns.size < 2:
            continue
        x = np.concatenate([np.full(g.size, N) for g, N in zip(groups, Ns)])
        y = np.concatenate(groups)
        slope = np.polyfit(np.log(x), np.log(y), 1)[0]
        bs = np.empty(N_BOOT)
        for b in range(N_BOOT):
            yb = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
            bs[b] = np.polyfit(np.log(x), np.log(yb), 1)[0]
        th = [theory.dense_poly_capacity(int(N), int(n)) for N in Ns]
        rows.append(
            dict(
                n=int(n),
                N_range=f"{int(Ns.min())}-{int(Ns.max())}",
                cells=len(d),
                censored=int(d["censored"].sum()),
                slope=slope,
                lo=np.quantile(bs, 0.025),
                hi=np.quantile(bs, 0.975),
                theory_slope=int(n) - 1,
                local=theory.dense_poly_loglog_slope(int(round(math.exp(np.log(Ns).mean()))), int(n)),
                curve_slope=np.polyfit(np.log(Ns), np.log(th), 1)[0],
            )
        )
    return pd.DataFrame(rows)


def poly_table(ds: pd.DataFrame) -> pd.DataFrame:
    """Per (n, N): the replicates' K_max, their median, the theory K and the ratio."""
    rows = []
    for (n, N), d in ds[ds["kind"] == "poly"].groupby(["n", "N"]):
        k = np.sort(d["K_max"].to_numpy())
        th = theory.dense_poly_capacity(int(N), int(n))
        rows.append(
            dict(
                n=int(n),
                N=int(N),
                K=", ".join(str(v) for v in k) + (" (censored)" if d["censored"].any() else ""),
                median=float(np.median(k)),
                theory=th,
                ratio=float(np.median(k)) / th,
            )
        )
    return pd.DataFrame(rows)


def exp_table(ds: pd.DataFrame) -> pd.DataFrame:
    """Per N of the exponential memory: K_max of the replicates, ln K_max / N, and the search cap."""
    from amtheory.studies.hopfield.dense_scaling import ScalingCell, k_cap

    rows = []
    for N, d in ds[ds["kind"] == "exp"].groupby("N"):
        k = np.sort(d["K_max"].to_numpy())
        rate = np.log(np.clip(k, 1, None)) / N
        cap = k_cap(ScalingCell("exp", 0, int(N), 0, k_limit=int(d["k_limit"].iloc[0])))
        rows.append(
            dict(
                N=int(N),
                K=", ".join(str(v) for v in k),
                cap=cap,
                censored=int(d["censored"].sum()),
                rate_med=float(np.median(rate)),
                rate_min=float(rate.min()),
                rate_max=float(rate.max()),
                cap_rate=math.log(cap) / N,
            )
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------------
# Basins


def basin_summary(bas: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, N, K): the share of targets that are fixed points (Wilson interval) and the median radius / N
    over those fixed points (order-statistic interval), every replicate pooled
    (``amtheory.core.basins.fixed_point_radius_table``, as the figures draw them), with the load and the number of
    replicates."""
    t = fixed_point_radius_table(bas, ["backend", "N", "K"], length="N")
    reps = bas.groupby(["backend", "N", "K"])["replicate"].nunique().rename("reps").reset_index()
    t = t.merge(reps, on=["backend", "N", "K"])
    return t.assign(N=t["N"].astype(int), K=t["K"].astype(int), load=t["K"] / t["N"])


def radius_entry(r) -> str:
    """One table cell of the radius convention: ``median [lo, hi] · share% [lo, hi]``; the median marked >= when it
    is at the search limit, 'none fixed' when no pattern is a fixed point (``r``: a row of ``basin_summary``)."""
    r = r._asdict() if hasattr(r, "_asdict") else r
    share = f"{100 * r['fixed_share']:.0f}% [{100 * r['fixed_share_low']:.0f}, {100 * r['fixed_share_high']:.0f}]"
    if not r["n_fixed"]:
        return f"none fixed · {share}"
    mark = ">= " if r["median_censored"] else ""
    return f"{mark}{fmt_ci(r['median'], r['median_low'], r['median_high'])} · {share}"


# ----------------------------------------------------------------------------------------------------------------------
# The page


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def share_ci(successes: int, trials: int) -> tuple[float, float, float]:
    """A share and its 95% Wilson interval."""
    lo, hi = wilson_interval(successes, trials)
    return successes / trials, lo, hi


def pct_ci(t: tuple, digits: int = 0) -> str:
    """``share [lo, hi]`` of ``share_ci`` in percent: ``98% [97, 99]``."""
    return f"{100 * t[0]:.{digits}f}% [{100 * t[1]:.{digits}f}, {100 * t[2]:.{digits}f}]"


def share_str(t: tuple | None) -> str:
    if t is None or (isinstance(t, float) and np.isnan(t)):
        return ""
    return f"{100 * t[0]:.1f}% [{100 * t[1]:.1f}, {100 * t[2]:.1f}]"
