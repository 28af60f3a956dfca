"""Recovery curve, basin radius and Wilson intervals, with the Monte Carlo radius held to exact enumeration."""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from amtheory.backends.classical import ClassicalHopfield
from amtheory.core.basins import basin_radius, recovery_curve, wilson_interval
from amtheory.core.corruption import corrupt
from amtheory.core.dynamics import Dynamics, RetrievalResult, Sync, retrieve
from amtheory.core.exact import exact_basins
from amtheory.core.metrics import OUTCOMES
from amtheory.core.patterns import iid_patterns, stored_and_unseen
from amtheory.testing.profiles import property_settings

torch.set_num_threads(1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---- Wilson interval ------------------------------------------------------------------------------------------


@property_settings(max_examples=60)
@given(n=st.integers(1, 500), frac=st.floats(0, 1), confidence=st.sampled_from([0.5, 0.9, 0.95, 0.999]))
def test_wilson_interval_matches_scipy(n, frac, confidence):
    k = round(frac * n)
    lo, hi = wilson_interval(k, n, confidence)
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_vectorized_and_narrows():
    k = np.array([0, 5, 10, 50])
    n = np.array([10, 10, 10, 100])
    lo, hi = wilson_interval(k, n, 0.95)
    for i in range(4):
        assert (lo[i], hi[i]) == pytest.approx(wilson_interval(int(k[i]), int(n[i]), 0.95))
    # Same proportion, more trials: a narrower interval; higher confidence: a wider one.
    assert hi[3] - lo[3] < hi[1] - lo[1]
    lo99, hi99 = wilson_interval(5, 10, 0.99)
    assert hi99 - lo99 > hi[1] - lo[1]
    lo_t, hi_t = wilson_interval(torch.tensor([3]), torch.tensor([4]), 0.9)
    assert lo_t.shape == (1,) and hi_t.shape == (1,)


@pytest.mark.parametrize(
    "args, match",
    [((5, 4, 0.95), "successes"), ((-1, 4, 0.95), "successes"), ((1, 0, 0.95), "trials"), ((1, 4, 1.0), "confidence")],
)
def test_wilson_interval_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(*args)


# ---- Recovery curve -------------------------------------------------------------------------------------------


def _hebbian(K=3, L=16, seed=0, V=2):
    x = iid_patterns(K, L, vocab_size=V, generator=_gen(seed))
    return ClassicalHopfield("hebbian").store(x, vocab_size=V), x


def test_recovery_curve_table_and_batching_equal_manual_calls():
    mem, x = _hebbian()
    levels, T = [0, 2, 5], 4
    df = recovery_curve(mem, x, levels=levels, n_trials=T, generator=_gen(7), stored=x)
    K, L = x.shape
    assert len(df) == K * len(levels) * T
    for col in (
        "target",
        "level",
        "trial",
        "mode",
        "recovered",
        "broken",
        "exact",
        "overlap",
        "fraction_changed",
        "outcome",
        "dynamics",
        "beta",
        "max_steps",
        "steps",
        "converged",
        "cycled",
    ):
        assert col in df.columns, col
    assert (df["mode"] == "count").all() and (df["dynamics"] == "sync").all()
    # Exact-count corruption: the changed fraction is level / L on every row.
    assert np.allclose(df["fraction_changed"], df["level"] / L)
    # The same draws by hand, one corrupt + retrieve per level over the trial-expanded batch.
    g = _gen(7)
    x0 = x.repeat_interleave(T, dim=0)
    for level in levels:
        c = corrupt(x0, vocab_size=2, n_changed=level, generator=g)
        r = retrieve(mem, c.states, generator=g)
        rows = df[df["level"] == level]
        assert np.array_equal(rows["exact"].to_numpy(), (r.states == x0).all(-1).numpy())
        assert np.array_equal(rows["target"].to_numpy(), np.repeat(np.arange(K), T))
        assert np.array_equal(rows["trial"].to_numpy(), np.tile(np.arange(T), K))
    # Level 0 leaves every stored fixed point where it is and labels it "target".
    clean = df[df["level"] == 0]
    fixed = (retrieve(mem, x).states == x).all(-1).numpy()
    assert np.array_equal(clean.groupby("target")["exact"].all().to_numpy(), fixed)
    assert set(clean["outcome"].astype(str)) <= set(OUTCOMES)
    assert ((clean["outcome"] == "target") == clean["exact"]).all()


def test_recovery_curve_outcomes_for_unseen_targets_and_bernoulli_mode():
    stored, unseen = stored_and_unseen(3, 2, 16, generator=_gen(1))
    mem = ClassicalHopfield("hebbian").store(stored)
    targets = torch.cat([stored[:1], unseen])
    df = recovery_curve(mem, targets, levels=[0.0, 0.3], mode="p", n_trials=8, generator=_gen(2), stored=stored)
    assert (df["mode"] == "p").all()
    # Row matching found the stored target; the unseen targets can never be labelled "target".
    assert not (df[df["target"] > 0]["outcome"] == "target").any()
    at0 = df[(df["level"] == 0.0) & (df["target"] == 0)]
    assert (at0["fraction_changed"] == 0).all()
    with pytest.raises(ValueError, match="target_index"):
        recovery_curve(mem, targets, levels=[1], n_trials=1, target_index=torch.zeros(3, dtype=torch.long))


@dataclass(frozen=True)
class SnapIfClose(Dynamics):
    """A deterministic test dynamics: return stored pattern 0 if the query's distance from it is in ``allowed``,
    else a state that differs from it everywhere. Counts calls and batch sizes to check batching."""

    allowed: frozenset
    calls: list

    def run(self, memory, queries, *, max_steps, generator):
        d = (queries != memory.patterns_[:1]).sum(-1)
        ok = torch.tensor([int(v) in self.allowed for v in d], dtype=torch.bool)
        away = (memory.patterns_[:1] + 1) % memory.vocab_size_
        states = torch.where(ok.unsqueeze(-1), memory.patterns_[:1], away).expand_as(queries).clone()
        self.calls.append(queries.shape[0])
        B = queries.shape[0]
        z = torch.zeros(B, dtype=torch.bool)
        return RetrievalResult(states, torch.zeros(B, dtype=torch.long), ~z, z, {"dynamics": "snap", "sampler": "x"})


def test_recovery_curve_accepts_any_dynamics_and_batches_per_level():
    mem, x = _hebbian(K=2, L=12)
    dyn = SnapIfClose(frozenset({0, 1, 2}), [])
    df = recovery_curve(mem, x[:1], levels=[1, 2, 3, 4], n_trials=5, update=dyn, generator=_gen(0))
    assert dyn.calls == [5, 5, 5, 5], "one retrieve call per level, all trials together"
    assert (df["sampler"] == "x").all() and (df["dynamics"] == "snap").all()
    assert np.array_equal(df.groupby("level")["exact"].all().to_numpy(), [True, True, False, False])
    with pytest.raises(ValueError, match="beta"):
        recovery_curve(mem, x, levels=[1], n_trials=1, update=dyn, beta=1.0)


# ---- Basin radius ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "K, L, zero_diagonal, seed",
    [(1, 9, True, 0), (2, 10, True, 1), (3, 10, False, 2), (2, 12, True, 3), (4, 11, True, 4), (2, 16, True, 5)],
)
def test_monte_carlo_radius_agrees_with_exact_enumeration(K, L, zero_diagonal, seed):
    """For deterministic sync dynamics, success at r is exactly the fraction of the C(L, r) states at distance r
    that end at the pattern. Every estimate's Wilson interval (at 99.99%) must contain it; and with the threshold
    1 - delta put in the widest gap between the exact curve's values, the estimated radius must equal the exact
    first-passage radius for every pattern."""
    x = iid_patterns(K, L, generator=_gen(seed))
    mem = ClassicalHopfield("hebbian", zero_diagonal=zero_diagonal, form="weights").store(x)
    exact = exact_basins(mem, "sync")
    curve = exact.success_curve()
    for delta in (0.1, 0.3):
        br = basin_radius(mem, x, delta=delta, n_trials=400, confidence=0.9999, generator=_gen(100 + seed))
        for row in br.success.itertuples():
            s = curve[row.pattern, row.r]
            assert row.wilson_low - 1e-12 <= s <= row.wilson_high + 1e-12, (
                f"pattern {row.pattern}, r = {row.r}: exact {s}, interval [{row.wilson_low}, {row.wilson_high}]"
            )
        # Near-threshold levels may go either way; where none was evaluated the radius must be exact.
        exact_r = exact.radius(delta)
        for k in range(K):
            evaluated = br.success["r"][br.success["pattern"] == k].to_numpy()
            if (np.abs(curve[k, evaluated] - (1 - delta)) > 0.095).all():
                assert int(br.per_pattern[k]) == int(exact_r[k])
    values = np.unique(np.concatenate([curve.ravel(), [0.0, 1.0]]))
    gaps = np.diff(values)
    i = int(gaps.argmax())
    # Pass/fail then agrees at every level (the gap is at least 4 sd of a 400-trial estimate on each side).
    assert gaps[i] > 0.19, "no clear threshold in this case"
    delta = 1.0 - (values[i] + values[i + 1]) / 2
    br = basin_radius(mem, x, delta=float(delta), n_trials=400, generator=_gen(200 + seed))
    assert torch.equal(br.per_pattern, exact.radius(float(delta)))


