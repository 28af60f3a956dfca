"""Closed-form results on associative-memory capacity and basins, for comparison with measurements.

Every function cites its source; docs/theory.md collects the formulas with their sources. Loads are
``alpha = K / N`` for N binary units and K random (unbiased, i.i.d.) patterns; logarithms are natural.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.stats import norm

from amtheory.core._checks import check_float, check_int

#: Storage capacity of the Hebbian network with a small fraction of wrong bits (Amit, Gutfreund and Sompolinsky
#: 1985, Phys. Rev. Lett. 55, 1530; replica theory): about 1.6% of the bits are wrong just below it.
ALPHA_C: float = 0.138

#: Pseudo-inverse (projection) rule: any linearly independent set is a set of fixed points up to K = N
#: (Personnaz, Guyon and Dreyfus 1985; Kanter and Sompolinsky 1987, Phys. Rev. A 35, 380).
PSEUDOINVERSE_ALPHA: float = 1.0

#: Gardner bound: no coupling rule stores more than 2N random patterns as fixed points (Gardner 1988, J. Phys. A 21,
#: 257).
GARDNER_ALPHA: float = 2.0

#: Largest exponent of the exponential dense memory's capacity exp(alpha N): ln 2 / 2 (Demircigil, Heusel, Löwe,
#: Upgang and Vermet 2017, J. Stat. Phys. 168, 288).
EXP_ALPHA_MAX: float = math.log(2.0) / 2.0


def _check_n(N: object) -> int:
    return check_int("N", N, minimum=2)


def one_step_error(alpha: float) -> float:
    """Probability that one bit of a stored pattern flips in one Hebbian update, ``Phi(-1/sqrt(alpha))``.

    The crosstalk from the other ``K - 1`` patterns is Gaussian with variance ``alpha`` for large N (Hertz, Krogh
    and Palmer 1991, "Introduction to the Theory of Neural Computation", Sec. 2.2); 0.36% at alpha = 0.138.
    """
    alpha = check_float("alpha", alpha, minimum=0.0, strict_min=True)
    return float(norm.cdf(-1.0 / math.sqrt(alpha)))


def mceliece_capacity(N: int, *, all_fixed: bool = False) -> float:
    """Patterns storable with exact recall by the Hebbian rule: ``N / (2 ln N)``, or ``N / (4 ln N)`` when every
    stored pattern must be a fixed point (McEliece, Posner, Rodemich and Venkatesh 1987, IEEE Trans. Inf. Theory 33,
    461); 72 and 36 at N = 1000."""
    N = _check_n(N)
    return N / ((4.0 if all_fixed else 2.0) * math.log(N))


def storkey_capacity(N: int) -> float:
    """Capacity of the Storkey learning rule, about ``N / sqrt(2 ln N)`` (Storkey 1997, ICANN; Storkey and Valabregue
    1999, Neural Networks 12, 869)."""
    N = _check_n(N)
    return N / math.sqrt(2.0 * math.log(N))


def double_factorial(k: int) -> int:
    """``k!! = k (k - 2) (k - 4) ...`` down to 1 or 2, with ``(-1)!! = 0!! = 1``."""
    check_int("k", k, minimum=-1)
    out = 1
    while k > 1:
        out *= k
        k -= 2
    return out


def dense_poly_capacity(N: int, n: int) -> float:
    """Error-free capacity of the polynomial dense memory ``F(x) = x^n``: ``N^(n-1) / (2 (2n - 3)!! ln N)``.

    Krotov and Hopfield 2016 (NeurIPS, "Dense associative memory for pattern recognition"), Sec. 2; for n = 2 it is
    McEliece's ``N / (2 ln N)``. On a log-log plot against N the slope tends to ``n - 1`` (see
    ``dense_poly_loglog_slope``).
    """
    N = _check_n(N)
    check_int("n", n, minimum=2)
    return N ** (n - 1) / (2.0 * double_factorial(2 * n - 3) * math.log(N))


def dense_poly_loglog_slope(N: int, n: int) -> float:
    """Local slope ``d log K / d log N`` of ``dense_poly_capacity``: ``n - 1 - 1 / ln N`` (tends to ``n - 1``)."""
    N = _check_n(N)
    check_int("n", n, minimum=2)
    return (n - 1) - 1.0 / math.log(N)


def exp_capacity(N: int, alpha: float) -> float:
    """Capacity ``exp(alpha N)`` of the exponential dense memory ``F(x) = exp(x)``, valid for
    ``alpha < ln 2 / 2`` (Demircigil et al. 2017, J. Stat. Phys. 168, 288, Theorem 3)."""
    N = _check_n(N)
    alpha = check_float("alpha", alpha, minimum=0.0, maximum=EXP_ALPHA_MAX, strict_max=True)
    return math.exp(alpha * N)


def binary_rate(x: float) -> float:
    """``I(x) = 1/2 [(1 + x) ln(1 + x) + (1 - x) ln(1 - x)]`` for ``x`` in [-1, 1] (nats; ``0 ln 0 = 0``).

    ``I(1 - 2 rho) = ln 2 - H(rho)`` with ``H`` the binary entropy in nats: the large-deviation rate of a random
    spin vector's overlap ``x``.
    """
    x = check_float("x", x, minimum=-1.0, maximum=1.0)

    def xlogx(u: float) -> float:
        return u * math.log(u) if u > 0 else 0.0

    return 0.5 * (xlogx(1.0 + x) + xlogx(1.0 - x))


def exp_basin_load(rho: float) -> float:
    """Largest load exponent ``alpha`` at which the exponential memory still corrects a fraction ``rho`` of flipped
    bits: ``alpha(rho) = I(1 - 2 rho) / 2 = (ln 2 - H(rho)) / 2`` (natural logarithms).

    Demircigil et al. 2017 (J. Stat. Phys. 168, 288, Theorem 4). Checked against the reference points: rho = 0.10
    at alpha = 0.184, 0.20 at 0.0964, 0.30 at 0.0411; rho = 0 gives the capacity bound ln 2 / 2, rho = 1/2 gives 0.
    """
    rho = check_float("rho", rho, minimum=0.0, maximum=0.5)
    return binary_rate(1.0 - 2.0 * rho) / 2.0


def exp_basin_radius(alpha: float) -> float:
    """The inverse of ``exp_basin_load``: the flipped-bit fraction ``rho*`` still corrected at load exponent
    ``alpha`` in ``[0, ln 2 / 2]`` (Demircigil et al. 2017)."""
    alpha = check_float("alpha", alpha, minimum=0.0, maximum=EXP_ALPHA_MAX)
    if alpha >= EXP_ALPHA_MAX:
        return 0.0
    if alpha <= 0.0:
        return 0.5
    return float(brentq(lambda r: exp_basin_load(r) - alpha, 0.0, 0.5, xtol=1e-14))


#: Largest load exponent at which a typical pattern of the exponential memory is still retrieved: ln 2 (Lucibello
#: and Mézard 2024, Phys. Rev. Lett. 132, 077301).
EXP_TYPICAL_ALPHA_MAX: float = math.log(2.0)


def exp_typical_basin_radius(alpha: float) -> float:
    """The flipped-bit fraction ``rho`` a typical pattern of the exponential memory still corrects at load exponent
    ``alpha = ln K / N`` in ``[0, ln 2]``: the root of ``I(1 - 2 rho) = alpha`` (Lucibello and Mézard 2024), twice the
    rate of the all-patterns bound ``exp_basin_radius`` (Demircigil et al. 2017). A median radius over patterns is a
    typical pattern's and compares with this curve."""
    alpha = check_float("alpha", alpha, minimum=0.0, maximum=EXP_TYPICAL_ALPHA_MAX)
    return exp_basin_radius(alpha / 2.0)
