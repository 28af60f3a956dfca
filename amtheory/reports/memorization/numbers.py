"""The memorization results page: number formatting and the numbers computed from the tables (recovery, meeting
points, entropy, probe reference ranges, train-test gaps)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from amtheory.studies.memorization import recovery_summary
from amtheory.studies.memorization.rates import meeting_of_rows


# ----------------------------------------------------------------------------------------------------------------------
# Formatting
def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: fixed digits, scientific below 1e-3 (entropies of memorizing models), "–" for none."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    x = float(x)
    if x != 0 and abs(x) < 10 ** (-digits):
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def n_fmt(n: Any) -> str:
    return f"{int(n):,}"


def mean_se(v: pd.Series) -> tuple[float, float]:
    """Mean and standard error over blocks (NaN standard error for one block)."""
    v = v.dropna().astype(float)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


# ----------------------------------------------------------------------------------------------------------------------
# Numbers
def uddm_models(tabs: dict[str, pd.DataFrame]) -> list[str]:
    rec = tabs["recovery"]
    return sorted(rec.loc[rec["backend"] == "uddm", "model_size"].unique())


def coverage(tabs: dict[str, pd.DataFrame]) -> dict[str, dict[str, list[int]]]:
    """Per model size: the training sizes trained (train table) and measured (recovery table)."""
    tr, rec = tabs["train"], tabs["recovery"]
    out: dict[str, dict[str, list[int]]] = {}
    for ms in sorted(set(tr.get("model_size", pd.Series(dtype=str))) | set(uddm_models(tabs))):
        trained = sorted(int(n) for n in tr.loc[tr["model_size"] == ms, "train_size"]) if not tr.empty else []
        measured = sorted(
            int(n) for n in rec.loc[(rec["backend"] == "uddm") & (rec["model_size"] == ms), "train_size"].unique()
        )
        out[ms] = {"trained": trained, "measured": measured}
    return out


def recovery_numbers(tabs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean recovered / broken / exact with standard errors per (backend, model size, size, split, t)."""
    rec = tabs["recovery"]
    rec = rec[rec["applicable"].astype(bool)]
    keys = ["backend", "model_size", "train_size", "split", "t"]
    summ = recovery_summary(rec)
    se = rec.groupby(keys)[["recovered", "broken"]].agg(lambda v: mean_se(v)[1]).add_suffix("_se").reset_index()
    n = rec.groupby(keys).size().rename("n").reset_index()
    return summ.merge(se, on=keys).merge(n, on=keys)


def meeting_points(rec: pd.DataFrame) -> dict[str, dict[float, float]]:
    """Per UDDM model size and t: the first training size from which training and test recovery stay within two
    standard errors (``rates.meeting_of_rows`` on the recovery table's block rows); NaN: not within the sweep."""
    out: dict[str, dict[float, float]] = {}
    u = rec[rec["backend"] == "uddm"]
    for ms, g in u.groupby("model_size"):
        out[ms] = {}
        for t, gt in g.groupby("t"):
            m = meeting_of_rows(gt) if {"train", "test"} <= set(gt["split"]) else None
            out[ms][float(t)] = float("nan") if m is None else m
    return out


def entropy_numbers(gen: pd.DataFrame) -> pd.DataFrame:
    """Mean (and median over blocks) per-token conditional entropy per (model size, size, split)."""
    g = gen.groupby(["model_size", "train_size", "split"])["entropy"]
    return pd.DataFrame({"mean": g.mean(), "median": g.median(), "se": g.agg(lambda v: mean_se(v)[1])}).reset_index()


def probe_reference(tabs: dict[str, pd.DataFrame], model_size: str, source: str) -> dict:
    """The reference rows of ``amtheory probe``: mean per-token entropy on generated and on training blocks of
    ``model_size`` at its smallest ("memorizing") and largest ("generalizing") training sizes."""
    gen = tabs["generation"]
    g = gen[gen["model_size"] == model_size]
    if g.empty:
        raise ValueError(f"model_size: expected one of {sorted(gen['model_size'].unique())}, got {model_size!r}")
    tr = tabs["train"]
    row_t = tr[tr["model_size"] == model_size].iloc[0] if not tr.empty else None
    rows = []
    for regime, n in (("memorizing", int(g["train_size"].min())), ("generalizing", int(g["train_size"].max()))):
        gn = g[g["train_size"] == n]
        rows.append(
            {
                "regime": regime,
                "model_size": model_size,
                "train_size": n,
                "generated": float(gn.loc[gn["split"] == "generated", "entropy"].mean()),
                "train": float(gn.loc[gn["split"] == "train", "entropy"].mean()),
                "test": float(gn.loc[gn["split"] == "test", "entropy"].mean()),
            }
        )
    out = {"source": source, "unit": "nats per token, mean over blocks of the per-block mean", "rows": rows}
    if row_t is not None:
        out.update(
            {
                "vocab_size": int(row_t["vocab_size"]),
                "length": int(row_t["data.length"]),
                "corpus": str(row_t["data.source"]),
                "d_model": int(row_t["arch.d_model"]),
                "n_blocks": int(row_t["arch.n_blocks"]),
                "steps": int(row_t["steps"]),
            }
        )
    ent_t = gen["settings.entropy_t"].iloc[0] if "settings.entropy_t" in gen else None
    if ent_t is not None:
        out["t"] = float(ent_t)
    return out


def steps_text(tabs) -> str:
    """The training step count(s) of the sweep, as text."""
    tr = tabs["train"]
    return " / ".join(f"{int(v):,}" for v in sorted(set(tr["steps"]))) if not tr.empty else "?"


def train_test_gap(g: pd.DataFrame, n: int, t: float) -> tuple[float, float] | None:
    """Training minus test recovery of one model at size ``n`` and time ``t``, with its standard error (None when
    a split is missing)."""
    c = g[(g["train_size"] == n) & (g["t"] == t)].set_index("split")
    if not {"train", "test"} <= set(c.index):
        return None
    d = c.loc["train", "recovered"] - c.loc["test", "recovered"]
    return d, math.hypot(c.loc["train", "recovered_se"], c.loc["test", "recovered_se"])


def first_from_which(values: pd.Series) -> Any:
    """The first index label from which every value (a bool, in index order) is True; None if the last is not."""
    held = values.to_numpy(dtype=bool)
    return next((n for i, n in enumerate(values.index) if held[i:].all()), None)


def gap_lines(u: pd.DataFrame, ts) -> list[str]:
    """Per model and size, the range over t of train - test recovery, and the first size from which every
    difference (at that size and all larger ones) is within two standard errors of zero."""
    rows, notes = [], []
    sizes = sorted(u["train_size"].unique())
    for ms, g in u.groupby("model_size"):
        row, within = [ms], {}
        for n in sizes:
            gaps = [x for x in (train_test_gap(g, n, t) for t in ts) if x is not None]
            diffs = [d for d, _ in gaps]
            row.append(f"{100 * min(diffs):+.0f} to {100 * max(diffs):+.0f}" if diffs else "–")
            within[n] = bool(gaps) and all(abs(d) <= 2 * se for d, se in gaps)
        rows.append(row)
        first = first_from_which(pd.Series(within))
        notes.append(
            f"- {ms}: from {n_fmt(first)} blocks on, training and test recovery agree within two standard errors at "
            f"every t."
            if first is not None
            else f"- {ms}: training and test recovery differ by more than two standard errors at the largest size."
        )
    return [
        "Training minus test recovery (percentage points, the range over the four t):",
        "",
        table(["model"] + [n_fmt(n) for n in sizes], rows),
        "",
        *notes,
        "",
    ]
