"""The memorization results page: the sections on recovery, the Hopfield family, basins and fixed points."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from amtheory.reports.memorization.numbers import first_from_which, fmt, gap_lines, n_fmt, table, train_test_gap
from amtheory.reports.memorization.reading import HOPFIELD, HOPFIELD_NAMES


def section_recovery(rs, meet, cov) -> str:
    lines = ["## Claim 1: training recovery falls, test recovery rises, and they meet", ""]
    u = rs[rs["backend"] == "uddm"]
    ts = sorted(u["t"].unique())
    for ms in sorted(u["model_size"].unique()):
        g = u[u["model_size"] == ms]
        rows = []
        for n in sorted(g["train_size"].unique()):
            row = [n_fmt(n)]
            for t in ts:
                c = g[(g["train_size"] == n) & (g["t"] == t)].set_index("split")
                row.append(
                    " / ".join(fmt(c.loc[s, "recovered"]) if s in c.index else "–" for s in ("train", "test", "random"))
                )
            rows.append(row)
        lines += [
            f"**{ms}**: share of corrupted tokens restored, train / test / random blocks",
            "",
            table(["blocks"] + [f"t = {t:g}" for t in ts], rows),
            "",
        ]
    # Difference at the largest sizes with its standard error.
    lines += [
        "Where training and test recovery meet (the first training size from which their difference stays within "
        "two standard errors at it and every larger size):",
        "",
    ]
    mrows = []
    for ms in sorted(meet):
        g = u[u["model_size"] == ms]
        nmax = int(g["train_size"].max())
        row = [ms]
        for t in ts:
            m = meet[ms].get(float(t), float("nan"))
            d, se = train_test_gap(g, nmax, t)
            where = f"{m:,.0f} blocks" if math.isfinite(m) else "not within the sweep"
            if len(g["train_size"].unique()) < 2:
                where = "one size only"
            row.append(f"{where} (train - test at {n_fmt(nmax)}: {d:+.3f} +- {se:.3f})")
        mrows.append(row)
    lines += [table(["model"] + [f"t = {t:g}" for t in ts], mrows), ""]
    lines += gap_lines(u, ts)
    small = "gpu-small" if "gpu-small" in meet else sorted(meet)[0]
    finite = {t: m for t, m in meet[small].items() if math.isfinite(m)}
    g = u[u["model_size"] == small]
    if finite:
        lo, hi = min(finite.values()), max(finite.values())
        span = f"at {lo:,.0f} blocks" if len(finite) == 1 else f"between {lo:,.0f} and {hi:,.0f} blocks depending on t"
        each = ", ".join(f"t = {t:g}: {m:,.0f}" for t, m in sorted(finite.items()))
        lines.append(
            f"For {small} the curves cross {span} ({each})"
            + (
                f"; at t = {', '.join(f'{t:g}' for t in sorted(set(meet[small]) - set(finite)))} training recovery "
                f"stays above test recovery up to the largest size (difference and standard error in the table)."
                if set(meet[small]) - set(finite)
                else "."
            )
        )
    # The size where the training curve falls furthest.
    piv = g[g["split"] == "train"].pivot_table(index="train_size", columns="t", values="recovered")
    drops = piv.diff().mean(axis=1)
    if len(drops.dropna()):
        n_hi = int(drops.idxmin())
        n_lo = int(piv.index[list(piv.index).index(n_hi) - 1])
        lines.append(
            f"The steepest fall of training recovery (mean over t) is between {n_fmt(n_lo)} and {n_fmt(n_hi)} "
            f"blocks. Test recovery of {small} rises from "
            f"{fmt(g[(g['split'] == 'test') & (g['train_size'] == g['train_size'].min())]['recovered'].mean())} at "
            f"{n_fmt(g['train_size'].min())} blocks to at most "
            f"{fmt(g[g['split'] == 'test'].groupby('train_size')['recovered'].mean().max())} (mean over t); "
            f"random blocks stay at {fmt(g[g['split'] == 'random']['recovered'].min())}-"
            f"{fmt(g[g['split'] == 'random']['recovered'].max())} at every size, the level of chance agreement."
        )
    lines.append("")
    parts = (
        ("Exact match", "exact", "whole blocks restored"),
        ("Clean tokens broken", "broken", "share of uncorrupted tokens that end wrong"),
    )
    for name, col, what in parts:
        for ms in sorted(u["model_size"].unique()):
            gm = u[u["model_size"] == ms]
            rows = []
            for n in sorted(gm["train_size"].unique()):
                row = [n_fmt(n)]
                for t in ts:
                    c = gm[(gm["train_size"] == n) & (gm["t"] == t)].set_index("split")
                    row.append(
                        " / ".join(fmt(c.loc[s, col]) if s in c.index else "–" for s in ("train", "test", "random"))
                    )
                rows.append(row)
            lines += [f"**{name}, {ms}** ({what}), train / test / random", "",
                      table(["blocks"] + [f"t = {t:g}" for t in ts], rows), ""]  # fmt: skip
    gs = u[u["model_size"] == small]
    ex_test = gs[(gs["split"] == "test") & (gs["exact"] > 0)].set_index(["train_size", "t"])["exact"]
    b_small = gs[(gs["split"] == "test") & (gs["train_size"] == gs["train_size"].min())]["broken"].mean()
    b_large = gs[(gs["split"] == "test") & (gs["train_size"] == gs["train_size"].max())]["broken"].mean()
    lines.append(
        f"A memorizing model does not leave an unseen block alone: at {n_fmt(gs['train_size'].min())} blocks "
        f"{small} breaks {100 * b_small:.0f}% of the clean tokens of test blocks (mean over t) — the reverse chain "
        f"carries them to a training block — against {100 * b_large:.0f}% at {n_fmt(gs['train_size'].max())}. "
        + (
            "Whole test blocks come back only at "
            + ", ".join(f"{n_fmt(n)} blocks, t = {t:g} ({v:.3f})" for (n, t), v in ex_test.items())
            + "."
            if len(ex_test)
            else "No test block comes back whole at any size."
        )
    )
    return "\n".join(lines)


def section_hopfield(rs, tabs) -> str:
    lines = ["## The Hopfield family on the same blocks and corruptions", ""]
    ts = sorted(rs["t"].unique())
    rows = []
    for b in HOPFIELD:
        g = rs[rs["backend"] == b]
        for n in sorted(g["train_size"].unique()):
            row = [HOPFIELD_NAMES[b], n_fmt(n)]
            for t in ts:
                c = g[(g["train_size"] == n) & (g["t"] == t)].set_index("split")
                row.append(
                    " / ".join(fmt(c.loc[s, "recovered"]) for s in ("train", "test"))
                    + f" ({fmt(c.loc['train', 'exact'], 2)} / {fmt(c.loc['test', 'exact'], 2)})"
                )
            rows.append(row)
    lines += [
        "Recovered share train / test (exact match train / test in brackets):",
        "",
        table(["memory", "blocks stored"] + [f"t = {t:g}" for t in ts], rows),
        "",
    ]
    rec = tabs["recovery"]
    na = rec[~rec["applicable"].astype(bool)][["backend", "train_size", "reason"]].drop_duplicates()
    for b in HOPFIELD:
        nb = na[na["backend"] == b]
        if len(nb):
            reasons = "; ".join(
                f"{', '.join(n_fmt(n) for n in sorted(x['train_size']))} blocks: {r}" for r, x in nb.groupby("reason")
            )
            lines.append(f"- {HOPFIELD_NAMES[b]} not applicable — {reasons}.")
    test_max = rs[rs["backend"].isin(HOPFIELD) & (rs["split"] == "test")]["recovered"].max()
    lines += [
        "",
        f"Every memory of the family restores all corrupted tokens of the blocks it stores at every t and size, "
        f"and no test block (test recovery at most {fmt(test_max)}, exact match 0): they can only return what they "
        f"hold. Only the UDDM's test recovery rises with the data.",
    ]
    return "\n".join(lines)


def section_basins(tabs) -> str:
    b = tabs["basins"]
    ok = b[b["applicable"].astype(bool)].copy()
    ok["name"] = np.where(ok["backend"] == "uddm", "UDDM " + ok["model_size"], ok["backend"].map(HOPFIELD_NAMES))
    rows = []
    order = sorted(ok["name"].unique(), key=lambda s: (not s.startswith("UDDM"), s))
    for name in order:
        g = ok[ok["name"] == name]
        for n in sorted(g["train_size"].unique()):
            cells = [name, n_fmt(n)]
            for split in ("train", "test"):
                x = g[(g["train_size"] == n) & (g["split"] == split)]
                cells += [
                    fmt(x["radius"].median(), 1),
                    fmt(x["radius"].mean(), 2),
                    f"{(x['radius'] >= 0).mean():.2f}",
                    f"{x['censored'].astype(bool).mean():.2f}",
                ]
            rows.append(cells)
    L = int(ok["length"].iloc[0])
    lines = [
        "## Basin radius against training-set size",
        "",
        f"Radius in changed tokens out of L = {L} (median and mean over blocks; share of blocks that are fixed "
        f"points, radius >= 0; share censored at the search limit L/2 = {L // 2}):",
        "",
        table(
            [
                "memory",
                "blocks",
                "train median",
                "train mean",
                "train fixed",
                "train censored",
                "test median",
                "test mean",
                "test fixed",
                "test censored",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]
    na = b[~b["applicable"].astype(bool)][["backend", "train_size", "reason"]].drop_duplicates()
    for be in HOPFIELD:
        nb = na[na["backend"] == be]
        if len(nb):
            r = nb["reason"].iloc[0]
            lines.append(
                f"- {HOPFIELD_NAMES[be]}: not applicable at {', '.join(n_fmt(n) for n in sorted(nb['train_size']))} "
                f"blocks ({r})."
            )
    lines.append(
        "  The classical Hopfield network on one-hot text needs a coupling between every pair of (position, token) "
        "features; at this length and vocabulary that is more couplings than any GPU holds, so it is recorded as not "
        "applicable rather than run."
    )
    us = ok[(ok["backend"] == "uddm") & (ok["model_size"] == "gpu-small")]
    if len(us):
        tr = us[us["split"] == "train"].groupby("train_size")["radius"].median()
        lines.append("")
        lines.append(
            f"The median radius of the UDDM's (gpu-small) training blocks is "
            f"{', '.join(f'{fmt(v, 1)} at {n_fmt(n)}' for n, v in tr.items())} blocks (the search stops at "
            f"{L // 2}): {_basin_trend(tr)}. " + _test_basin_text(ok, L)
        )
    return "\n".join(lines)


def _range(v: pd.Series) -> str:
    lo, hi = int(v.min()), int(v.max())
    return f"{lo}" if lo == hi else f"{lo} to {hi}"


def _test_basin_text(ok: pd.DataFrame, L: int) -> str:
    """Sentences on test-block radii of the UDDMs and on the Hopfield family's radii, from the basins table."""
    ud = ok[(ok["backend"] == "uddm") & (ok["split"] == "test")]
    med = ud.groupby(["model_size", "train_size"])["radius"].median()
    fixed = ud.groupby(["model_size", "train_size"])["radius"].apply(lambda r: (r >= 0).mean())
    smallest = ud["train_size"].min()
    text = (
        f"Test blocks at {n_fmt(smallest)} blocks: a fixed point for {100 * fixed.xs(smallest, level=1).max():.0f}% "
        f"of them at most (radius -1 otherwise); at the largest size up to "
        f"{100 * fixed.xs(ud['train_size'].max(), level=1).max():.0f}% are fixed points. The largest test-block "
        f"radius of any UDDM is {int(ud['radius'].max())} token(s) (median at most {fmt(med.max(), 1)})."
    )
    hop = ok[ok["backend"] != "uddm"]
    if len(hop):
        tr, te = hop[hop["split"] == "train"]["radius"], hop[hop["split"] == "test"]["radius"]
        text += (
            f" The memories of the Hopfield family: stored blocks have radius {_range(tr)} (the search stops at "
            f"{L // 2}), test blocks {_range(te)}."
        )
    return text


