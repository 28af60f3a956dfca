import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.backends._dense_sync import _EXP_HEADROOM
from amtheory.backends.classical import ClassicalHopfield
from amtheory.backends.dense import _SPARSE_PER_TOKEN, DenseAM, similarity
from amtheory.core.corruption import corrupt
from amtheory.core.dynamics import argmax_keep, retrieve
from amtheory.core.interface import AssociativeMemory
from amtheory.core.patterns import iid_patterns
from amtheory.diffusion.schedule import beta_of_alpha
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import seeds, sizes

torch.set_num_threads(1)
SETTINGS = property_settings(max_examples=25)


def _setup(seed, K, L, V, B=6):
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(K, L, vocab_size=V, generator=g)
    q = iid_patterns(B, L, vocab_size=V, generator=g)
    return X, q


def _energies_by_token(mem, q, V):
    """E(x^{i<-a}) for every position and token, by brute force: [B, L, V]."""
    B, L = q.shape
    out = torch.empty(B, L, V, dtype=torch.float64)
    for i in range(L):
        for a in range(V):
            y = q.clone()
            y[:, i] = a
            out[:, i, a] = mem.energy(y)
    return out


@pytest.mark.parametrize("bad", [1, 0, -2])
def test_n_below_two_raises(bad):
    with pytest.raises(ValueError, match="n"):
        DenseAM("poly", n=bad)


def test_bad_parameters_raise():
    with pytest.raises(TypeError, match="n"):
        DenseAM("poly", n=2.5)
    for bad in (-0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="beta"):
            DenseAM("exp", beta=bad)
    with pytest.raises(ValueError, match="kind"):
        DenseAM("cubic")


@SETTINGS
@given(
    seed=seeds(),
    kind=st.sampled_from(["poly", "rectpoly", "exp"]),
    n=sizes(2, 5),
    V=st.sampled_from([2, 3, 5]),
    K=sizes(2, 6),
    L=sizes(3, 8),
)
def test_gibbs_scores_are_energy_differences(seed, kind, n, V, K, L):
    X, q = _setup(seed, K, L, V)
    mem = DenseAM(kind, n=n, beta=0.8).store(X, vocab_size=V)
    E = _energies_by_token(mem, q, V)
    g = mem.gibbs_scores(q)
    torch.testing.assert_close(g - g[..., :1], -(E - E[..., :1]), rtol=1e-9, atol=1e-9)
    # The update picks a token of lowest E (up to rounding: exact ties may break either way).
    chosen = argmax_keep(mem.scores(q), q)
    E_chosen = E.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
    assert bool((E_chosen <= E.amin(-1) + 1e-9 * (1 + E.abs().amax(-1))).all())


def test_large_n_poly_update_matches_exact_integers():
    """n = 80 at N = 40 overflows a naive float computation; the update must pick the token that exact integer
    arithmetic says lowers E, wherever float64 can tell the two apart at all (relative gap above 1e-12)."""
    g = torch.Generator().manual_seed(3)
    X = iid_patterns(7, 40, generator=g)
    q = corrupt(X, vocab_size=2, n_changed=12, generator=g).states
    n = 80
    mem = DenseAM("poly", n=n).store(X, vocab_size=2)
    s = mem.scores(q)
    assert bool(torch.isfinite(s).all())
    chosen = argmax_keep(s, q).tolist()
    sx = (2 * X - 1).tolist()
    resolvable = 0
    for b, row in enumerate((2 * q - 1).tolist()):
        for i in range(len(row)):
            vals = []  # -E_raw(x^{i<-a}) = sum_mu (xi_mu . s)^n, in Python ints: exact
            for spin in (-1, 1):
                y = list(row)
                y[i] = spin
                vals.append(sum(sum(a * c for a, c in zip(p, y)) ** n for p in sx))
            if abs(vals[0] - vals[1]) > 1e-12 * max(vals):
                resolvable += 1
                assert vals[chosen[b][i]] == max(vals), (b, i)
    assert resolvable > q.numel() // 2
    p = mem.conditionals(q, beta=1e-3)
    assert bool(torch.isfinite(p).all())


