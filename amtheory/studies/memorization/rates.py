"""Recovery rates of the memorization study with their uncertainty, and where training and test recovery meet.

A rate is pooled over the evaluation blocks (and over the seeds, when a folder holds several): the restored tokens
of all blocks over their changed tokens, ``p = sum_i k_i / sum_i n_i``. Tokens of one block are not independent
draws (one block is easy, another hard), so its standard error is the block-clustered one,
``sqrt(m / (m - 1) sum_i (k_i - p n_i)^2) / sum_i n_i`` over the ``m`` blocks, and never less than the binomial
error of ``sum_i n_i`` tokens at the Agresti-Coull rate ``(k + 2) / (n + 4)``, which stays above zero when every
token is restored (or none is). The 95% Wilson interval of the pooled tokens is given beside it.

Training and test recovery **meet** at the first training size from which their difference stays within two
standard errors of zero (``sqrt(se_train^2 + se_test^2)``) at that size and every larger one. A difference within
two standard errors is called undecided; a sweep whose largest size is still outside has no meeting point (None).
With several seeds, ``meeting_interval`` resamples seeds with replacement and gives the percentile interval of the
meeting size.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from amtheory.core.basins import wilson_interval

__all__ = [
    "meeting_interval",
    "meeting_of_rows",
    "meeting_size",
    "meeting_trend",
    "pooled_rate",
    "rate_table",
    "verdict",
]

#: How many standard errors a difference must exceed to be called a difference.
Z_MEET = 2.0
_KEYS = ["backend", "model_size", "train_size", "split", "t"]


def pooled_rate(k, n) -> dict[str, float]:
    """The pooled rate of blocks with ``k[i]`` successes out of ``n[i]`` tokens (blocks with ``n[i] = 0`` are
    skipped): ``rate``, its block-clustered standard error ``se`` (see the module docstring), the Wilson interval
    ``low``, ``high`` and the counts ``blocks``, ``tokens``. NaN entries when no block has a token to count."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if k.shape != n.shape or k.ndim != 1:
        raise ValueError(f"k, n: expected 1-D arrays of one length, got shapes {k.shape} and {n.shape}")
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n + 1e-9):
        raise ValueError("k, n: expected counts with 0 <= k <= n")
    keep = n > 0
    k, n = k[keep], n[keep]
    m, total = int(k.size), float(n.sum())
    if m == 0:
        nan = float("nan")
        return {"rate": nan, "se": nan, "low": nan, "high": nan, "blocks": 0, "tokens": 0}
    p = float(k.sum()) / total
    ac = (k.sum() + 2.0) / (total + 4.0)
    se = math.sqrt(ac * (1 - ac) / (total + 4.0))
    if m > 1:
        se = max(se, math.sqrt(m / (m - 1) * float(((k - p * n) ** 2).sum())) / total)
    low, high = wilson_interval(round(float(k.sum())), round(total))
    return {"rate": p, "se": se, "low": low, "high": high, "blocks": m, "tokens": int(total)}


