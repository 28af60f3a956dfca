"""The claims of Pham et al. (2026, "Language Diffusion Models are Associative Memories Capable of Retrieving Unseen
Data") checked against a data folder (``amtheory.studies.memorization.summary``), each with a verdict —
"reproduced", "not reproduced" or "undecided" — computed by a stated rule in which a difference within noise is
undecided. Per claim a table with one row per model size and step budget (per t where it applies):

* (a) ``memorized``: at the smallest training set, training recovery near 1 (``rate - 2 se >= MEMORIZED``) at
  every t < 1, training above test recovery by more than two standard errors, most samples verbatim training
  blocks (Wilson interval of the share above ``VERBATIM``) and the entropy on the model's own samples near zero
  (``mean + 2 se <= NEAR_ZERO`` nats);
* (b) ``basin_change``: from the smallest to the largest training set the median basin radius of training blocks
  falls and that of test blocks rises, each beyond its 95% order-statistic interval (the intervals do not
  overlap; radius -1: the block is not even a fixed point);
* (c), (d), (g) in ``amtheory.studies.memorization.meetings``;
* (e) ``entropy_change``: the entropy on the model's own samples near zero at the smallest size and above both
  ``NEAR_ZERO`` and the smallest size's interval at the largest (intervals: mean +- 2 se over blocks);
* (f) ``perplexity_curve``: the test perplexity bound per size, a mean over seeds of each seed's mean test NELBO
  with a 95% t interval over seeds; a peak is an interior size whose interval lies above both neighbours'.
  Reproduced: such a peak; not reproduced: every neighbouring pair separated and no peak; else undecided (also
  with one seed or fewer than three sizes).

``combine`` gives a claim's verdict over its rows: reproduced (or not reproduced) when every row is, else
undecided.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from amtheory.core.basins import wilson_interval
from amtheory.core.basins.stats import median_order_interval
from amtheory.studies.memorization.rates import Z_MEET, rates_of_stats, verdict
from amtheory.studies.memorization.summary import MemorizationData, pool_means, seed_means

__all__ = [
    "MEMORIZED",
    "NEAR_ZERO",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "UNDECIDED",
    "VERBATIM",
    "basin_change",
    "combine",
    "differences",
    "entropy_change",
    "memorized",
    "perplexity_curve",
    "rates",
]

REPRODUCED, NOT_REPRODUCED, UNDECIDED = "reproduced", "not reproduced", "undecided"
#: Claim (a): training recovery counts as near 1 when ``rate - 2 se`` is at least this.
MEMORIZED = 0.9
#: Claim (a): most samples are verbatim training blocks when the Wilson interval of their share lies above this.
VERBATIM = 0.5
#: Claims (a), (e): an entropy (nats per token) counts as near zero when ``mean + 2 se`` is at most this.
NEAR_ZERO = 0.1
_MODEL = ["model_size", "steps"]


def combine(verdicts) -> str:
    """A claim's verdict over its rows: every row reproduced, every row not reproduced, else undecided."""
    v = list(verdicts)
    if v and all(x == REPRODUCED for x in v):
        return REPRODUCED
    if v and all(x == NOT_REPRODUCED for x in v):
        return NOT_REPRODUCED
    return UNDECIDED


def _rule(ok: list[bool], fail: list[bool]) -> str:
    if any(fail):
        return NOT_REPRODUCED
    return REPRODUCED if ok and all(ok) else UNDECIDED


def rates(data: MemorizationData) -> pd.DataFrame:
    """Pooled recovery rates over every block and seed per (backend, model size, steps, training size, split, t)."""
    r = data.recovery[data.recovery["applicable"]]
    return rates_of_stats(r, ["backend", "model_size", "steps", "train_size", "split", "t"])


def differences(data: MemorizationData) -> pd.DataFrame:
    """UDDM training minus test recovery per (model size, steps, training size, t), pooled over seeds, with its
    standard error ``diff_se`` and ``verdict`` (``rates.verdict``)."""
    r = rates(data)
    u = r[r["backend"] == "uddm"].set_index([*_MODEL, "train_size", "t", "split"])[["rate", "se"]].unstack("split")
    u = u.dropna(subset=[("rate", "train"), ("rate", "test")], how="any") if len(u) else u
    out = pd.DataFrame(
        {
            "train": u[("rate", "train")],
            "train_se": u[("se", "train")],
            "test": u[("rate", "test")],
            "test_se": u[("se", "test")],
        }
    )
    out["diff"] = out["train"] - out["test"]
    out["diff_se"] = np.hypot(out["train_se"], out["test_se"])
    out["verdict"] = [verdict(d, s) for d, s in zip(out["diff"], out["diff_se"])]
    return out.reset_index()


