"""Where training and test recovery meet, from a data folder (``amtheory.studies.memorization.summary``): the
claims (c), (d) and (g) of ``amtheory.studies.memorization.claims`` and the precision of the differences.

* (c) ``meetings``: per model size, step budget and t, the meeting size (``rates.meeting_size`` on the pooled
  rates) with its percentile bootstrap interval over seeds (``rates.meeting_interval_of_stats``). Reproduced:
  training recovery above test recovery at the smallest size (beyond two standard errors), a meeting size, and
  every resample in the interval meets within the sweep; not reproduced: above at the smallest size and even the
  interval's lower end does not meet within the sweep; else undecided (also with one seed: no interval).
* (d) ``trends``: per budget and t, ``rates.meeting_trend_of_stats`` from the smallest to the largest model.
  Reproduced when the meeting size grows (its log2 ratio's bootstrap interval lies above 0), not reproduced when it
  shrinks, else undecided.
* (g) ``budget_shifts``: per model size and t, ``rates.meeting_shift`` from the smallest to the largest budget,
  judged as (d): a longer training memorizes larger sets, so the meeting point is expected to grow with it.
* ``precision``: per model size, budget and t, the largest standard error of training minus test recovery over
  the sizes (seeds pooled), against ``SE_TARGET``.

A claim's verdict over model sizes and budgets is taken at ``reference_t`` (0.25 when measured, else the middle
t) with ``claims.combine``.
"""

from __future__ import annotations

import math

import pandas as pd

from amtheory.studies.memorization.claims import NOT_REPRODUCED, REPRODUCED, UNDECIDED, differences
from amtheory.studies.memorization.rates import (
    meeting_interval_of_stats,
    meeting_of_stats,
    meeting_shift,
    meeting_trend_of_stats,
)
from amtheory.studies.memorization.summary import MemorizationData

__all__ = ["SE_TARGET", "budget_shifts", "meeting_points", "meetings", "precision", "reference_t", "trends"]

#: The standard error of training minus test recovery that the sweep is sized for.
SE_TARGET = 0.01
_SHIFT = {"grows": REPRODUCED, "shrinks": NOT_REPRODUCED, "undecided": UNDECIDED}


def reference_t(ts) -> float:
    """The t at which a claim over several t is judged: 0.25 when measured, else the middle one."""
    ts = sorted({float(t) for t in ts})
    if not ts:
        raise ValueError("ts: expected at least one noise level, got none")
    return 0.25 if 0.25 in ts else ts[len(ts) // 2]


def _stats(data: MemorizationData) -> pd.DataFrame:
    u = data.uddm_recovery
    return u[u["split"].isin(["train", "test"])].astype({"seed": "int64", "steps": "int64", "train_size": "int64"})


def meeting_points(data: MemorizationData) -> dict[tuple[str, int, float], float]:
    """Per (model size, steps, t): the meeting size with every seed pooled (NaN: not within the sweep), without
    the bootstrap of ``meetings``."""
    out = {}
    for (ms, steps, t), g in _stats(data).groupby(["model_size", "steps", "t"]):
        m = meeting_of_stats(g)
        out[(ms, int(steps), float(t))] = math.nan if m is None else m
    return out


def meetings(data: MemorizationData, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Claim (c) per (model size, steps, t): ``size``, ``low``, ``high`` (None: beyond the sweep), ``seeds``,
    ``sizes``, the verdict at the smallest size ``first`` and the claim's ``verdict``."""
    st = _stats(data)
    d = differences(data)
    rows = []
    for (ms, steps, t), g in st.groupby(["model_size", "steps", "t"]):
        m = meeting_interval_of_stats(g, n_boot=n_boot, seed=seed)
        dd = d[(d["model_size"] == ms) & (d["steps"] == steps) & (d["t"] == t)].sort_values("train_size")
        first = dd["verdict"].iloc[0] if len(dd) else "undecided"
        apart = first == "train > test"
        if m["seeds"] >= 2 and apart and m["size"] is not None and m["high"] is not None:
            v = REPRODUCED
        elif m["seeds"] >= 2 and apart and m["size"] is None and m["low"] is None:
            v = NOT_REPRODUCED
        else:
            v = UNDECIDED
        rows.append(
            {
                "model_size": ms,
                "steps": int(steps),
                "t": float(t),
                **m,
                "sizes": len(dd),
                "smallest": int(dd["train_size"].min()) if len(dd) else None,
                "largest": int(dd["train_size"].max()) if len(dd) else None,
                "first": first,
                "verdict": v,
            }
        )
    return pd.DataFrame(rows)


def trends(data: MemorizationData, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Claim (d) per (steps, t): ``rates.meeting_trend_of_stats`` over the model sizes and the ``verdict``; empty
    with fewer than two model sizes."""
    st = _stats(data)
    params = data.params()
    st = st[st["model_size"].isin(params)]
    rows = []
    for (steps, t), g in st.groupby(["steps", "t"]):
        if g["model_size"].nunique() < 2:
            continue
        tr = meeting_trend_of_stats(g, params, n_boot=n_boot, seed=seed)
        rows.append({"steps": int(steps), "t": float(t), **tr, "verdict": _SHIFT[tr["verdict"]],
                     "change": tr["verdict"]})  # fmt: skip
    return pd.DataFrame(rows)


def budget_shifts(data: MemorizationData, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Claim (g) per (model size, t): the meeting shift from the smallest to the largest budget, with ``before``
    and ``after`` (the step counts) and the ``verdict``; empty with one budget."""
    st = _stats(data)
    rows = []
    for (ms, t), g in st.groupby(["model_size", "t"]):
        budgets = sorted(set(g["steps"]))
        if len(budgets) < 2:
            continue
        a, b = budgets[0], budgets[-1]
        sh = meeting_shift(g[g["steps"] == a], g[g["steps"] == b], n_boot=n_boot, seed=seed)
        rows.append({"model_size": ms, "t": float(t), "before": int(a), "after": int(b), **sh,
                     "verdict": _SHIFT[sh["verdict"]], "change": sh["verdict"]})  # fmt: skip
    return pd.DataFrame(rows)


def precision(data: MemorizationData) -> pd.DataFrame:
    """Per (model size, steps, t): the largest standard error of training minus test recovery over the training
    sizes (seeds pooled), the size where it is, and whether it is within ``SE_TARGET``; and the same over the sizes
    of more training blocks than the evaluation measures a split (``_sampled``; NaN where there is none, or where
    the data folder does not name that count). At a size of at most that many blocks every training block is
    measured (each at least once), so that more evaluation blocks cannot lower its standard error; more seeds can."""
    d = differences(data)
    n_eval = data.settings.get("n_eval")
    rows = []
    for (ms, steps, t), g in d.groupby(["model_size", "steps", "t"]):
        row: dict = {"model_size": ms, "steps": int(steps), "t": float(t)}
        sampled = g[g["train_size"] > n_eval] if isinstance(n_eval, int) else g.iloc[:0]
        for suffix, part in (("", g), ("_sampled", sampled)):
            i = part["diff_se"].idxmax() if len(part) else None
            se = float(part.loc[i, "diff_se"]) if i is not None else math.nan
            row[f"max_se{suffix}"] = se
            row[f"at{suffix}"] = int(part.loc[i, "train_size"]) if i is not None else None
            row[f"within{suffix}"] = bool(math.isfinite(se) and se <= SE_TARGET)
        rows.append(row)
    return pd.DataFrame(rows)
