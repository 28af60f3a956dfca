import math

import pytest

from amtheory.core import theory as T


def test_hebbian_numbers():
    # At the capacity alpha_c, about 0.36% of the bits flip in one update (Hertz, Krogh and Palmer 1991).
    assert T.one_step_error(T.ALPHA_C) == pytest.approx(0.0036, abs=0.00005)
    assert round(T.mceliece_capacity(1000)) == 72
    assert round(T.mceliece_capacity(1000, all_fixed=True)) == 36
    # No rule stores more than Gardner's bound; the projection rule stores more than the Hebbian one.
    assert T.ALPHA_C < T.PSEUDOINVERSE_ALPHA < T.GARDNER_ALPHA
    assert T.storkey_capacity(1000) == pytest.approx(1000 / math.sqrt(2 * math.log(1000)))
    assert T.storkey_capacity(1000) > T.mceliece_capacity(1000)
    # The one-step error rises with the load.
    assert T.one_step_error(0.05) < T.one_step_error(0.138) < T.one_step_error(0.5)


def test_dense_polynomial_capacity():
    assert [T.double_factorial(k) for k in (-1, 0, 1, 3, 5, 6)] == [1, 1, 1, 3, 15, 48]
    # n = 2 reduces to McEliece's N / (2 ln N).
    assert T.dense_poly_capacity(1000, 2) == pytest.approx(T.mceliece_capacity(1000))
    assert T.dense_poly_capacity(100, 3) == pytest.approx(100**2 / (2 * 3 * math.log(100)))
    for n in (2, 3, 4):
        a, b = 1e4, 1e5
        slope = math.log(T.dense_poly_capacity(int(b), n) / T.dense_poly_capacity(int(a), n)) / math.log(b / a)
        # The secant slope lies between the local slopes at its ends and tends to n - 1.
        assert T.dense_poly_loglog_slope(int(a), n) <= slope <= T.dense_poly_loglog_slope(int(b), n) < n - 1
        assert T.dense_poly_loglog_slope(10**300, n) == pytest.approx(n - 1, abs=2e-3)


def test_exponential_capacity_and_basins():
    assert T.exp_capacity(100, 0.2) == pytest.approx(math.exp(20))
    # The capacity formula holds strictly below the bound, which is the zero-radius end of the basin curve.
    assert T.exp_capacity(100, 0.9999 * T.EXP_ALPHA_MAX) == pytest.approx(math.exp(99.99 * T.EXP_ALPHA_MAX))
    with pytest.raises(ValueError, match="alpha"):
        T.exp_capacity(100, T.EXP_ALPHA_MAX)
    # Reference points: rho* = 0.10, 0.20, 0.30 at alpha ~ 0.184, 0.096, 0.041.
    for rho, alpha in ((0.10, 0.184), (0.20, 0.096), (0.30, 0.041)):
        assert T.exp_basin_load(rho) == pytest.approx(alpha, abs=1e-3)
        assert T.exp_basin_radius(T.exp_basin_load(rho)) == pytest.approx(rho, abs=1e-9)
    assert T.exp_basin_load(0.0) == pytest.approx(T.EXP_ALPHA_MAX)
    assert T.exp_basin_load(0.5) == 0.0
    # I(1 - 2 rho) = ln 2 - H(rho) in nats.
    rho = 0.17
    H = -rho * math.log(rho) - (1 - rho) * math.log(1 - rho)
    assert T.binary_rate(1 - 2 * rho) == pytest.approx(math.log(2) - H)


def test_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        T.one_step_error(0.0)
    with pytest.raises(ValueError, match="N"):
        T.mceliece_capacity(1)
    with pytest.raises(ValueError, match="n"):
        T.dense_poly_capacity(100, 1)
    with pytest.raises(ValueError, match="rho"):
        T.exp_basin_load(0.6)


def test_exp_typical_basin_radius_inverts_the_typical_pattern_curve():
    # A typical pattern (Lucibello and Mezard 2024): ln K / N = I(1 - 2 rho), twice the all-patterns rate.
    for rho in (0.05, 0.1, 0.2, 0.3, 0.45):
        alpha = T.binary_rate(1.0 - 2.0 * rho)
        assert T.exp_typical_basin_radius(alpha) == pytest.approx(rho, abs=1e-9)
        assert T.exp_typical_basin_radius(alpha / 2) > T.exp_basin_radius(alpha / 2)
    assert T.exp_typical_basin_radius(0.0) == 0.5
    assert T.exp_typical_basin_radius(math.log(2.0)) == 0.0
    # The worked example of docs/theory.md: N = 128, K = 512.
    assert T.exp_typical_basin_radius(math.log(512) / 128) == pytest.approx(0.35, abs=0.01)
    with pytest.raises(ValueError, match="alpha"):
        T.exp_typical_basin_radius(0.7)