def rate_table(recovery: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, model size, training size, split, t): the pooled recovery rate of a recovery table (restored
    over changed ordinary tokens) with ``se``, ``low``, ``high``, ``blocks`` and ``tokens`` (``pooled_rate``), over
    every block and seed of that group, and ``evaluated``: the blocks measured (``blocks`` counts those with at
    least one changed ordinary token)."""
    df = recovery[recovery["applicable"]] if "applicable" in recovery else recovery
    missing = [c for c in [*_KEYS, "recovered", "n_changed"] if c not in df]
    if missing:
        raise ValueError(f"recovery: expected the columns of a recovery table, missing {missing}")
    n = df["n_changed"].astype(float)
    k = (df["recovered"].astype(float).fillna(0.0) * n).round()
    rows = []
    for key, g in pd.DataFrame({"k": k, "n": n}).join(df[_KEYS]).groupby(_KEYS):
        stats = pooled_rate(g["k"].to_numpy(), g["n"].to_numpy())
        rows.append({**dict(zip(_KEYS, key)), **stats, "evaluated": len(g)})
    return pd.DataFrame(rows, columns=[*_KEYS, "rate", "se", "low", "high", "blocks", "tokens", "evaluated"])


def verdict(diff: float, se: float, z: float = Z_MEET) -> str:
    """ "train > test" or "test > train" when ``|diff|`` exceeds ``z`` standard errors, else "undecided"."""
    if not (math.isfinite(diff) and math.isfinite(se)):
        return "undecided"
    if abs(diff) <= z * se:
        return "undecided"
    return "train > test" if diff > 0 else "test > train"


def meeting_size(sizes, diff, se, z: float = Z_MEET) -> float | None:
    """The first training size from which ``|diff|`` (training minus test recovery) stays within ``z`` standard
    errors ``se`` at it and every larger size; None when the largest size is still outside (or nothing is
    finite). Sizes need not be sorted; non-finite entries are dropped."""
    s = np.asarray(sizes, dtype=float)
    d = np.asarray(diff, dtype=float)
    e = np.asarray(se, dtype=float)
    if s.ndim != 1 or s.shape != d.shape or s.shape != e.shape:
        raise ValueError(f"sizes, diff, se: expected 1-D arrays of one length, got {s.shape}, {d.shape}, {e.shape}")
    if np.any(s <= 0):
        raise ValueError("sizes: expected positive training-set sizes")
    if np.any(e < 0):
        raise ValueError("se: expected non-negative standard errors")
    ok = np.isfinite(d) & np.isfinite(e)
    s, d, e = s[ok], d[ok], e[ok]
    order = np.argsort(s)
    s, d, e = s[order], d[order], e[order]
    within = np.abs(d) <= z * e
    if s.size == 0 or not within[-1]:
        return None
    i = s.size - 1
    while i > 0 and within[i - 1]:
        i -= 1
    return float(s[i])


def _meeting_of(rows: pd.DataFrame) -> float | None:
    """Meeting size of one (model size, t) group of block rows (columns train_size, split, k, n)."""
    stats = {}
    for (n_train, split), g in rows.groupby(["train_size", "split"]):
        stats[(n_train, split)] = pooled_rate(g["k"].to_numpy(), g["n"].to_numpy())
    sizes = sorted({n for n, sp in stats if (n, "train") in stats and (n, "test") in stats})
    if not sizes:
        return None
    d = [stats[(n, "train")]["rate"] - stats[(n, "test")]["rate"] for n in sizes]
    e = [math.hypot(stats[(n, "train")]["se"], stats[(n, "test")]["se"]) for n in sizes]
    return meeting_size(sizes, d, e)


def _block_rows(recovery: pd.DataFrame, seed_column: str | None = None) -> pd.DataFrame:
    """The applicable rows of a recovery table as counts: train_size, split, (seed,) changed tokens n, restored k."""
    df = recovery[recovery["applicable"].astype(bool)] if "applicable" in recovery else recovery
    missing = [c for c in ("train_size", "split", "recovered", "n_changed") if c not in df]
    if missing:
        raise ValueError(f"recovery: expected the columns of a recovery table, missing {missing}")
    n = df["n_changed"].astype(float)
    cols = {"train_size": df["train_size"].to_numpy(), "split": df["split"].to_numpy()}
    if seed_column is not None:
        cols["seed"] = df[seed_column].to_numpy()
    cols["n"] = n.to_numpy()
    cols["k"] = (df["recovered"].astype(float).fillna(0.0) * n).round().to_numpy()
    return pd.DataFrame(cols)


def meeting_of_rows(recovery: pd.DataFrame) -> float | None:
    """The meeting size (``meeting_size``, over block-pooled rates and their standard errors) of the recovery rows
    of ONE backend, model size and t, all seeds pooled; None where the sweep's largest size is still apart."""
    return _meeting_of(_block_rows(recovery))


