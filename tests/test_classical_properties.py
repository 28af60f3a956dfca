"""Attractor claims of classical Hopfield networks, checked on every W and pattern set hypothesis draws."""

import itertools

import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.backends.classical import ClassicalHopfield, hopfield_from_weights
from amtheory.core.dynamics import argmax_keep, retrieve
from amtheory.core.exact import exact_basins
from amtheory.core.theory import PSEUDOINVERSE_ALPHA
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import (
    linearly_independent_patterns,
    pattern_rank,
    patterns,
    seeds,
    sizes,
    symmetric_weights,
)

torch.set_num_threads(1)

FAST = property_settings(max_examples=60)


def _async_energy_trace(mem, x0: torch.Tensor, g: torch.Generator, sweeps: int = 3) -> torch.Tensor:
    """Energy after every single deterministic asynchronous update ``[T, B]`` (random order per sweep)."""
    f = mem.local_fields(x0)
    rows = torch.arange(x0.shape[0])
    trace = [mem.energy(f.x)]
    for _ in range(sweeps):
        perm = torch.rand(x0.shape, generator=g).argsort(-1)
        for k in range(x0.shape[1]):
            pos = perm[:, k]
            f.set(pos, argmax_keep(f.at(pos), f.x[rows, pos]))
            trace.append(mem.energy(f.x))
    return torch.stack(trace)


@FAST
@given(data=st.data(), n=sizes(3, 12), diagonal=st.sampled_from(["zero", "nonnegative"]))
def test_async_updates_never_raise_energy(data, n, diagonal):
    W = data.draw(symmetric_weights(n, zero_diagonal=diagonal == "zero", nonnegative_diagonal=True))
    x0 = data.draw(patterns(n_patterns=6, length=n))
    mem = hopfield_from_weights(W, x0[:1])
    g = torch.Generator().manual_seed(data.draw(seeds()))
    E = _async_energy_trace(mem, x0, g)
    rise = E[1:] - E[:-1]
    assert bool((rise <= 1e-9 * (1 + E[:-1].abs())).all()), f"energy rose by up to {float(rise.max())}"
    # The energy used is the quadratic form itself, so the check is not vacuous: recompute it independently.
    s = 2.0 * x0.double() - 1.0
    torch.testing.assert_close(E[0], -0.5 * torch.einsum("bi,ij,bj->b", s, W, s))


@FAST
@given(data=st.data(), n=sizes(3, 10), diagonal=st.sampled_from(["zero", "nonnegative", "any"]))
def test_sync_dynamics_on_symmetric_w_end_in_fixed_points_or_two_cycles(data, n, diagonal):
    """Goles et al. (1985): a synchronous threshold network with symmetric W (any diagonal) has only 1- and
    2-cycles; with a non-negative diagonal, asynchronous sweeps have only fixed points."""
    W = data.draw(symmetric_weights(n, zero_diagonal=diagonal == "zero", nonnegative_diagonal=diagonal != "any"))
    mem = hopfield_from_weights(W, data.draw(patterns(n_patterns=1, length=n)))
    eb = exact_basins(mem, "sync")
    lengths = [len(a) for a in eb.attractors]
    assert max(lengths) <= 2, f"a cycle of length {max(lengths)} under synchronous updates"
    # Each reported attractor really is a cycle of the update map.
    for a in eb.attractors:
        assert all(int(eb.images[a[i]]) == a[(i + 1) % len(a)] for i in range(len(a)))
    if diagonal != "any":
        eb_async = exact_basins(mem, "async")
        assert all(len(a) == 1 for a in eb_async.attractors), "asynchronous sweeps reached a cycle"


