"""Basins of attraction by Monte Carlo: the recovery curve and the basin radius.

Both are written on ``corrupt`` and ``retrieve`` alone, so they run unchanged for every backend and every
``Dynamics`` (synchronous, asynchronous, Glauber, or a reverse-diffusion sampler).

* Recovery curve: at each corruption level, corrupt every target ``n_trials`` times, retrieve, and record the
  per-trial metrics of ``amtheory.core.metrics.retrieval_records`` (share of corrupted tokens restored, share of clean
  tokens broken, exact match, overlap, outcome). This is the paper's "basin size" at a fixed noise level
  (Pham et al. 2026, arXiv 2604.26841).
* Basin radius: for pattern ``xi``, the success curve ``s(r) = P(retrieve(corrupt(xi, r)) == xi)`` over the number
  ``r`` of changed tokens (exact-count corruption: a fixed Hamming distance). The radius at tolerance ``delta`` is

      R(xi) = max { r : s(r') >= 1 - delta for every r' <= r },

  the first-passage radius. ``R = -1`` when ``xi`` itself is not retrieved (``s(0) < 1 - delta``: not a fixed
  point of the dynamics). Success means the same pattern, never another memory or a spin-reversed copy.

How ``basin_radius`` finds R (each "round" is one batched ``retrieve`` over all patterns and trials):

1. Bracket: evaluate r = 0 and r = ``max_radius`` for every pattern. Failure at 0 gives R = -1. Success at
   ``max_radius`` means no failure was seen in range; the radius is censored at ``max_radius``.
2. Bisection on ``[lo, hi]`` with ``lo`` passing and ``hi`` failing, all patterns in one round per halving
   (``ceil(log2(max_radius))`` rounds). It ends at a ``lo`` that passes with ``lo + 1`` failing.
3. Scan (``scan=True``, the default): because ``s(r)`` need not be monotone, every level below ``lo`` that the
   bisection skipped is evaluated, in one more round. R is then exactly the first-passage radius of the estimated
   curve: one less than the first failing level. With ``scan=False`` R is the bisection answer, a radius at which
   the pattern passes with the next level failing, but levels below it are not all checked.

``monotone_violations`` counts, per pattern, the evaluated levels above R that pass: non-zero means the estimated
curve came back above threshold after its first failure (for V = 2 this happens near r = L, where queries
approach the spin-reversed pattern; there it counts as failure anyway).

A level passes when the Monte Carlo estimate ``n_success / n_trials >= 1 - delta`` (``criterion="estimate"``), or,
more conservatively, when the lower end of its Wilson score interval is (``criterion="wilson"``). Every evaluated
(pattern, r) comes back in ``BasinRadius.success`` with its Wilson interval (Wilson 1927).
"""

from __future__ import annotations

from amtheory.core.basins.radius import BasinRadius, basin_radius
from amtheory.core.basins.recovery import recovery_curve
from amtheory.core.basins.stats import (
    RADIUS_CONVENTION,
    FixedPointRadius,
    fixed_point_radius,
    fixed_point_radius_table,
    median_order_interval,
    wilson_interval,
)

__all__ = [
    "RADIUS_CONVENTION",
    "BasinRadius",
    "FixedPointRadius",
    "fixed_point_radius",
    "fixed_point_radius_table",
    "median_order_interval",
    "basin_radius",
    "recovery_curve",
    "wilson_interval",
]