def meeting_interval(
    recovery: pd.DataFrame, seed_column: str, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float | None]:
    """The meeting size of one (backend, model size, t) group of recovery rows that come from several seeds
    (``seed_column``), with a percentile bootstrap interval over seeds: each resample draws as many seeds as
    there are, with replacement, pools their blocks and finds the meeting size; a resample that does not meet
    counts as beyond the sweep (an upper end of None). Returns ``size``, ``low``, ``high``, ``seeds``."""
    if seed_column not in recovery:
        raise ValueError(f"seed_column: {seed_column!r} is not a column of the recovery table")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    rows = _block_rows(recovery, seed_column)
    seeds = np.unique(rows["seed"].to_numpy())
    size = _meeting_of(rows)
    if seeds.size < 2:
        return {"size": size, "low": None, "high": None, "seeds": int(seeds.size)}
    rng = np.random.default_rng(seed)
    by_seed = {s: rows[rows["seed"] == s] for s in seeds}
    draws = []
    for _ in range(n_boot):
        pick = rng.choice(seeds, size=seeds.size, replace=True)
        m = _meeting_of(pd.concat([by_seed[s] for s in pick], ignore_index=True))
        draws.append(math.inf if m is None else m)
    a = (1 - confidence) / 2
    low, high = np.quantile(np.asarray(draws), [a, 1 - a], method="inverted_cdf")
    return {
        "size": size,
        "low": None if math.isinf(low) else float(low),
        "high": None if math.isinf(high) else float(high),
        "seeds": int(seeds.size),
    }


def _log2_ratio(big: float | None, small: float | None) -> float:
    """log2 of the larger model's meeting size over the smaller's; +inf when only the smaller meets within the
    sweep, -inf when only the larger does, NaN when neither does."""
    if big is None and small is None:
        return math.nan
    if big is None:
        return math.inf
    if small is None:
        return -math.inf
    return math.log2(big / small)


def meeting_trend(
    recovery: pd.DataFrame,
    seed_column: str,
    params: dict[str, float],
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """Whether the meeting size grows with the model: for the recovery rows of ONE backend and t over several model
    sizes (column ``model_size``, parameter counts in ``params``), ``log2_ratio`` = log2 of the largest model's
    meeting size over the smallest's (``_log2_ratio`` for sweeps they do not meet within), with a percentile
    bootstrap interval that resamples each model's seeds independently. ``verdict`` is "grows" when the interval
    lies above 0, "shrinks" when below, else "undecided": also with one seed of a model (no interval, NaN ends)
    and when more resamples than the interval's tails meet in neither model."""
    if "model_size" not in recovery or seed_column not in recovery:
        raise ValueError(f"recovery: expected the columns 'model_size' and {seed_column!r}")
    models = sorted(set(recovery["model_size"]))
    missing = [m for m in models if m not in params]
    if missing:
        raise ValueError(f"params: expected a parameter count for every model size, missing {missing}")
    if len(models) < 2:
        raise ValueError(f"recovery: expected at least two model sizes, got {models}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    small, big = min(models, key=lambda m: params[m]), max(models, key=lambda m: params[m])
    rows = {m: _block_rows(recovery[recovery["model_size"] == m], seed_column) for m in (small, big)}
    point = _log2_ratio(_meeting_of(rows[big]), _meeting_of(rows[small]))
    by_seed = {m: {s: r[r["seed"] == s] for s in np.unique(r["seed"].to_numpy())} for m, r in rows.items()}
    rng = np.random.default_rng(seed)

    def resample(m: str) -> float | None:
        seeds = np.asarray(list(by_seed[m]))
        pick = rng.choice(seeds, size=seeds.size, replace=True)
        return _meeting_of(pd.concat([by_seed[m][s] for s in pick], ignore_index=True))

    n_seeds = min(len(v) for v in by_seed.values())
    draws = np.asarray([_log2_ratio(resample(big), resample(small)) for _ in range(n_boot)] if n_seeds > 1 else [])
    a = (1 - confidence) / 2
    if n_seeds < 2 or float(np.mean(~np.isnan(draws))) < 1 - a:
        low = high = math.nan
    else:
        low, high = (float(v) for v in np.quantile(draws[~np.isnan(draws)], [a, 1 - a], method="inverted_cdf"))
    verdict = "grows" if low > 0 else "shrinks" if high < 0 else "undecided"
    return {
        "smallest": small,
        "largest": big,
        "log2_ratio": point,
        "low": low,
        "high": high,
        "verdict": verdict,
        "seeds": n_seeds,
    }