def test_radius_rule_on_a_non_monotone_success_curve():
    """Success only at distances {0..3, 5..7}: bisection alone lands on 7; the scan finds the failure at 4."""
    mem, x = _hebbian(K=2, L=12)
    allowed = frozenset({0, 1, 2, 3, 5, 6, 7})
    calls = []
    scanned = basin_radius(mem, x[:1], update=SnapIfClose(allowed, calls), n_trials=8, generator=_gen(0), n_boot=10)
    first_gap = min(set(range(13)) - allowed)
    assert int(scanned.per_pattern[0]) == first_gap - 1
    above = {r for r in scanned.success["r"] if r > first_gap - 1}
    assert int(scanned.monotone_violations[0]) == len(above & allowed) > 0
    assert scanned.scanned and not bool(scanned.censored[0])
    # Rounds: bracket + at most ceil(log2(L)) halvings + one scan, each one call holding whole trial batches.
    assert len(calls) <= 2 + math.ceil(math.log2(12)) and all(c % 8 == 0 for c in calls)

    plain = basin_radius(
        mem, x[:1], update=SnapIfClose(allowed, []), n_trials=8, generator=_gen(0), n_boot=10, scan=False
    )
    r = int(plain.per_pattern[0])
    tab = plain.success.set_index("r")
    assert r in allowed and bool(tab.loc[r, "passed"]) and not bool(tab.loc[r + 1, "passed"])
    assert not plain.scanned and int(plain.monotone_violations[0]) == 0

    everywhere = basin_radius(mem, x[:1], update=SnapIfClose(frozenset(range(13)), []), n_trials=4, n_boot=10)
    assert int(everywhere.per_pattern[0]) == 12 and bool(everywhere.censored[0])
    capped = basin_radius(mem, x[:1], update=SnapIfClose(frozenset(range(13)), []), n_trials=4, max_radius=5)
    assert int(capped.per_pattern[0]) == 5 and bool(capped.censored[0]) and capped.success["r"].max() == 5

    nowhere = basin_radius(mem, x[:1], update=SnapIfClose(frozenset({1, 2}), []), n_trials=4, n_boot=10)
    assert int(nowhere.per_pattern[0]) == -1 and set(nowhere.success["r"]) == {0, 12}