def _smallest(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["train_size"] == df.groupby(_MODEL)["train_size"].transform("min")]


def memorized(data: MemorizationData) -> pd.DataFrame:
    """Claim (a) per (model size, steps) at its smallest training size (see the module docstring)."""
    d = differences(data)
    d = _smallest(d[d["t"] < 1.0])
    gen = pool_means(_smallest(data.measure("generation", "entropy")).query("split == 'generated'"),
                     [*_MODEL, "train_size"]).set_index(_MODEL)  # fmt: skip
    verb = pool_means(_smallest(data.measure("generation", "verbatim")), [*_MODEL, "train_size"]).set_index(_MODEL)
    rows = []
    for key, g in d.groupby(_MODEL):
        worst = g.loc[(g["train"] - Z_MEET * g["train_se"]).idxmin()]
        top = g.loc[g["test"].idxmax()]
        n_gen = int(verb.loc[key, "count"]) if key in verb.index else 0
        k_gen = int(round(verb.loc[key, "mean"] * n_gen)) if n_gen else 0
        v_low, v_high = wilson_interval(k_gen, n_gen) if n_gen else (math.nan, math.nan)
        e = gen.loc[key] if key in gen.index else None
        e_mean, e_se = (float(e["mean"]), float(e["se"])) if e is not None else (math.nan, math.nan)
        ok = [
            bool(((g["train"] - Z_MEET * g["train_se"]) >= MEMORIZED).all()),
            bool((g["verdict"] == "train > test").all()),
            v_low >= VERBATIM,
            e_mean + Z_MEET * e_se <= NEAR_ZERO,
        ]
        fail = [
            bool(((g["train"] + Z_MEET * g["train_se"]) < MEMORIZED).any()),
            bool((g["verdict"] == "test > train").any()),
            v_high < VERBATIM,
            e_mean - Z_MEET * e_se > NEAR_ZERO,
        ]
        rows.append({"model_size": key[0], "steps": key[1], "train_size": int(g["train_size"].iloc[0]),
                     "worst_t": float(worst["t"]), "train": worst["train"], "train_se": worst["train_se"],
                     "test": worst["test"], "test_se": worst["test_se"],
                     "max_test": float(top["test"]), "max_test_se": float(top["test_se"]),
                     "max_test_t": float(top["t"]), "verbatim": k_gen / n_gen if n_gen else math.nan,
                     "verbatim_low": v_low, "verbatim_high": v_high, "generated": n_gen, "entropy": e_mean,
                     "entropy_se": e_se, "verdict": _rule(ok, fail)})  # fmt: skip
    return pd.DataFrame(rows)


def _median_interval(v: np.ndarray) -> tuple[float, float, float]:
    v = np.sort(v.astype(float))
    if not v.size:
        return math.nan, math.nan, math.nan
    j, k, _ = median_order_interval(int(v.size))
    return float(np.median(v)), float(v[j - 1]), float(v[k - 1])


def basin_change(data: MemorizationData) -> pd.DataFrame:
    """Claim (b) per (model size, steps): the median basin radius over every block of every seed of training and
    test blocks at the smallest and the largest training size, with order-statistic intervals."""
    b = data.basins
    b = b[(b["backend"] == "uddm") & b["applicable"]]
    rows = []
    for key, g in b.groupby(_MODEL):
        lo_n, hi_n = int(g["train_size"].min()), int(g["train_size"].max())
        row: dict = {"model_size": key[0], "steps": key[1], "smallest": lo_n, "largest": hi_n}
        ok, fail = [], []
        for split, sign in (("train", -1), ("test", 1)):
            ends = {}
            for name, n in (("smallest", lo_n), ("largest", hi_n)):
                x = g[(g["train_size"] == n) & (g["split"] == split)]
                med, low, high = _median_interval(x["radius"].to_numpy())
                ends[name] = (med, low, high)
                row.update(
                    {
                        f"{split}_{name}": med,
                        f"{split}_{name}_low": low,
                        f"{split}_{name}_high": high,
                        f"{split}_{name}_blocks": len(x),
                        f"{split}_{name}_censored": bool(x["censored"].fillna(False).astype(bool).any()),
                    }
                )
            (_, a_lo, a_hi), (_, b_lo, b_hi) = ends["smallest"], ends["largest"]
            moved = b_hi < a_lo if sign < 0 else b_lo > a_hi
            against = b_lo > a_hi if sign < 0 else b_hi < a_lo
            ok.append(bool(moved) and lo_n < hi_n)
            fail.append(bool(against) and lo_n < hi_n)
        row["verdict"] = _rule(ok, fail)
        rows.append(row)
    return pd.DataFrame(rows)


