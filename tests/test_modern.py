import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.backends.dense import DenseAM
from amtheory.backends.modern import ModernHopfield
from amtheory.core.dynamics import retrieve
from amtheory.core.patterns import iid_patterns
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import seeds, sizes

torch.set_num_threads(1)
SETTINGS = property_settings(max_examples=30)


def _memory(seed, K, L, V, **kw):
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(K, L, vocab_size=V, generator=g)
    return ModernHopfield(**kw).store(X, vocab_size=V), X, g


def _attention(mem, q):
    """Reference: one softmax-attention step with keys = values = X."""
    X = mem.X_.double()
    return torch.softmax(mem.beta * q.double() @ X.T, dim=-1) @ X


@SETTINGS
@given(
    seed=seeds(),
    K=sizes(2, 16),
    L=sizes(2, 8),
    V=st.sampled_from([2, 3]),
    beta=st.floats(0.05, 8.0),
    scale=st.floats(0.1, 3.0),
)
def test_update_never_raises_energy(seed, K, L, V, beta, scale):
    mem, X, g = _memory(seed, K, L, V, beta=beta, dtype=torch.float64)
    xi = scale * torch.randn(5, mem.width, generator=g, dtype=torch.float64)
    for _ in range(4):
        new = mem.continuous_step(xi)
        e0, e1 = mem.continuous_energy(xi), mem.continuous_energy(new)
        assert bool((e1 <= e0 + 1e-10 * (1 + e0.abs())).all()), (e0, e1)
        # Ramsauer et al. (2020), Lemma A1: 0 <= E <= 2 M^2 once the state is a convex combination of patterns.
        assert bool((e1 >= -1e-10).all()) and bool((e1 <= 2 * mem.max_norm_**2 + 1e-10).all())
        xi = new


@SETTINGS
@given(
    seed=seeds(),
    K=sizes(2, 16),
    L=sizes(2, 6),
    V=st.sampled_from([2, 4]),
    beta=st.floats(0.05, 20.0),
    chunk=st.one_of(st.none(), sizes(1, 17)),
)
def test_step_equals_softmax_attention(seed, K, L, V, beta, chunk):
    """The streamed online softmax (any chunk size, dividing K or not) is one attention step."""
    mem, X, g = _memory(seed, K, L, V, beta=beta, chunk_size=chunk, dtype=torch.float64)
    q = torch.randn(4, mem.width, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mem.continuous_step(q), _attention(mem, q), rtol=1e-10, atol=1e-10)


def test_float32_chunked_matches_torch_softmax():
    mem, X, g = _memory(0, 37, 16, 2, beta=0.3, chunk_size=8)
    q = torch.randn(6, mem.width, generator=g)
    ref = torch.softmax(0.3 * q @ mem.X_.T, dim=-1) @ mem.X_
    torch.testing.assert_close(mem.continuous_step(q), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mm", [torch.bfloat16, torch.float16])
def test_half_precision_matmuls_stay_close(mm):
    mem, X, g = _memory(1, 50, 8, 3, beta=0.5, chunk_size=16, matmul_dtype=mm)
    q = torch.randn(5, mem.width, generator=g)
    out = mem.continuous_step(q)
    assert out.dtype == torch.float32
    # Inputs rounded to 8 (bf16) or 11 (fp16) mantissa bits; logits and softmax statistics stay in float32.
    torch.testing.assert_close(out.double(), _attention(mem, q.double()), rtol=0, atol=3e-2)


def test_token_scores_are_the_continuous_step():
    for V in (2, 3):
        mem, X, g = _memory(2, 6, 5, V, beta=0.7)
        x = iid_patterns(4, 5, vocab_size=V, generator=g)
        u = mem.continuous_step(mem.embed(x)).view(4, 5, -1)
        expected = torch.cat([-u, u], -1) if V == 2 else u
        torch.testing.assert_close(mem.scores(x), expected)
        assert mem.embed(x).shape == (4, 5 * (1 if V == 2 else V))


def test_token_energy_is_scaled_exponential_dense_energy():
    """On tokens xi.xi = L, so E(x) = beta^-1 E_exp-DAM(x) + const; the Gibbs conditional of both then agree.

    The one-hot dot product is the agreement count m; the dense memory's centred similarity is (V m - L) / (V - 1),
    so its inverse temperature is beta (V - 1) / V for the same energy up to a constant."""
    mem, X, g = _memory(3, 5, 7, 3, beta=1.5)
    dam = DenseAM("exp", beta=1.5 * 2 / 3).store(X, vocab_size=3)
    x = iid_patterns(6, 7, vocab_size=3, generator=g)
    diff = mem.energy(x) - dam.energy(x) / 1.5
    torch.testing.assert_close(diff, diff[:1].expand_as(diff), rtol=0, atol=1e-9)
    torch.testing.assert_close(mem.conditionals(x, beta=1.5), dam.conditionals(x, beta=1.0))


def test_iterate_flags_per_query():
    mem, X, g = _memory(4, 4, 20, 2, beta=2.0)
    start = torch.cat([mem.embed(X[:2]), torch.zeros(1, mem.width)])
    r = mem.iterate(start, max_iter=50, tol=1e-6)
    # Stored patterns are fixed points at this beta (one step moves them by ~exp(-beta * separation)).
    torch.testing.assert_close(r.states[:2], mem.embed(X[:2]), rtol=0, atol=1e-5)
    assert r.converged.tolist() == [True, True, True]
    assert r.steps[:2].tolist() == [1, 1] and int(r.steps[2]) >= 1
    # From the origin every weight is 1/K: the first step lands on the pattern mean.
    one = mem.iterate(torch.zeros(1, mem.width), max_iter=1)
    torch.testing.assert_close(one.states[0], mem.X_.mean(0), rtol=0, atol=1e-6)
    assert not bool(one.converged[0])
    short = mem.iterate(torch.randn(3, mem.width, generator=g) * 0.05, max_iter=1, tol=0.0)
    assert short.steps.tolist() == [1, 1, 1] and not bool(short.converged.any())


def test_metastability_counts():
    mem, X, g = _memory(5, 10, 30, 2, beta=5.0)
    assert mem.metastability(mem.embed(X)).tolist() == [1] * 10
    flat = ModernHopfield(beta=1e-9).store(X, vocab_size=2)
    # Uniform weights: ceil(0.9 K) of them hold 90% of the mass.
    assert flat.metastability(flat.embed(X[:3])).tolist() == [9, 9, 9]
    assert flat.metastability(flat.embed(X[:1]), mass=0.5).tolist() == [5]


def test_retrieval_from_corrupted_tokens():
    mem, X, g = _memory(6, 8, 40, 4, beta=1.0)
    q = X.clone()
    q[:, :8] = (q[:, :8] + 1) % 4
    r = retrieve(mem, q, update="sync", max_steps=5)
    assert torch.equal(r.states, X)


def test_bad_input():
    mem, X, g = _memory(7, 3, 4, 2, beta=1.0)
    with pytest.raises(ValueError, match="xi_Bd"):
        mem.continuous_step(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="xi_Bd"):
        mem.continuous_energy(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="xi_Bd"):
        mem.iterate(torch.zeros(4))
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="beta"):
            ModernHopfield(beta=bad)
    with pytest.raises(ValueError, match="matmul_dtype"):
        ModernHopfield(matmul_dtype=torch.int8)
    with pytest.raises(ValueError, match="chunk_size"):
        ModernHopfield(chunk_size=0)