def test_wilson_criterion_is_more_conservative():
    mem, x = _hebbian(K=3, L=16, seed=5)
    kw = dict(delta=0.2, n_trials=32, n_boot=50)
    est = basin_radius(mem, x, generator=_gen(1), **kw)
    wil = basin_radius(mem, x, generator=_gen(1), criterion="wilson", **kw)
    assert bool((wil.per_pattern <= est.per_pattern).all())
    passed = wil.success[wil.success["passed"]]
    assert (passed["wilson_low"] >= 0.8).all()


def test_basin_radius_summary_frame_and_reproducibility():
    mem, x = _hebbian(K=3, L=40, seed=2)
    a = basin_radius(mem, x, n_trials=24, generator=_gen(9), n_boot=200)
    b = basin_radius(mem, x, n_trials=24, generator=_gen(9), n_boot=200)
    assert torch.equal(a.per_pattern, b.per_pattern) and a.median_ci == b.median_ci
    pd.testing.assert_frame_equal(a.success, b.success)
    assert a.per_pattern.dtype == torch.long and a.per_pattern.shape == (3,)
    assert torch.allclose(a.fraction, a.per_pattern.double() / 40)
    assert a.median == float(np.median(a.per_pattern.numpy()))
    lo, hi = a.median_ci
    assert a.per_pattern.min() <= lo <= hi <= a.per_pattern.max()
    df = a.to_frame()
    assert len(df) == 3 and np.array_equal(df["radius"], a.per_pattern.numpy())
    assert {"fraction", "censored", "monotone_violations", "delta", "n_trials", "dynamics"} <= set(df.columns)
    # The stored patterns of a lightly loaded Hebbian net are fixed points: every radius is at least 0.
    assert bool((a.per_pattern >= 0).all())
    # Split into batches, the same draws give the same counts.
    c = basin_radius(mem, x, n_trials=24, generator=_gen(9), n_boot=200, batch_size=50)
    assert torch.equal(a.per_pattern, c.per_pattern)