def _basin_trend(tr: pd.Series) -> str:
    """One clause on the training-block median radius against size."""
    first_zero = first_from_which(tr <= 0)
    if first_zero is None:
        return "the training-block basin stays open at the largest size"
    return (
        f"from {n_fmt(first_zero)} blocks on a training block is a fixed point that no longer corrects a single "
        f"changed token with probability 0.9"
    )


def section_fixed_points(tabs) -> str:
    fp = tabs["fixed_points"]
    rows = []
    for (ms, n), g in fp.groupby(["model_size", "train_size"]):
        sh = g.groupby("split")["fixed"].agg(["mean", "size"])
        rows.append(
            [ms, n_fmt(n)]
            + [f"{sh.loc[s, 'mean']:.3f} ({int(sh.loc[s, 'size'])})" for s in ("train", "test", "random")]
        )
    train_min = float(fp[fp["split"] == "train"].groupby(["model_size", "train_size"])["fixed"].mean().min())
    return "\n".join(
        [
            "## Fixed points (argmax dynamics from t = 1 started at the clean block)",
            "",
            "Share returned unchanged (blocks in brackets):",
            "",
            table(["model", "blocks", "train", "test", "random"], rows),
            "",
            f"Training blocks are fixed points at every size (share at least {train_min:.2f}). Test and random blocks "
            "become fixed points only in the generalizing regime; that random blocks do too at the largest sizes "
            "shows that this test alone does not separate memorized from merely unremarkable blocks there: the "
            "posterior final step keeps a token unless the model is confident it is wrong.",
        ]
    )
