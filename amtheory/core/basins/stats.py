"""Interval statistics of Monte Carlo estimates: the Wilson score interval of a success share, the bootstrap
interval of a median, and the one summary of a set of basin radii that every table and figure uses (the share of
patterns that are fixed points, and the median radius over those fixed points)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
import torch

from amtheory.core._checks import check_float
from amtheory.core.basins.inputs import _as_array

# ---------------------------------------------------------------------------------------------------------------
# Wilson score interval
# ---------------------------------------------------------------------------------------------------------------


def wilson_interval(
    successes: int | np.ndarray | torch.Tensor | Iterable[int],
    trials: int | np.ndarray | torch.Tensor | Iterable[int],
    confidence: float = 0.95,
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    With ``p = s / n`` and ``z`` the two-sided standard-normal quantile of ``confidence``:

        center = (p + z^2 / (2n)) / (1 + z^2 / n),
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2)),

    and the interval is ``[center - half, center + half]`` (clipped to [0, 1] against rounding). Unlike the normal
    approximation it stays inside [0, 1] and is informative at ``p = 0`` and ``p = 1``. Scalars in give floats
    out; arrays broadcast and give arrays.
    """
    check_float("confidence", confidence, minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    scalar = np.ndim(successes) == 0 and np.ndim(trials) == 0
    s = _as_array("successes", successes)
    n = _as_array("trials", trials)
    if np.any(n < 1) or np.any(n != np.floor(n)):
        raise ValueError(f"trials: expected integers >= 1, got {n.tolist() if n.size < 10 else 'an array'}")
    if np.any(s < 0) or np.any(s != np.floor(s)):
        raise ValueError("successes: expected non-negative integers")
    if np.any(s > n):
        raise ValueError("successes: expected successes <= trials")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    z2 = z * z
    p = s / n
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z / denom * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At p = 0 (p = 1) the lower (upper) end is exactly 0 (1); set it so rounding cannot leave it a hair off.
    low = np.where(s == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    high = np.where(s == n, 1.0, np.clip(center + half, 0.0, 1.0))
    if scalar:
        return float(low), float(high)
    return low, high


def _bootstrap_median(
    radius: np.ndarray, n_boot: int, confidence: float, generator: torch.Generator | None
) -> tuple[float, tuple[float, float]]:
    """Median of the per-pattern radii and its percentile-bootstrap interval (patterns resampled with
    replacement; Efron and Tibshirani 1993)."""
    K = radius.shape[0]
    vals = radius.astype(np.float64)
    where = generator.device if generator is not None else torch.device("cpu")
    idx = torch.randint(0, K, (n_boot, K), generator=generator, device=where).cpu().numpy()
    meds = np.median(vals[idx], axis=1)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(meds, [a, 1.0 - a])
    return float(np.median(vals)), (float(lo), float(hi))


# ---------------------------------------------------------------------------------------------------------------
# Basin radii of a set of patterns: share of fixed points, median radius over the fixed points
# ---------------------------------------------------------------------------------------------------------------

#: How every table and figure summarises basin radii, for their headers and captions.
RADIUS_CONVENTION = (
    "median radius over the patterns that are fixed points [95% order-statistic interval], beside the share of "
    "patterns that are fixed points [95% Wilson interval]; a median marked >= sits at the search limit (a lower bound)"
)


@dataclass(frozen=True)
class FixedPointRadius:
    """The basin radii of a set of patterns under one convention: a pattern that is not a fixed point (radius -1)
    counts in the share of fixed points and stays out of the median, which runs over the fixed points only.

    ``fixed_share`` and ``fixed_share_ci``: the share of patterns that are fixed points and its Wilson interval;
    ``median`` and ``median_ci``: the median radius over the fixed points and its order-statistic interval (NaN
    when no pattern is a fixed point), whose coverage ``median_ci_coverage`` is at least the confidence asked for
    once there are enough fixed points (six at 95%) and less below; ``n_censored``: fixed points whose radius is
    at the search limit (lower bounds); ``median_censored`` and ``high_censored``: whether the median or the upper
    end of its interval is such a lower bound.
    """

    n_patterns: int
    n_fixed: int
    fixed_share: float
    fixed_share_ci: tuple[float, float]
    median: float
    median_ci: tuple[float, float]
    median_ci_coverage: float
    n_censored: int
    median_censored: bool
    high_censored: bool

    def as_row(self, scale: float = 1.0) -> dict:
        """Flat columns for a table, radii divided by ``scale`` (e.g. the pattern length)."""
        return {
            "n_patterns": self.n_patterns,
            "n_fixed": self.n_fixed,
            "fixed_share": self.fixed_share,
            "fixed_share_low": self.fixed_share_ci[0],
            "fixed_share_high": self.fixed_share_ci[1],
            "median": self.median / scale,
            "median_low": self.median_ci[0] / scale,
            "median_high": self.median_ci[1] / scale,
            "median_ci_coverage": self.median_ci_coverage,
            "n_censored": self.n_censored,
            "median_censored": self.median_censored,
            "high_censored": self.high_censored,
        }


def median_order_interval(n: int, confidence: float = 0.95) -> tuple[int, int, float]:
    """1-based ranks ``(j, n + 1 - j)`` of the order statistics that bracket the median of ``n`` values, and the
    interval's coverage ``1 - 2 P(Bin(n, 1/2) < j)`` (distribution-free; e.g. Conover 1999, Sec. 3.2): ``j`` is the
    largest rank with coverage >= ``confidence``, or 1 (the whole range) when no rank reaches it."""
    from scipy.stats import binom

    check_float("confidence", confidence, minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    if n < 1:
        raise ValueError(f"n: expected at least 1 value, got {n}")
    tail = binom.cdf(np.arange(0, (n + 1) // 2), n, 0.5)  # P(Bin < j) for j = 1 .. ceil(n / 2)
    ok = np.nonzero(tail <= (1.0 - confidence) / 2.0)[0]
    j = int(ok[-1]) + 1 if ok.size else 1
    return j, n + 1 - j, float(1.0 - 2.0 * tail[j - 1])


def fixed_point_radius(
    radius: np.ndarray | torch.Tensor | Iterable[int],
    censored: np.ndarray | torch.Tensor | Iterable[bool] | None = None,
    confidence: float = 0.95,
) -> FixedPointRadius:
    """Summarise per-pattern basin radii (``-1``: not a fixed point) as ``FixedPointRadius``; ``censored``: per
    pattern, whether its radius is at the search limit (a lower bound)."""
    r = _as_array("radius", radius).ravel()
    if r.size == 0:
        raise ValueError("radius: expected at least one pattern's radius, got none")
    if np.any(r < -1) or np.any(r != np.floor(r)):
        raise ValueError("radius: expected integers >= -1 (-1: not a fixed point)")
    c = np.zeros(r.shape, bool) if censored is None else _as_array("censored", censored).ravel().astype(bool)
    if c.shape != r.shape:
        raise ValueError(f"censored: expected one flag per radius ({r.size}), got {c.size}")
    fixed = r >= 0
    k = int(fixed.sum())
    lo, hi = wilson_interval(k, r.size, confidence)
    nan = float("nan")
    med, ci, cov, med_c, hi_c = nan, (nan, nan), nan, False, False
    if k:
        order = np.lexsort((c[fixed], r[fixed]))  # by radius, censored last among ties
        v, vc = r[fixed][order], c[fixed][order]
        med = float(np.median(v))
        mid = [(k - 1) // 2, k // 2]
        med_c = bool(vc[mid].any())
        j, j_hi, cov = median_order_interval(k, confidence)
        ci = (float(v[j - 1]), float(v[j_hi - 1]))
        hi_c = bool(vc[j_hi - 1])
    return FixedPointRadius(
        r.size, k, k / r.size, (float(lo), float(hi)), med, ci, cov, int(c[fixed].sum()), med_c, hi_c
    )


def fixed_point_radius_table(
    df: pd.DataFrame, by: Sequence[str], *, length: str | float | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """``fixed_point_radius`` per group of a per-pattern table (columns ``radius``, optionally ``censored``), the
    patterns of every replicate in a group pooled; ``length``: a column (or a number) to divide the radii by.
    One row per group: the ``by`` columns and ``FixedPointRadius.as_row``."""
    by = list(by)
    missing = [b for b in by + ["radius"] + ([length] if isinstance(length, str) else []) if b not in df.columns]
    if missing:
        raise ValueError(f"by: expected columns of the table, missing {missing}")
    rows = []
    for key, g in df.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        scale = 1.0 if length is None else float(g[length].iloc[0] if isinstance(length, str) else length)
        s = fixed_point_radius(g["radius"], g["censored"] if "censored" in g else None, confidence)
        rows.append({**dict(zip(by, key)), **s.as_row(scale)})
    return pd.DataFrame(rows)
