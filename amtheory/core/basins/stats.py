"""Interval statistics of Monte Carlo estimates: the Wilson score interval of a success share and the bootstrap
interval of a median."""

from __future__ import annotations

from collections.abc import Iterable
from statistics import NormalDist

import numpy as np
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
