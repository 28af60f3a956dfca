"""The memorizing denoiser: its posterior against brute-force Bayes and its t -> 0 limit (the conformance suite runs
over it as the registered case "empirical-denoiser", in test_conformance.py)."""

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory import NotStoredError, retrieve
from amtheory.core.token_sums import TokenSums
from amtheory.diffusion import empirical
from amtheory.diffusion.empirical import _BAND, EmpiricalDenoiser
from amtheory.diffusion.schedule import alpha, beta_of_t
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import seeds, sizes

torch.set_num_threads(1)


def brute_force_marginals(patterns, x_t, t, V):
    """Enumerate x_0 over the stored set with the product kernel prod_i [a 1(x_t,i = x_0,i) + (1 - a)/V]."""
    a = float(alpha(t))
    K, L = patterns.shape
    out = torch.zeros(L, V, dtype=torch.float64)
    w = torch.zeros(K, dtype=torch.float64)
    for mu in range(K):
        w[mu] = torch.prod(a * (x_t == patterns[mu]).double() + (1.0 - a) / V)
    w = w / w.sum()
    for mu in range(K):
        out[torch.arange(L), patterns[mu]] += w[mu]
    return out, w


@pytest.mark.parametrize("t", [1e-3, 0.1, 0.5, 0.9, 1.0])
def test_posterior_equals_brute_force(t):
    g = torch.Generator().manual_seed(3)
    V, L, K = 3, 5, 6
    P = torch.randint(0, V, (K, L), generator=g)
    P[5] = P[0]  # a duplicate counts twice in the empirical distribution
    mem = EmpiricalDenoiser().store(P, vocab_size=V)
    x = torch.randint(0, V, (7, L), generator=g)
    lp = mem.log_posterior(x, t)
    lw = mem.pattern_log_posterior(x, t)
    assert lp.shape == (7, L, V) and lp.dtype == torch.float64
    for b in range(x.shape[0]):
        ref, w = brute_force_marginals(P, x[b], t, V)
        torch.testing.assert_close(lp[b].exp(), ref, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(lw[b].exp(), w, rtol=1e-9, atol=1e-12)


@property_settings(max_examples=25)
@given(
    seed=seeds(),
    V=sizes(2, 5),
    L=sizes(2, 8),
    K=sizes(2, 9),
    chunk=sizes(1, 10),
    t=st.floats(1e-4, 1.0),
    duplicate=st.booleans(),
)
def test_posterior_brute_force_property(seed, V, L, K, chunk, t, duplicate):
    """The posterior over x_0 of the stored set, any set (duplicates counting twice), time and chunking, by sparse
    sums (K >= V) or chunked scatters (K < V), is Bayes' rule by enumeration."""
    g = torch.Generator().manual_seed(seed)
    P = torch.randint(0, V, (K, L), generator=g)
    if duplicate:
        P[-1] = P[0]
    x = torch.randint(0, V, (3, L), generator=g)
    mem = EmpiricalDenoiser(chunk_size=chunk).store(P, vocab_size=V)
    lp, lw = mem.log_posterior(x, t), mem.pattern_log_posterior(x, t)
    for b in range(3):
        ref, w = brute_force_marginals(P, x[b], t, V)
        torch.testing.assert_close(lp[b].exp(), ref, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(lw[b].exp(), w, rtol=1e-8, atol=1e-12)
    # Tokens no stored pattern carries at a position have probability exactly zero.
    carried = torch.zeros(L, V, dtype=torch.bool)
    carried[torch.arange(L).repeat(K), P.reshape(-1)] = True
    assert bool(torch.isneginf(lp[:, ~carried]).all()) and bool(torch.isfinite(lp[:, carried]).all())


def test_per_query_times_match_scalar_times():
    g = torch.Generator().manual_seed(0)
    P = torch.randint(0, 5, (4, 9), generator=g)
    mem = EmpiricalDenoiser().store(P, vocab_size=5)
    x = torch.randint(0, 5, (3, 9), generator=g)
    ts = torch.tensor([0.05, 0.4, 1.0])
    both = mem.log_posterior(x, ts)
    for b in range(3):
        torch.testing.assert_close(both[b], mem.log_posterior(x[b : b + 1], float(ts[b]))[0])


def test_small_t_returns_the_nearest_pattern():
    g = torch.Generator().manual_seed(1)
    V, L, K = 6, 24, 5
    P = torch.randint(0, V, (K, L), generator=g)
    mem = EmpiricalDenoiser(t_eval=1e-5).store(P, vocab_size=V)
    # Change 5 tokens of each pattern: its nearest stored pattern is itself (others agree on about L / V).
    q = P.clone()
    q[:, :5] = (q[:, :5] + 1) % V
    d = (q[:, None, :] != P[None]).sum(-1)
    nearest = d.argmin(-1)
    assert bool((d.sort(-1).values[:, 0] < d.sort(-1).values[:, 1]).all()), "nearest pattern must be unique"
    assert torch.equal(mem.scores(q).argmax(-1), P[nearest])
    r = retrieve(mem, q, update="sync", max_steps=5)
    assert torch.equal(r.states, P[nearest]) and bool(r.converged.all())


def test_chunking_does_not_change_the_result():
    g = torch.Generator().manual_seed(2)
    P = torch.randint(0, 16, (11, 7), generator=g)  # fewer patterns than tokens: the chunked scatter
    x = torch.randint(0, 16, (5, 7), generator=g)
    a = EmpiricalDenoiser(chunk_size=1).store(P, vocab_size=16)
    b = EmpiricalDenoiser(chunk_size=1000).store(P, vocab_size=16)
    assert not a._sparse()
    torch.testing.assert_close(a.log_posterior(x, 0.3), b.log_posterior(x, 0.3), rtol=1e-12, atol=0.0)


def test_conditionals_temper_the_posterior():
    g = torch.Generator().manual_seed(4)
    P = torch.randint(0, 3, (4, 6), generator=g)
    mem = EmpiricalDenoiser().store(P, vocab_size=3)
    x = torch.randint(0, 3, (2, 6), generator=g)
    torch.testing.assert_close(mem.conditionals(x, t=0.4), mem.log_posterior(x, 0.4).exp().float())
    assert torch.allclose(mem.conditionals(x, beta=0.0, t=0.4), torch.full((2, 6, 3), 1 / 3))
    sharp = mem.conditionals(x, beta=3.0, t=0.4).double()
    ref = torch.softmax(3.0 * mem.log_posterior(x, 0.4).clamp_min(-1e300), -1)
    torch.testing.assert_close(sharp, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad_t", [0.0, -0.1, 1.5, float("nan"), torch.tensor([0.2, 0.0]), torch.tensor([0.2, 2.0])])
def test_times_outside_the_unit_interval_are_rejected(bad_t):
    mem = EmpiricalDenoiser().store(torch.zeros(2, 4, dtype=torch.long), vocab_size=3)
    with pytest.raises(ValueError, match="t_B"):
        mem.log_posterior(torch.zeros(2, 4, dtype=torch.long), bad_t)


def test_other_bad_input():
    mem = EmpiricalDenoiser()
    with pytest.raises(NotStoredError):
        mem.log_posterior(torch.zeros(1, 3, dtype=torch.long), 0.5)
    mem.store(torch.zeros(2, 4, dtype=torch.long), vocab_size=3)
    with pytest.raises(ValueError, match="t_B"):
        mem.log_posterior(torch.zeros(2, 4, dtype=torch.long), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(TypeError, match="t_B"):
        mem.log_posterior(torch.zeros(2, 4, dtype=torch.long), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="x_t_BL"):
        mem.log_posterior(torch.full((2, 4), 3), 0.5)
    with pytest.raises(ValueError, match="t_eval"):
        EmpiricalDenoiser(t_eval=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        EmpiricalDenoiser(chunk_size=0)
    with pytest.raises(ValueError, match="t"):
        mem.conditionals(torch.zeros(1, 4, dtype=torch.long), t=2.0)


def test_exact_zero_tokens_stay_finite_under_tempering():
    # Position 0 carries only token 0 in the stored set: tokens 1 and 2 have log p = -inf there.
    P = torch.tensor([[0, 1, 2], [0, 2, 1]])
    mem = EmpiricalDenoiser().store(P, vocab_size=3)
    p = mem.conditionals(torch.tensor([[1, 1, 1]]), beta=0.0)
    assert bool(torch.isfinite(p).all()) and torch.allclose(p, torch.full_like(p, 1 / 3))


def test_all_stored_patterns_are_fixed_points_of_the_sync_map():
    V, L = 4, 10
    P = torch.tensor(list(itertools.islice(itertools.product(range(V), repeat=L), 0, 40 * 997, 997)))
    mem = EmpiricalDenoiser().store(P, vocab_size=V)
    r = retrieve(mem, P, update="sync", max_steps=3)
    assert torch.equal(r.states, P) and bool(r.converged.all()) and int(r.steps.sum()) == 0


def log_space_marginals(patterns, x_t, t, V):
    """``log p(x_0,i = v | x_t)`` by enumeration in log space: exact at any inverse temperature."""
    beta = float(beta_of_t(torch.tensor([float(t)], dtype=torch.float64), V)[0])
    z = beta * (x_t[None, :] == patterns).sum(-1).double()  # [K]
    out = torch.full((patterns.shape[1], V), float("-inf"), dtype=torch.float64)
    for i in range(patterns.shape[1]):
        for v in range(V):
            held = patterns[:, i] == v
            if bool(held.any()):
                out[i, v] = torch.logsumexp(z[held], 0) - torch.logsumexp(z, 0)
    return out


@pytest.mark.parametrize("sparse", [True, False])
def test_a_batch_of_narrow_and_wide_weight_spreads_matches_log_space_bayes(sparse, monkeypatch):
    """Rows whose pattern weights fit one band of float64 and rows whose weights span several (tiny t) in one
    batch, each equal to Bayes' rule taken in logs, the -700s included: by the sparse sums by token (banded) and by
    the log-space scatter (fewer patterns than tokens)."""
    monkeypatch.setattr(empirical, "_SPARSE_PER_TOKEN", 0.0 if sparse else math.inf)
    g = torch.Generator().manual_seed(7)
    V, L, K = 4, 12, 9
    P = torch.randint(0, V, (K, L), generator=g)
    x = P[[0, 1, 2, 3]].clone()
    x[:, :3] = (x[:, :3] + 1) % V
    t = torch.tensor([1e-100, 0.3, 1e-200, 0.9], dtype=torch.float64)
    mem = EmpiricalDenoiser().store(P, vocab_size=V)
    assert mem._sparse() == sparse
    m = mem.agreements(x).double()
    spread = beta_of_t(t, V) * (m.amax(-1) - m.amin(-1))
    assert bool((spread[[0, 2]] > 2 * _BAND).all()) and bool((spread[[1, 3]] <= _BAND).all()), spread
    lp = mem.log_posterior(x, t)
    for b in range(4):
        ref = log_space_marginals(P, x[b], float(t[b]), V)
        assert torch.equal(torch.isneginf(lp[b]), torch.isneginf(ref))
        finite = torch.isfinite(ref)
        if b in (0, 2):  # log-probabilities below what a float64 sum in linear space can hold
            assert float(ref[finite].min()) < -700.0
        torch.testing.assert_close(lp[b][finite], ref[finite], rtol=1e-12, atol=1e-9)


def test_token_sums_equal_the_scatter_over_patterns():
    """``T[b, i, v] = sum of w[b, mu] over the patterns with token v at position i``, duplicates counted, zero
    where no pattern holds the token; the wrong number of weights is an error naming them."""
    g = torch.Generator().manual_seed(5)
    V, L, K, B = 6, 5, 13, 4
    P = torch.randint(0, V - 1, (K, L), generator=g)  # token V - 1 is held by no pattern
    P[-1] = P[0]
    w = torch.rand(B, K, generator=g, dtype=torch.float64)
    ref = torch.zeros(B, L, V, dtype=torch.float64)
    for b in range(B):
        for mu in range(K):
            ref[b, torch.arange(L), P[mu]] += w[b, mu]
    out = TokenSums(P, V)(w)
    torch.testing.assert_close(out, ref, rtol=1e-14, atol=0.0)
    assert bool((out[..., V - 1] == 0).all())
    with pytest.raises(ValueError, match="w_BK"):
        TokenSums(P, V)(w[:, :-1])
    with pytest.raises(TypeError, match="patterns_KL"):
        TokenSums(P.double(), V)


@pytest.mark.parametrize("V, L", [(5, 7), (40_000, 3), (3, 40_000)])
def test_agreement_counts_equal_the_positionwise_comparison(V, L):
    """Counts in int16 (int32 for long patterns), tokens compared in the narrowest type that holds them: the same
    as comparing every position, for a vocabulary beyond int16 and patterns longer than int16 counts."""
    g = torch.Generator().manual_seed(L)
    P = torch.randint(0, V, (6, L), generator=g)
    x = torch.cat([P[:2], torch.randint(0, V, (3, L), generator=g)])
    m = TokenSums(P, V).agreements(x)
    assert torch.equal(m.long(), (x[:, None, :] == P[None]).sum(-1))
    assert m.dtype == (torch.int32 if L >= 2**15 else torch.int16)
    with pytest.raises(ValueError, match="x_BL"):
        TokenSums(P, V).agreements(x[:, :-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_posterior_on_cuda_equals_the_cpu_posterior_on_both_paths():
    g = torch.Generator().manual_seed(8)
    V, L, K = 50, 16, 300
    P = torch.randint(0, V, (K, L), generator=g)
    x = P[:6].clone()
    x[:, :4] = (x[:, :4] + 1) % V
    t = torch.tensor([1e-100, 0.02, 0.3, 1e-200, 0.9, 1.0], dtype=torch.float64)
    cpu = EmpiricalDenoiser().store(P, vocab_size=V).log_posterior(x, t)
    gpu = EmpiricalDenoiser().store(P.cuda(), vocab_size=V).log_posterior(x.cuda(), t.cuda()).cpu()
    assert torch.equal(torch.isneginf(cpu), torch.isneginf(gpu))
    torch.testing.assert_close(gpu[torch.isfinite(cpu)], cpu[torch.isfinite(cpu)], rtol=1e-12, atol=1e-9)