def test_basin_radius_with_stochastic_dynamics_runs():
    mem, x = _hebbian(K=2, L=12)
    br = basin_radius(mem, x, update=Sync(beta=50.0), n_trials=8, n_boot=20, generator=_gen(0), max_steps=20)
    assert br.info["beta"] == 50.0 and br.per_pattern.shape == (2,)
    br2 = basin_radius(mem, x, update="async", beta=50.0, n_trials=8, n_boot=20, generator=_gen(0), max_steps=20)
    assert br2.info["dynamics"] == "async"


def test_basin_radius_bad_input():
    mem, x = _hebbian(K=2, L=12)
    cases = [
        (dict(delta=0.0), ValueError, "delta"),
        (dict(delta=1.0), ValueError, "delta"),
        (dict(delta=1.5), ValueError, "delta"),
        (dict(n_trials=0), ValueError, "n_trials"),
        (dict(max_radius=13), ValueError, "max_radius"),
        (dict(confidence=1.0), ValueError, "confidence"),
        (dict(n_boot=0), ValueError, "n_boot"),
        (dict(criterion="lower"), ValueError, "criterion"),
        (dict(update="glauber"), ValueError, "update"),
        (dict(update=Sync(), beta=1.0), ValueError, "beta"),
        (dict(generator=0), TypeError, "generator"),
        (dict(batch_size=0), ValueError, "batch_size"),
    ]
    for kw, err, name in cases:
        with pytest.raises(err, match=name):
            basin_radius(mem, x, **{"n_trials": 2, **kw})
    for bad, err in ((x[:, :-1], ValueError), (x.float(), TypeError), (x + 1, ValueError), (x[:0], ValueError)):
        with pytest.raises(err, match="targets"):
            basin_radius(mem, bad, n_trials=2)
        with pytest.raises(err, match="targets"):
            recovery_curve(mem, bad, levels=[1], n_trials=2)
    with pytest.raises(TypeError, match="memory"):
        basin_radius(x, x)
    for kw, name in (
        (dict(levels=[]), "levels"),
        (dict(levels=[13]), "levels"),
        (dict(levels=[0.5]), "levels"),
        (dict(levels=[1], mode="x"), "mode"),
        (dict(levels=[2.0], mode="p"), "levels"),
    ):
        with pytest.raises((ValueError, TypeError), match=name):
            recovery_curve(mem, x, **{"n_trials": 2, **kw})