def entropy_change(data: MemorizationData) -> pd.DataFrame:
    """Claim (e) per (model size, steps): the entropy on generated, training and test blocks at the smallest and
    the largest training size (mean and standard error over every block of every seed)."""
    e = pool_means(data.measure("generation", "entropy"), [*_MODEL, "train_size", "split"])
    rows = []
    for key, g in e.groupby(_MODEL):
        lo_n, hi_n = int(g["train_size"].min()), int(g["train_size"].max())
        row: dict = {"model_size": key[0], "steps": key[1], "smallest": lo_n, "largest": hi_n}
        for name, n in (("smallest", lo_n), ("largest", hi_n)):
            for split in ("generated", "train", "test"):
                x = g[(g["train_size"] == n) & (g["split"] == split)]
                row[f"{split}_{name}"] = float(x["mean"].iloc[0]) if len(x) else math.nan
                row[f"{split}_{name}_se"] = float(x["se"].iloc[0]) if len(x) else math.nan
        a, a_se = row["generated_smallest"], row["generated_smallest_se"]
        b, b_se = row["generated_largest"], row["generated_largest_se"]
        near_zero = a + Z_MEET * a_se <= NEAR_ZERO
        finite = b - Z_MEET * b_se > max(NEAR_ZERO, a + Z_MEET * a_se)
        fail = [a - Z_MEET * a_se > NEAR_ZERO, b + Z_MEET * b_se <= NEAR_ZERO]
        row["verdict"] = _rule([near_zero, finite and lo_n < hi_n], fail)
        rows.append(row)
    return pd.DataFrame(rows)


def nelbo_curve(data: MemorizationData, split: str = "test") -> pd.DataFrame:
    """Per (model size, steps, training size): the mean over seeds of each seed's mean NELBO per token on
    ``split`` with its t interval over seeds (``seed_means``), the perplexity bound ``exp`` of each, and the
    pooled mean and standard error over every block (``block_mean``, ``block_se``)."""
    n = data.measure("nelbo", "nelbo")
    n = n[n["split"] == split]
    by = [*_MODEL, "train_size"]
    s = seed_means(n, by)
    p = pool_means(n, by).rename(columns={"mean": "block_mean", "se": "block_se"})[[*by, "block_mean", "block_se"]]
    out = s.merge(p, on=by)
    for c in ("mean", "low", "high"):
        out[f"ppl_{c}"] = np.exp(out[c])
    return out


def perplexity_curve(data: MemorizationData) -> pd.DataFrame:
    """Claim (f) per (model size, steps): the size with the largest mean test bound, the interior peak (if any)
    and the verdict (see the module docstring)."""
    rows = []
    for key, g in nelbo_curve(data).groupby(_MODEL):
        g = g.sort_values("train_size")
        n, m, lo, hi = (g[c].to_numpy(float) for c in ("train_size", "mean", "low", "high"))
        peaks = [i for i in range(1, len(n) - 1) if lo[i] > hi[i - 1] and lo[i] > hi[i + 1]]
        steps_decided = [bool(lo[i + 1] > hi[i] or hi[i + 1] < lo[i]) for i in range(len(n) - 1)]
        if peaks:
            v = REPRODUCED
        elif len(n) >= 3 and all(steps_decided):
            v = NOT_REPRODUCED
        else:
            v = UNDECIDED
        top = max(peaks, key=lambda i: m[i]) if peaks else None
        rows.append({"model_size": key[0], "steps": key[1], "sizes": len(n), "seeds": int(g["seeds"].min()),
                     "argmax": int(n[int(np.argmax(m))]), "peak": None if top is None else int(n[top]),
                     "peak_ppl": math.nan if top is None else float(np.exp(m[top])),
                     "decided_steps": int(sum(steps_decided)), "verdict": v})  # fmt: skip
    return pd.DataFrame(rows)