def test_large_beta_exp_is_finite():
    X, q = _setup(4, 9, 200, 3, B=5)
    mem = DenseAM("exp", beta=500.0).store(X, vocab_size=3)
    for t in (mem.scores(q), mem.gibbs_scores(q), mem.energy(q), mem.conditionals(q, beta=1.0)):
        assert bool(torch.isfinite(t).all())
    r = retrieve(mem, X, update="async", max_steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r.states, X)


def _no_tie_setup(seed):
    # N even and K odd: every off-diagonal field sum_mu xi_mu,i (m_mu - xi_mu,i s_i) is a sum of K odd numbers, so
    # never zero, and no tie-breaking convention enters the comparison.
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(5, 16, generator=g)
    q = iid_patterns(40, 16, generator=g)
    return X, q


@pytest.mark.parametrize("seed", [0, 1])
def test_poly2_equals_hebbian_zero_diagonal(seed):
    """sum_mu (xi_mu . s)^2 = N s^T W s with the diagonal term K constant, so the update at i is sign(sum_{j != i}
    W_ij s_j): the zero-diagonal Hebbian network, step by step, synchronous and asynchronous."""
    X, q = _no_tie_setup(seed)
    dam = DenseAM("poly", n=2).store(X, vocab_size=2)
    heb = ClassicalHopfield("hebbian", zero_diagonal=True, form="weights", dtype=torch.float64).store(X, vocab_size=2)
    for steps in (1, 2, 5, 30):
        for kw in ({"update": "sync"}, {"update": "async", "order": "sequential"}):
            a = retrieve(dam, q, max_steps=steps, **kw)
            b = retrieve(heb, q, max_steps=steps, **kw)
            assert torch.equal(a.states, b.states), (steps, kw)
            assert torch.equal(a.converged, b.converged) and torch.equal(a.cycled, b.cycled)
    # Energies: E_dam = 2 E_hebb - K; Gibbs conditionals: dam at beta equals hebbian at 2 beta.
    torch.testing.assert_close(dam.energy(q), 2 * heb.energy(q) - X.shape[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(dam.conditionals(q, beta=0.3), heb.conditionals(q, beta=0.6), rtol=1e-5, atol=1e-6)


def test_poly2_differs_from_hebbian_with_diagonal():
    """With self-couplings kept, the update sees + (K/N) s_i, which the dense energy does not: they must differ."""
    X, q = _no_tie_setup(0)
    dam = DenseAM("poly", n=2).store(X, vocab_size=2)
    diag = ClassicalHopfield("hebbian", zero_diagonal=False, form="weights", dtype=torch.float64).store(X, vocab_size=2)
    a = retrieve(dam, q, update="sync", max_steps=1).states
    b = retrieve(diag, q, update="sync", max_steps=1).states
    assert not torch.equal(a, b)


def _pattern_posterior_bruteforce(X, q, V, b):
    """q_i(v) ∝ sum_mu 1(xi_mu,i = v) exp(b m_mu^{-i}), with explicit loops."""
    B, L = q.shape
    Xl, ql = X.tolist(), q.tolist()
    out = torch.zeros(B, L, V, dtype=torch.float64)
    for bb in range(B):
        for i in range(L):
            w = [0.0] * V
            for row in Xl:
                m = sum(int(row[j] == ql[bb][j]) for j in range(L) if j != i)
                w[row[i]] += math.exp(b * m)
            out[bb, i] = torch.tensor(w, dtype=torch.float64) / sum(w)
    return out


@SETTINGS
@given(
    seed=seeds(),
    V=sizes(2, 5),
    K=sizes(2, 8),
    L=sizes(2, 8),
    beta=st.one_of(st.just(0.0), st.floats(0.05, 4.0)),
)
def test_exp_conditional_is_noised_pattern_posterior(seed, V, K, L, beta):
    """p(x_i = v | rest) = alpha q_i(v) + (1 - alpha)/V exactly, with q_i the stored-set posterior from the other
    positions and b = log(1 + V alpha / (1 - alpha)) with b = beta V / (V - 1) on agreement counts."""
    X, q = _setup(seed, K, L, V, B=4)
    q[0] = X[seed % K]  # one query at a stored pattern
    mem = DenseAM("exp", beta=beta).store(X, vocab_size=V)
    b = beta * V / (V - 1)
    qi = _pattern_posterior_bruteforce(X, q, V, b)
    torch.testing.assert_close(mem.pattern_conditionals(q), qi, rtol=1e-12, atol=1e-12)
    alpha = mem.noise_level()
    if beta > 0:
        assert beta_of_alpha(alpha, V) == pytest.approx(b, rel=1e-12)
    else:
        assert alpha == 0.0, "beta = 0: the conditional is the uniform law, all noise"
    p = torch.softmax(mem.gibbs_scores(q), dim=-1)  # conditionals at beta_gibbs = 1, in float64
    torch.testing.assert_close(p, alpha * qi + (1 - alpha) / V, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mem.conditionals(q, beta=1.0), (alpha * qi + (1 - alpha) / V).float())


def test_bridge_helpers_need_exp_kind():
    X, q = _setup(0, 3, 5, 3)
    mem = DenseAM("poly", n=3).store(X, vocab_size=3)
    with pytest.raises(TypeError, match="exp"):
        mem.pattern_conditionals(q)
    with pytest.raises(TypeError, match="exp"):
        mem.noise_level()


def test_stored_patterns_are_fixed_points_at_low_load():
    X, _ = _setup(5, 4, 30, 3)
    for mem in (DenseAM("poly", n=3), DenseAM("rectpoly", n=4), DenseAM("exp", beta=1.0)):
        mem.store(X, vocab_size=3)
        r = retrieve(mem, X, update="sync", max_steps=2)
        assert torch.equal(r.states, X) and bool(r.converged.all()), mem


# ---- the synchronous step for spins as matrix products -------------------------------------------------------------
def _generic_step(mem, x):
    """The base class's step: argmax of the full ``scores``, keeping the current token on a tie."""
    return AssociativeMemory.sync_update(mem, x)


def _exact_poly_field(X, q, n):
    """``f_i = sum_mu (h_mu + xi_mu,i)^n - (h_mu - xi_mu,i)^n`` in int64 from the definition: ``[B, L]``."""
    xi = (2 * X - 1).long()  # [K, L]
    s = (2 * q - 1).long()  # [B, L]
    h = (s @ xi.T).unsqueeze(1) - xi.T.unsqueeze(0) * s.unsqueeze(-1)  # [B, L, K]
    return ((h + xi.T) ** n - (h - xi.T) ** n).sum(-1)


@SETTINGS
@given(
    seed=seeds(),
    n=sizes(2, 5),
    K=sizes(2, 9),
    L=sizes(3, 12),
    flips=sizes(0, 6),
)
def test_poly_sync_fast_path_is_exact(seed, n, K, L, flips):
    """Fast path = sign of the exact integer field (ties keep the token), and = the generic step wherever the field
    is nonzero (an integer >= 1 against float64 rounding of relative size 1e-16 * K (L + 2)^n: unambiguous)."""
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(K, L, generator=g)
    q = corrupt(X[torch.arange(12) % K], vocab_size=2, n_changed=min(flips, L), generator=g).states
    mem = DenseAM("poly", n=n).store(X, vocab_size=2)
    assert mem.sync_path() == "poly"
    fast = mem.sync_update(q)
    f = _exact_poly_field(X, q, n)
    expected = torch.where(f > 0, 1, torch.where(f < 0, 0, q))
    assert torch.equal(fast, expected)
    generic = _generic_step(mem, q)
    assert torch.equal(fast[f != 0], generic[f != 0])


def test_poly_sync_ties_keep_the_current_token():
    """Small even K makes exact zero fields common; the fast path must keep the token at every one of them."""
    g = torch.Generator().manual_seed(2)
    for n, L in ((2, 10), (3, 10), (4, 11)):
        X = iid_patterns(4, L, generator=g)
        q = iid_patterns(200, L, generator=g)
        mem = DenseAM("poly", n=n).store(X, vocab_size=2)
        f = _exact_poly_field(X, q, n)
        ties = f == 0
        assert int(ties.sum()) > 20, n
        fast = mem.sync_update(q)
        assert torch.equal(fast[ties], q[ties])
        assert torch.equal(fast[~ties], (f[~ties] > 0).long())


def _unambiguous(scores, rel=1e-9):
    """Positions where the two tokens' generic scores differ by more than float64 rounding can blur."""
    gap = (scores[..., 1] - scores[..., 0]).abs()
    return gap > rel * (1 + scores.abs().amax(-1))


@SETTINGS
@given(
    seed=seeds(),
    beta=st.sampled_from([0.01, 0.3, 1.0, 4.0, 40.0, 300.0]),
    K=sizes(2, 9),
    L=sizes(3, 12),
    flips=sizes(0, 6),
)
def test_exp_sync_fast_path_matches_generic(seed, beta, K, L, flips):
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(K, L, generator=g)
    q = corrupt(X[torch.arange(12) % K], vocab_size=2, n_changed=min(flips, L), generator=g).states
    q[-4:] = iid_patterns(4, L, generator=g)
    mem = DenseAM("exp", beta=beta).store(X, vocab_size=2)
    assert mem.sync_path() == "exp"
    fast = mem.sync_update(q)
    ok = _unambiguous(mem.gibbs_scores(q))
    assert torch.equal(fast[ok], _generic_step(mem, q)[ok])
    # And against -E(x^{i<-a}) computed from the energy itself (independent of the score code).
    E = _energies_by_token(mem, q, 2)
    ok_E = ok & _unambiguous(-E)
    assert torch.equal(fast[ok_E], argmax_keep(-E, q)[ok_E])


def test_exp_sync_large_beta_needs_no_underflowed_terms():
    """At beta = 300, relative to the top pattern (overlap L) two patterns at overlap L - 2 carry e^{-600} each,
    and at overlap L - 4 e^{-1200}, below float64; flipping position 0, where they all disagree with the query,
    gives 2 e^{300 L} + e^{300 (L - 2)} > e^{300 L}: the fast path must see the flip."""
    L = 9
    top = torch.zeros(1, L, dtype=torch.long)
    a = top.clone()
    a[0, 0] = 1  # overlap L - 2, disagrees at position 0
    c = a.clone()
    c[0, 8] = 1  # overlap L - 4, disagrees at position 0
    X = torch.cat([top, a, a, c])
    mem = DenseAM("exp", beta=300.0).store(X, vocab_size=2)
    fast = mem.sync_update(top)
    assert fast[0, 0] == 1
    E = _energies_by_token(mem, top, 2)
    assert bool(E[0, 0, 1] < E[0, 0, 0])
    assert torch.equal(fast, _generic_step(mem, top))


def test_sync_paths_and_fallbacks():
    g = torch.Generator().manual_seed(0)
    X = iid_patterns(5, 40, generator=g)
    q = corrupt(X, vocab_size=2, n_changed=15, generator=g).states
    assert DenseAM("rectpoly", n=3).store(X).sync_path() == "rectpoly"
    assert DenseAM("rectpoly", n=80).store(X).sync_path() == "generic"  # 3 * 5 * 42^80 > 2^53
    assert DenseAM("poly", n=80).store(X).sync_path() == "generic"  # 5 * 42^80 > 2^53
    assert DenseAM("exp", beta=400.0).store(X).sync_path() == "generic"
    assert DenseAM("poly", n=3).store(iid_patterns(5, 6, vocab_size=3, generator=g), vocab_size=3).sync_path() == (
        "generic"
    )
    frozen = DenseAM("exp", beta=0.0).store(X)
    assert frozen.sync_path() == "frozen"
    assert torch.equal(frozen.sync_update(q), q)
    assert torch.equal(frozen.sync_update(q), _generic_step(frozen, q))  # constant energy: every token ties
    # The generic step lowers the energy at every position where float64 tells the tokens apart (poly at n = 80
    # cannot: test_large_n_poly_update_matches_exact_integers checks it in exact integers).
    for mem in (DenseAM("rectpoly", n=3), DenseAM("exp", beta=400.0)):
        mem.store(X)
        E = _energies_by_token(mem, q, 2)
        ok = _unambiguous(-E)
        assert int(ok.sum()) > q.numel() // 2
        assert torch.equal(mem.sync_update(q)[ok], argmax_keep(-E, q)[ok])
    with pytest.raises(ValueError, match="x"):
        DenseAM("poly", n=3).store(X).sync_update(torch.full((2, 40), 2))
    assert DenseAM("poly").sync_path() == "generic"


def test_exact_digit_product():
    """The bf16 digit split reproduces an integer product exactly in float64 far beyond float32's 2^24."""
    from amtheory.backends._exact_mm import digit_matmul

    g = torch.Generator().manual_seed(1)
    a = torch.randint(-(2**40), 2**40, (7, 30), generator=g).double()
    xi = (torch.randint(0, 2, (30, 11), generator=g) * 2 - 1).double()
    out = digit_matmul(a, xi.to(torch.bfloat16), max_abs=2**40, out_dtype=torch.float64)
    assert torch.equal(out, (a.long() @ xi.long()).double())


def test_generic_scores_are_chunked(monkeypatch):
    import amtheory.backends.dense as dense

    X, q = _setup(3, 6, 9, 3, B=10)
    mem = DenseAM("rectpoly", n=3).store(X, vocab_size=3)
    full = mem.scores(q)
    g_full = mem.gibbs_scores(q)
    monkeypatch.setattr(dense, "_SCORE_CHUNK_ELEMS", 3 * 9 * 6)  # 3 queries a chunk: 4 chunks, the last short
    torch.testing.assert_close(mem.scores(q), full, rtol=0, atol=0)
    torch.testing.assert_close(mem.gibbs_scores(q), g_full, rtol=0, atol=0)


@pytest.mark.parametrize("V", [2, 3, 7])
@pytest.mark.parametrize("beta", [0.0, 0.4, 3.0, 800.0])
def test_exponential_scores_from_token_sums_equal_the_per_position_scatter(V, beta):
    """The exponential kind's scores from one sum by token of its weights equal the [B, L, K] per-position
    log-sum-exp within float64 rounding, for spins and Potts tokens; at 800 the weights span more than the float64
    range and the per-position path is taken."""
    g = torch.Generator().manual_seed(V)
    X = torch.randint(0, V, (4 * V + 3, 14), generator=g)  # enough patterns per token for the sparse product
    x = torch.randint(0, V, (5, 14), generator=g)
    mem = DenseAM("exp", beta=beta).store(X, vocab_size=V)
    assert X.shape[0] >= _SPARSE_PER_TOKEN * V
    sim = similarity(x, X, V)
    wide = float((sim.amax(-1) - sim.amin(-1)).max()) * beta + beta * V / (V - 1) > _EXP_HEADROOM
    assert wide == (beta == 800.0)
    generic = torch.cat(mem._generic_scores(x, gibbs=False))
    torch.testing.assert_close(mem.scores(x), generic, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mem.gibbs_scores(x), generic, rtol=1e-12, atol=1e-12)
    assert torch.equal(mem.scores(x).argmax(-1), generic.argmax(-1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_exponential_scores_on_cuda_equal_the_cpu_scores():
    g = torch.Generator().manual_seed(9)
    X = torch.randint(0, 40, (200, 16), generator=g)  # 5 patterns per token: the sparse product
    x = torch.randint(0, 40, (7, 16), generator=g)
    cpu = DenseAM("exp", beta=1.0).store(X, vocab_size=40)
    gpu = DenseAM("exp", beta=1.0).store(X.cuda(), vocab_size=40)
    torch.testing.assert_close(gpu.scores(x.cuda()).cpu(), cpu.scores(x), rtol=1e-12, atol=1e-12)
    assert torch.equal(gpu.sync_update(x.cuda()).cpu(), cpu.sync_update(x))
