"""Recovery rates of the memorization study with their uncertainty, and where training and test recovery meet.

A rate is pooled over the evaluation blocks (and over the seeds, when a folder holds several): the restored tokens
of all blocks over their changed tokens, ``p = sum_i k_i / sum_i n_i``. Tokens of one block are not independent
draws (one block is easy, another hard), so its standard error is the block-clustered one,
``sqrt(m / (m - 1) sum_i (k_i - p n_i)^2) / sum_i n_i`` over the ``m`` blocks, and never less than the binomial
error of ``sum_i n_i`` tokens at the Agresti-Coull rate ``(k + 2) / (n + 4)``, which stays above zero when every
token is restored (or none is). The 95% Wilson interval of the pooled tokens is given beside it. All of these
follow from the blocks' sufficient statistics (``STAT_COLUMNS``: m and the sums of n, k, n^2, k^2, n k, since
``sum_i (k_i - p n_i)^2 = sum k^2 - 2 p sum n k + p^2 sum n^2``), which add up over seeds: block rows are reduced to
them first (``recovery_stats``), and a data folder keeps only them.

Training and test recovery **meet** at the first training size from which training recovery exceeds test recovery
by at most two standard errors of their difference (``sqrt(se_train^2 + se_test^2)``) at that size and every larger
one. The test is one-sided: training and test blocks are different text, so a model that treats both alike may
restore the test blocks a little better, and a test split ahead beyond noise is not a gap that memorization leaves
open. A difference within two standard errors is called undecided; a sweep whose largest size still has training
recovery ahead beyond noise has no meeting point (None).
With several seeds, ``meeting_interval`` resamples seeds with replacement and gives the percentile interval of the
meeting size from per-seed statistics; ``meeting_shift`` compares two groups (model sizes, step budgets) the same
way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from amtheory.core.basins import wilson_interval

__all__ = [
    "STAT_COLUMNS", "block_stats", "meeting_interval", "meeting_interval_of_stats", "meeting_of_rows",
    "meeting_of_stats", "meeting_shift", "meeting_size", "meeting_trend", "meeting_trend_of_stats", "pooled_rate",
    "rate_of_stats", "rate_table", "rates_of_stats", "recovery_stats", "verdict"
]  # fmt: skip

#: How many standard errors a difference must exceed to be called a difference.
Z_MEET = 2.0
_KEYS = ["backend", "model_size", "train_size", "split", "t"]
#: The sufficient statistics of a pooled rate over blocks with ``k_i`` of ``n_i`` tokens (blocks with ``n_i > 0``
#: only): their number ``blocks`` (m) and the sums of n, k, n^2, k^2 and n k. Statistics of disjoint sets of blocks
#: (of several seeds) add up to those of their union.
STAT_COLUMNS = ("blocks", "n_sum", "k_sum", "nn_sum", "kk_sum", "nk_sum")


def _counts(k, n) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if k.shape != n.shape or k.ndim != 1:
        raise ValueError(f"k, n: expected 1-D arrays of one length, got shapes {k.shape} and {n.shape}")
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n + 1e-9):
        raise ValueError("k, n: expected counts with 0 <= k <= n")
    keep = n > 0
    return k[keep], n[keep]


def block_stats(k, n) -> dict[str, float]:
    """The sufficient statistics (``STAT_COLUMNS``) of blocks with ``k[i]`` successes out of ``n[i]`` tokens."""
    k, n = _counts(k, n)
    return {"blocks": int(k.size), "n_sum": float(n.sum()), "k_sum": float(k.sum()), "nn_sum": float((n * n).sum()),
            "kk_sum": float((k * k).sum()), "nk_sum": float((n * k).sum())}  # fmt: skip


def _rate_se(m, N, K, nn, kk, nk) -> tuple[np.ndarray, np.ndarray]:
    """Pooled rate ``K / N`` and its standard error (module docstring) from statistics, elementwise; NaN where
    ``N = 0``. The clustered sum of squares is ``sum_i (k_i - p n_i)^2 = kk - 2 p nk + p^2 nn``."""
    m, N, K, nn, kk, nk = (np.asarray(v, dtype=float) for v in (m, N, K, nn, kk, nk))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = K / N
        ac = (K + 2.0) / (N + 4.0)
        se = np.sqrt(ac * (1 - ac) / (N + 4.0))
        resid = np.maximum(kk - 2.0 * p * nk + p * p * nn, 0.0)
        clustered = np.where(m > 1, np.sqrt(m / np.maximum(m - 1, 1) * resid) / N, 0.0)
    se = np.maximum(se, clustered)
    bad = ~(N > 0)
    return np.where(bad, np.nan, p), np.where(bad, np.nan, se)


def rate_of_stats(stats) -> dict[str, float]:
    """The pooled rate of a set of blocks from its statistics (a mapping with ``STAT_COLUMNS``): ``rate``, its
    block-clustered standard error ``se``, the Wilson interval ``low``, ``high`` and the counts ``blocks``,
    ``tokens``; NaN entries when no block has a token to count."""
    missing = [c for c in STAT_COLUMNS if c not in stats]
    if missing:
        raise ValueError(f"stats: expected the statistics {list(STAT_COLUMNS)}, missing {missing}")
    m, N = int(stats["blocks"]), float(stats["n_sum"])
    if m == 0 or N <= 0:
        nan = float("nan")
        return {"rate": nan, "se": nan, "low": nan, "high": nan, "blocks": 0, "tokens": 0}
    p, se = _rate_se(m, N, *(float(stats[c]) for c in ("k_sum", "nn_sum", "kk_sum", "nk_sum")))
    low, high = wilson_interval(round(float(stats["k_sum"])), round(N))
    return {"rate": float(p), "se": float(se), "low": low, "high": high, "blocks": m, "tokens": int(round(N))}


def pooled_rate(k, n) -> dict[str, float]:
    """The pooled rate of blocks with ``k[i]`` successes out of ``n[i]`` tokens (blocks with ``n[i] = 0`` are
    skipped): ``rate_of_stats(block_stats(k, n))``."""
    return rate_of_stats(block_stats(k, n))


def _block_rows(recovery: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """The applicable rows of a recovery table as counts: the columns ``keep``, changed tokens n, restored k."""
    df = recovery[recovery["applicable"].astype(bool)] if "applicable" in recovery else recovery
    missing = [c for c in (*keep, "recovered", "n_changed") if c not in df]
    if missing:
        raise ValueError(f"recovery: expected the columns of a recovery table, missing {missing}")
    n = df["n_changed"].astype(float)
    out = pd.DataFrame({c: df[c].to_numpy() for c in keep})
    out["n"] = n.to_numpy()
    out["k"] = (df["recovered"].astype(float).fillna(0.0) * n).round().to_numpy()
    return out


def recovery_stats(recovery: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group ``by`` of a recovery table's applicable rows: ``evaluated`` (queries measured) and the sufficient
    statistics ``STAT_COLUMNS`` of its pooled rate over blocks with at least one changed ordinary token.

    Where the table has a ``block`` column (a training set smaller than the evaluation count, queried block by
    block in turn), the queries of one block within a group are one cluster: ``by`` must then name the model (its
    seed), so that the same block of two models stays two clusters."""
    by = list(by)
    rows = _block_rows(recovery, [*by, "block"] if "block" in recovery else by)
    evaluated = rows.groupby(by, sort=True, dropna=False).size()
    if "block" in rows:
        rows = rows.groupby([*by, "block"], sort=True, dropna=False)[["n", "k"]].sum().reset_index()
    rows["counted"] = (rows["n"] > 0).astype(int)
    rows["kept_n"] = rows["n"].where(rows["n"] > 0, 0.0)
    rows["kept_k"] = rows["k"].where(rows["n"] > 0, 0.0)
    rows["nn"] = rows["kept_n"] ** 2
    rows["kk"] = rows["kept_k"] ** 2
    rows["nk"] = rows["kept_n"] * rows["kept_k"]
    g = rows.groupby(by, sort=True, dropna=False)
    out = pd.DataFrame({"evaluated": evaluated, "blocks": g["counted"].sum(), "n_sum": g["kept_n"].sum(),
                        "k_sum": g["kept_k"].sum(), "nn_sum": g["nn"].sum(), "kk_sum": g["kk"].sum(),
                        "nk_sum": g["nk"].sum()})  # fmt: skip
    return out.reset_index()