@FAST
@given(data=st.data(), vocab_zero_diagonal=st.sampled_from([(2, False), (3, False), (2, True)]))
def test_pseudoinverse_rule_stores_every_linearly_independent_set(data, vocab_zero_diagonal):
    """Projection rule (Personnaz et al. 1985; Kanter and Sompolinsky 1987): W xi = xi for every stored xi, up to
    K = PSEUDOINVERSE_ALPHA x the feature dimension L (V - 1).

    With the diagonal kept every pattern is a strict fixed point. With it removed the field at position i is
    ``(I - W_ii) xi_i``: for spins ``I - W_ii`` is a number in [0, 1], which can vanish (``W_ii = I`` when the unit
    vector lies in the patterns' span): then no other token scores higher, but the pattern's own score ties with the
    best up to rounding. For V > 2 it is a (V - 1) x (V - 1) block, positive semi-definite but not a multiple of the
    identity, which can turn the field towards another token (K = 11 patterns at L = 6, V = 3 do), so without the
    diagonal the claim is made for spins only.
    """
    vocab_size, zero_diagonal = vocab_zero_diagonal
    L = data.draw(sizes(3, 10))
    k_max = int(PSEUDOINVERSE_ALPHA * L * (vocab_size - 1))
    x = data.draw(linearly_independent_patterns(n_patterns=sizes(2, k_max), length=L, vocab_size=vocab_size))
    mem = ClassicalHopfield("pseudoinverse", zero_diagonal=zero_diagonal, dtype=torch.float64).store(
        x, vocab_size=vocab_size
    )
    s = mem.scores(x)  # [K, L, V]
    own = s.gather(-1, x.unsqueeze(-1)).squeeze(-1)
    margin = own - s.masked_fill(torch.nn.functional.one_hot(x, vocab_size).bool(), -torch.inf).max(-1).values
    assert float(margin.min()) >= -1e-9, f"another token scores higher by {-float(margin.min())}"
    if not zero_diagonal:
        assert float(margin.min()) > 0.5, "with the diagonal kept, the margin is that of xi itself"
        r = retrieve(mem, x, update="sync", max_steps=3)
        assert torch.equal(r.states, x) and bool(r.converged.all()) and int(r.steps.sum()) == 0
    elif float(margin.min()) > 1e-9:
        assert torch.equal(retrieve(mem, x, update="sync", max_steps=1).states, x)


@property_settings(max_examples=40)
@given(data=st.data(), n=sizes(3, 12), zero_diagonal=st.booleans(), form=st.sampled_from(["patterns", "weights"]))
def test_hebbian_single_pattern_corrects_fewer_than_half_flips_in_one_step(data, n, zero_diagonal, form):
    """One stored pattern, d flipped positions: ``h_i xi_i = (N - 2d - [zero diagonal] xi_i s_i) / N``, positive
    for d < N/2 except for the exact tie at d = (N - 1)/2 (N odd, zero diagonal) on unflipped positions, which the
    update keeps. The pattern form computes that tie exactly; the weights form sums rounded 1/N terms, which can
    break it, so there the claim is checked where no tie arises (d < (N - 1)/2)."""
    xi = data.draw(patterns(n_patterns=1, length=n))
    mem = ClassicalHopfield("hebbian", zero_diagonal=zero_diagonal, form=form).store(xi)
    eb = exact_basins(mem, "sync")
    p = eb.encode(xi[0])
    d = eb.distance(p)
    ties_possible = zero_diagonal and form == "weights"
    close = d < ((n - 1) / 2 if ties_possible else n / 2)
    assert bool((eb.images[close] == p).all()), "a state with fewer than N/2 flips was not restored in one step"
    # Cross-check the one-step map on those states with the public retrieve.
    states = eb.decode(torch.arange(eb.n_states)[torch.from_numpy(close)])
    one = retrieve(mem, states, max_steps=1).states
    assert bool((one == xi).all())
    # The bound is tight: N/2 flips or more (half the positions) are not all restored.
    far = (d >= n / 2) & (d < n)
    if far.any():
        assert not bool((eb.images[far] == p).all())


def test_hebbian_single_pattern_spot_check_against_formula():
    """The same claim by hand for N = 5: every one of the 16 states within distance 2 maps back."""
    xi = torch.tensor([[1, 0, 0, 1, 1]])
    mem = ClassicalHopfield("hebbian").store(xi)
    for flips in itertools.chain.from_iterable(itertools.combinations(range(5), d) for d in range(3)):
        q = xi.clone()
        q[0, list(flips)] = 1 - q[0, list(flips)]
        assert torch.equal(retrieve(mem, q, max_steps=1).states, xi), f"flips {flips}"


@FAST
@given(data=st.data(), n=sizes(1, 10), zero_diagonal=st.booleans(), vocab_size=st.sampled_from([2, 3, 5]))
def test_strategies_build_what_they_promise(data, n, zero_diagonal, vocab_size):
    W = data.draw(symmetric_weights(n, zero_diagonal=zero_diagonal, nonnegative_diagonal=True))
    assert W.shape == (n, n) and torch.equal(W, W.T)
    assert bool((W.diagonal() == 0).all()) if zero_diagonal else bool((W.diagonal() >= 0).all())
    x = data.draw(linearly_independent_patterns(length=n, vocab_size=vocab_size))
    assert x.dtype == torch.long and x.shape[1] == n and 1 <= x.shape[0] <= n * (vocab_size - 1)
    assert pattern_rank(x, vocab_size) == x.shape[0]