# ---- one convention for patterns that are not fixed points ------------------------------------------------------
def test_fixed_point_radius_leaves_non_fixed_points_out_of_the_median():
    from amtheory.core.basins import fixed_point_radius

    # Three of ten patterns are not fixed points (-1): the median is over the seven others, never below 0.
    radius = [-1, -1, -1, 4, 5, 5, 6, 6, 7, 9]
    s = fixed_point_radius(radius)
    assert (s.n_patterns, s.n_fixed) == (10, 7)
    assert s.fixed_share == pytest.approx(0.7)
    assert s.fixed_share_ci == pytest.approx(wilson_interval(7, 10))
    assert s.median == 6.0
    assert s.median_ci[0] <= s.median <= s.median_ci[1] and s.median_ci[0] >= 4
    # No pattern a fixed point: a share of 0 with its interval, no median (NaN), never a sentinel.
    none = fixed_point_radius([-1] * 8)
    assert none.n_fixed == 0 and none.fixed_share == 0.0 and none.fixed_share_ci[1] > 0
    assert np.isnan(none.median) and all(np.isnan(none.median_ci))


def test_fixed_point_radius_order_statistic_interval_covers():
    from amtheory.core.basins import fixed_point_radius

    # Distribution-free: the interval [x_(j), x_(n+1-j)] holds the population median with probability
    # 1 - 2 P(Bin(n, 1/2) < j) >= 0.95 (for discrete values too); check the reported coverage and the empirical one
    # on a skewed distribution of integer radii: geometric from 0, P(R <= k) = 1 - 0.9^(k + 1), median 6.
    rng = np.random.default_rng(0)
    true_median = 6
    hits = 0
    for _ in range(400):
        s = fixed_point_radius(rng.geometric(0.1, size=40) - 1)
        assert s.median_ci_coverage >= 0.95
        hits += s.median_ci[0] <= true_median <= s.median_ci[1]
    assert hits / 400 >= 0.93
    # Too few fixed points for 95%: the whole range, with the coverage it has.
    small = fixed_point_radius([1, 2, 3])
    assert small.median_ci == (1.0, 3.0) and small.median_ci_coverage == pytest.approx(0.75)


def test_fixed_point_radius_marks_censored_medians():
    from amtheory.core.basins import fixed_point_radius

    r = [2, 3, 8, 8, 8]
    s = fixed_point_radius(r, censored=[False, False, True, True, True])
    assert s.median == 8 and s.median_censored and s.n_censored == 3
    s = fixed_point_radius(r, censored=[False] * 5)
    assert not s.median_censored
    with pytest.raises(ValueError, match="censored"):
        fixed_point_radius(r, censored=[True, False])
    with pytest.raises(ValueError, match="radius"):
        fixed_point_radius([])
    with pytest.raises(ValueError, match="radius"):
        fixed_point_radius([-2, 3])


def test_fixed_point_radius_table_pools_replicates_per_group():
    from amtheory.core.basins import fixed_point_radius_table

    df = pd.DataFrame(
        {"backend": ["a"] * 6 + ["b"] * 2, "N": [10] * 8, "radius": [-1, 2, 4, -1, 6, 8, -1, -1],
         "censored": [False] * 5 + [True, False, False]}
    )  # fmt: skip
    t = fixed_point_radius_table(df, ["backend"], length="N").set_index("backend")
    assert t.loc["a", "n_fixed"] == 4 and t.loc["a", "fixed_share"] == pytest.approx(4 / 6)
    assert t.loc["a", "median"] == pytest.approx(0.5)  # median of 2, 4, 6, 8 over N = 10
    assert t.loc["a", "n_censored"] == 1
    assert t.loc["b", "n_fixed"] == 0 and np.isnan(t.loc["b", "median"])
    with pytest.raises(ValueError, match="by"):
        fixed_point_radius_table(df, ["missing"])