def _check_stats(stats: pd.DataFrame, need: Sequence[str]) -> None:
    missing = [c for c in (*need, *STAT_COLUMNS) if c not in stats]
    if missing:
        raise ValueError(f"stats: expected the columns {[*need, *STAT_COLUMNS]} of recovery statistics, missing "
                         f"{missing}")  # fmt: skip


def rates_of_stats(stats: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group ``by`` of a table of recovery statistics (``recovery_stats``, e.g. one row per seed), their sums
    and the pooled rate: ``rate``, ``se``, ``low``, ``high``, ``blocks``, ``tokens`` and ``evaluated``."""
    by = list(by)
    _check_stats(stats, by)
    cols = [*STAT_COLUMNS, *(["evaluated"] if "evaluated" in stats else [])]
    summed = stats.groupby(by, sort=True, dropna=False)[cols].sum().reset_index()
    rows = [{**{c: r[c] for c in by}, **rate_of_stats(r), "evaluated": int(r.get("evaluated", r["blocks"]))}
            for _, r in summed.iterrows()]  # fmt: skip
    return pd.DataFrame(rows, columns=[*by, "rate", "se", "low", "high", "blocks", "tokens", "evaluated"])


def rate_table(recovery: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, model size, training size, split, t): the pooled recovery rate of a recovery table (restored
    over changed ordinary tokens) with ``se``, ``low``, ``high``, ``blocks`` and ``tokens`` (``pooled_rate``), over
    every block and seed of that group, and ``evaluated``: the blocks measured (``blocks`` counts those with at
    least one changed ordinary token). The rows are reduced to their statistics (``recovery_stats``) first."""
    df = recovery[recovery["applicable"]] if "applicable" in recovery else recovery
    missing = [c for c in [*_KEYS, "recovered", "n_changed"] if c not in df]
    if missing:
        raise ValueError(f"recovery: expected the columns of a recovery table, missing {missing}")
    # Per model first (its seed where the table names it), so that a block's repeated queries cluster within it.
    seed = [c for c in ("train.seed", "seed") if c in df][:1]
    return rates_of_stats(recovery_stats(df, [*_KEYS, *seed]), _KEYS)


def verdict(diff: float, se: float, z: float = Z_MEET) -> str:
    """ "train > test" or "test > train" when ``|diff|`` exceeds ``z`` standard errors, else "undecided"."""
    if not (math.isfinite(diff) and math.isfinite(se)):
        return "undecided"
    if abs(diff) <= z * se:
        return "undecided"
    return "train > test" if diff > 0 else "test > train"


def meeting_size(sizes, diff, se, z: float = Z_MEET) -> float | None:
    """The first training size from which ``diff`` (training minus test recovery) stays at most ``z`` standard
    errors ``se`` at it and every larger size (one-sided: test recovery ahead does not keep the curves apart);
    None when the largest size still has training ahead beyond noise (or nothing is finite). Sizes need not be
    sorted; non-finite entries are dropped."""
    s = np.asarray(sizes, dtype=float)
    d = np.asarray(diff, dtype=float)
    e = np.asarray(se, dtype=float)
    if s.ndim != 1 or s.shape != d.shape or s.shape != e.shape:
        raise ValueError(f"sizes, diff, se: expected 1-D arrays of one length, got {s.shape}, {d.shape}, {e.shape}")
    if np.any(s <= 0):
        raise ValueError("sizes: expected positive training-set sizes")
    if np.any(e < 0):
        raise ValueError("se: expected non-negative standard errors")
    order = np.argsort(s)
    return _first_meetings(s[order], d[order][None], e[order][None], z)[0]


def _first_meetings(sizes: np.ndarray, d: np.ndarray, e: np.ndarray, z: float = Z_MEET) -> list[float | None]:
    """``meeting_size``'s rule for ``n`` curves at once: ``d``, ``e`` ``[n, k]`` at ``k`` ascending ``sizes``; the
    first finite size after the last one still apart (``d > z e``), None where the last finite one is apart or none
    is finite."""
    ok = np.isfinite(d) & np.isfinite(e)
    bad = ok & ~(d <= z * e)
    last_bad = np.where(bad.any(1), sizes.size - 1 - np.argmax(bad[:, ::-1], axis=1), -1)
    after = ok & (np.arange(sizes.size)[None, :] > last_bad[:, None])
    return [float(sizes[i]) if has else None for i, has in zip(np.argmax(after, axis=1), after.any(1))]


def _meet_arrays(sizes: np.ndarray, train: np.ndarray, test: np.ndarray) -> list[float | None]:
    """Meeting sizes (``meeting_size``) from statistics ``[n, 6, k]`` (``STAT_COLUMNS`` on the second axis) of each
    split at ``k`` ascending ``sizes``, for ``n`` sets of statistics at once."""
    (p_tr, se_tr), (p_te, se_te) = (_rate_se(*np.moveaxis(a, 1, 0)) for a in (train, test))
    return _first_meetings(sizes, p_tr - p_te, np.hypot(se_tr, se_te))


def _split_arrays(stats: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """The training sizes measured on both splits, and the summed statistics of each split at them."""
    g = stats.groupby(["train_size", "split"], sort=True)[list(STAT_COLUMNS)].sum()
    sizes = sorted({n for n, sp in g.index if (n, "train") in g.index and (n, "test") in g.index})
    return np.asarray(sizes, dtype=float), g.loc[[(n, "train") for n in sizes]], g.loc[[(n, "test") for n in sizes]]


def meeting_of_stats(stats: pd.DataFrame) -> float | None:
    """Meeting size of one (model size, t) group of recovery statistics (columns train_size, split and
    ``STAT_COLUMNS``; several rows of one size and split, e.g. of several seeds, are summed)."""
    sizes, tr, te = _split_arrays(stats)
    if not sizes.size:
        return None
    return _meet_arrays(sizes, tr.to_numpy(float).T[None], te.to_numpy(float).T[None])[0]


def meeting_of_rows(recovery: pd.DataFrame) -> float | None:
    """The meeting size (``meeting_size``, over block-pooled rates and their standard errors) of the recovery rows
    of ONE backend, model size and t, all seeds pooled; None where the sweep's largest size is still apart."""
    return meeting_of_stats(recovery_stats(recovery, ["train_size", "split"]))


class _SeedResampler:
    """Recovery statistics of one group by seed, and the meeting size of their sum over a resample of the seeds
    (with replacement); a size that none of the drawn seeds measured on both splits has no rate and is left out."""

    def __init__(self, stats: pd.DataFrame):
        self.seeds = np.unique(stats["seed"].to_numpy())
        sizes, _, _ = _split_arrays(stats)
        self.sizes = sizes
        g = stats.groupby(["seed", "train_size", "split"], sort=True)[list(STAT_COLUMNS)].sum()
        arrays = []
        for split in ("train", "test"):
            index = pd.MultiIndex.from_tuples([(n, split) for n in sizes], names=["train_size", "split"])
            per = [g.xs(s, level="seed").reindex(index, fill_value=0).to_numpy(float).T for s in self.seeds]
            arrays.append(np.stack(per) if per else np.zeros((0, len(STAT_COLUMNS), 0)))
        self.train, self.test = arrays

    def counts(self, rng: np.random.Generator) -> np.ndarray:
        """How often one resample (as many seeds as there are, with replacement) draws each seed: ``[S]``."""
        pick = rng.choice(self.seeds, size=self.seeds.size, replace=True)
        return (pick[:, None] == self.seeds[None, :]).sum(0).astype(float)

    def meetings(self, counts: np.ndarray) -> list[float | None]:
        """The meeting size of each resample's summed statistics (``counts [n, S]``), all at once: the statistics
        are counts, so their sums are exact, the same as each resample's alone."""
        if not self.sizes.size:
            return [None] * len(counts)
        return _meet_arrays(self.sizes, np.tensordot(counts, self.train, 1), np.tensordot(counts, self.test, 1))


def meeting_interval_of_stats(
    stats: pd.DataFrame, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float | None]:
    """The meeting size of one (backend, model size, t) group of recovery statistics with one row per (seed,
    train_size, split) (columns ``seed``, ``train_size``, ``split`` and ``STAT_COLUMNS``), with a percentile
    bootstrap interval over seeds: each resample draws as many seeds as there are, with replacement, sums their
    statistics and finds the meeting size; a resample that does not meet counts as beyond the sweep (an upper end
    of None). Returns ``size``, ``low``, ``high``, ``seeds``."""
    _check_stats(stats, ("seed", "train_size", "split"))
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    size = meeting_of_stats(stats)
    boot = _SeedResampler(stats)
    if boot.seeds.size < 2:
        return {"size": size, "low": None, "high": None, "seeds": int(boot.seeds.size)}
    rng = np.random.default_rng(seed)
    draws = boot.meetings(np.stack([boot.counts(rng) for _ in range(n_boot)]))
    a = (1 - confidence) / 2
    vals = np.asarray([math.inf if m is None else m for m in draws])
    low, high = np.quantile(vals, [a, 1 - a], method="inverted_cdf")
    return {
        "size": size,
        "low": None if math.isinf(low) else float(low),
        "high": None if math.isinf(high) else float(high),
        "seeds": int(boot.seeds.size),
    }


def _seed_stats(recovery: pd.DataFrame, seed_column: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    if seed_column not in recovery:
        raise ValueError(f"seed_column: {seed_column!r} is not a column of the recovery table")
    stats = recovery_stats(recovery, [*extra, "train_size", "split", seed_column])
    return stats.rename(columns={seed_column: "seed"})


def meeting_interval(
    recovery: pd.DataFrame, seed_column: str, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float | None]:
    """``meeting_interval_of_stats`` of the recovery rows of one (backend, model size, t) group from several seeds
    (``seed_column``), reduced to their statistics per seed."""
    return meeting_interval_of_stats(_seed_stats(recovery, seed_column), n_boot=n_boot, confidence=confidence,
                                     seed=seed)  # fmt: skip


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


def meeting_shift(
    before: pd.DataFrame, after: pd.DataFrame, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, object]:
    """How the meeting size moves from one group of recovery statistics to another (each with one row per (seed,
    train_size, split), as ``meeting_interval_of_stats`` takes; e.g. the smallest and the largest model, or two
    step budgets): ``log2_ratio`` = log2 of ``after``'s meeting size over ``before``'s (+inf when only ``before``
    meets within the sweep, -inf when only ``after`` does, NaN when neither does), with a percentile bootstrap
    interval that resamples each group's seeds independently. ``verdict`` is "grows" when the interval lies above
    0, "shrinks" when below, else "undecided": also with one seed of a group (no interval, NaN ends) and when more
    resamples than the interval's tails meet in neither group. ``seeds``: the fewer seeds of the two."""
    for name, st in (("before", before), ("after", after)):
        try:
            _check_stats(st, ("seed", "train_size", "split"))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    point = _log2_ratio(meeting_of_stats(after), meeting_of_stats(before))
    boot_a, boot_b = _SeedResampler(before), _SeedResampler(after)
    rng = np.random.default_rng(seed)
    n_seeds = min(boot_a.seeds.size, boot_b.seeds.size)
    counts = [(boot_b.counts(rng), boot_a.counts(rng)) for _ in range(n_boot)] if n_seeds > 1 else []
    pairs = zip(*(boot.meetings(np.stack(c)) for boot, c in zip((boot_b, boot_a), zip(*counts)))) if counts else ()
    draws = np.asarray([_log2_ratio(b, a) for b, a in pairs])
    a = (1 - confidence) / 2
    if n_seeds < 2 or float(np.mean(~np.isnan(draws))) < 1 - a:
        low = high = math.nan
    else:
        low, high = (float(v) for v in np.quantile(draws[~np.isnan(draws)], [a, 1 - a], method="inverted_cdf"))
    verdict = "grows" if low > 0 else "shrinks" if high < 0 else "undecided"
    return {"log2_ratio": point, "low": low, "high": high, "verdict": verdict, "seeds": int(n_seeds)}


def meeting_trend_of_stats(
    stats: pd.DataFrame, params: dict[str, float], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, object]:
    """Whether the meeting size grows with the model: for the recovery statistics of ONE backend and t over several
    model sizes (one row per (model_size, seed, train_size, split); parameter counts in ``params``), the
    ``meeting_shift`` from the smallest model to the largest, with ``smallest`` and ``largest`` named."""
    _check_stats(stats, ("model_size", "seed", "train_size", "split"))
    models = sorted(set(stats["model_size"]))
    missing = [m for m in models if m not in params]
    if missing:
        raise ValueError(f"params: expected a parameter count for every model size, missing {missing}")
    if len(models) < 2:
        raise ValueError(f"stats: expected at least two model sizes, got {models}")
    small, big = min(models, key=lambda m: params[m]), max(models, key=lambda m: params[m])
    shift = meeting_shift(stats[stats["model_size"] == small], stats[stats["model_size"] == big], n_boot=n_boot,
                          confidence=confidence, seed=seed)  # fmt: skip
    return {"smallest": small, "largest": big, **shift}


def meeting_trend(
    recovery: pd.DataFrame,
    seed_column: str,
    params: dict[str, float],
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """``meeting_trend_of_stats`` of the recovery rows of ONE backend and t over several model sizes (column
    ``model_size``) from several seeds (``seed_column``), reduced to their statistics per seed."""
    if "model_size" not in recovery or seed_column not in recovery:
        raise ValueError(f"recovery: expected the columns 'model_size' and {seed_column!r}")
    return meeting_trend_of_stats(_seed_stats(recovery, seed_column, ["model_size"]), params, n_boot=n_boot,
                                  confidence=confidence, seed=seed)  # fmt: skip
