"""Exact basins by enumeration: the map, its attractors, basin sizes, and bad input."""

import math

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.backends.classical import ClassicalHopfield, hopfield_from_weights
from amtheory.core.dynamics import Async, Sync, retrieve
from amtheory.core.exact import MAX_LENGTH, exact_basins
from amtheory.core.patterns import iid_patterns, stored_and_unseen
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import patterns, seeds, sizes, symmetric_weights

torch.set_num_threads(1)

FAST = property_settings(max_examples=50)


def _memory(data, *, max_length=9):
    kind = data.draw(st.sampled_from(["hebbian", "storkey", "pseudoinverse", "random-w"]))
    x = data.draw(patterns(n_patterns=sizes(1, 4), length=sizes(3, max_length)))
    if kind == "random-w":
        return hopfield_from_weights(data.draw(symmetric_weights(x.shape[1])), x)
    return ClassicalHopfield(kind, zero_diagonal=data.draw(st.booleans()), form="weights").store(x)


@FAST
@given(data=st.data(), update=st.sampled_from(["sync", "async"]))
def test_images_are_one_step_of_retrieve(data, update):
    mem = _memory(data)
    eb = exact_basins(mem, update, chunk_size=37)  # an odd chunk size exercises the chunk boundaries
    x = eb.decode(np.arange(eb.n_states))
    one = retrieve(mem, x, update=update, order="sequential", max_steps=1).states
    assert np.array_equal(eb.encode(one), eb.images)


@FAST
@given(data=st.data(), update=st.sampled_from(["sync", "async"]))
def test_attractors_are_the_attracting_components_of_the_graph(data, update):
    mem = _memory(data)
    eb = exact_basins(mem, update)
    G = eb.graph
    assert G.number_of_nodes() == eb.n_states and G.number_of_edges() == eb.n_states
    assert {frozenset(c) for c in nx.attracting_components(G)} == {frozenset(a) for a in eb.attractors}
    for a in eb.attractors:
        assert a[0] == min(a), "an attractor starts at its representative"
        assert all(int(eb.images[a[i]]) == a[(i + 1) % len(a)] for i in range(len(a))), "not a cycle of the map"
    # final_state is invariant along orbits and lands on a representative.
    assert np.array_equal(eb.final_state[eb.images], eb.final_state)
    reps = {a[0] for a in eb.attractors}
    assert set(np.unique(eb.final_state).tolist()) == reps
    # Basin membership by graph reachability agrees on one attractor.
    a = eb.attractors[0]
    basin = nx.ancestors(G, a[0]) | set(a)
    assert basin == set(np.flatnonzero(eb.final_state == a[0]).tolist())


@FAST
@given(data=st.data())
def test_final_state_agrees_with_iterating_retrieve(data):
    mem = _memory(data, max_length=7)
    eb = exact_basins(mem, "sync")
    x = eb.decode(np.arange(eb.n_states))
    r = retrieve(mem, x, update="sync", max_steps=eb.n_states + 2)
    assert bool((r.converged | r.cycled).all())
    end = eb.encode(r.states)
    assert np.array_equal(eb.final_state[end], eb.final_state)
    # Converged queries stopped at a fixed point, which is its own representative.
    conv = r.converged.numpy()
    assert np.array_equal(end[conv], eb.final_state[conv])


@FAST
@given(data=st.data(), n_patterns=sizes(2, 5), length=sizes(4, 10))
def test_basin_sizes_add_up_to_all_states(data, n_patterns, length):
    # At L >= 4 there are 8 or more pairs of reversed states, enough for 5 distinct patterns.
    x, _ = stored_and_unseen(n_patterns, 0, length, generator=torch.Generator().manual_seed(data.draw(seeds())))
    mem = ClassicalHopfield("hebbian", zero_diagonal=data.draw(st.booleans())).store(x)
    eb = exact_basins(mem, data.draw(st.sampled_from(["sync", "async"])))
    assert int(eb.attractor_sizes.sum()) == 2**length
    pattern_fixed = {int(p) for p, f in zip(eb.pattern_states, eb.is_fixed_point) if f}
    other = sum(int(s) for a, s in zip(eb.attractors, eb.attractor_sizes) if a[0] not in pattern_fixed)
    assert int(eb.basin_sizes.sum()) + other == 2**length
    assert bool((eb.basin_sizes[torch.from_numpy(~eb.is_fixed_point)] == 0).all())
    # The exact success curve, weighted by the number of states at each distance, recounts each basin.
    curve = eb.success_curve()
    weights = np.array([math.comb(length, r) for r in range(length + 1)])
    assert np.allclose(curve @ weights, eb.basin_sizes.numpy())
    assert np.array_equal(curve[:, 0] == 1.0, eb.is_fixed_point)


@FAST
@given(data=st.data(), update=st.sampled_from(["sync", "async"]))
def test_spin_reversed_patterns_are_attractors_of_hebbian_nets(data, update):
    """Zero-diagonal Hebbian fields are odd, h(-s) = -h(s), so the map commutes with a global flip: the reversal
    of every stored fixed point is a fixed point with a basin of the same size."""
    x = data.draw(patterns(n_patterns=sizes(2, 4), length=sizes(4, 10)))
    mem = ClassicalHopfield("hebbian", form=data.draw(st.sampled_from(["weights", "patterns"]))).store(x)
    eb = exact_basins(mem, update)
    full = eb.n_states - 1
    assert np.array_equal(eb.images[full - np.arange(eb.n_states)], full - eb.images)
    attractor_size = dict(zip((a[0] for a in eb.attractors), eb.attractor_sizes.tolist()))
    for p, fixed, size in zip(eb.pattern_states, eb.is_fixed_point, eb.basin_sizes.tolist()):
        if not fixed:
            continue
        rev = full - int(p)
        assert int(eb.images[rev]) == rev, "the reversed pattern is not a fixed point"
        assert attractor_size[rev] == size, "the reversed pattern's basin differs in size"


def test_encode_decode_roundtrip_and_distance():
    x = torch.tensor([[1, 0, 1, 1, 0, 0]])
    mem = ClassicalHopfield().store(x)
    eb = exact_basins(mem)
    idx = np.arange(eb.n_states)
    assert np.array_equal(eb.encode(eb.decode(idx)), idx)
    assert eb.encode(x[0]) == int(eb.pattern_states[0])
    assert torch.equal(eb.decode(int(eb.pattern_states[0])), x[0])
    d = eb.distance(int(eb.pattern_states[0]))
    assert np.array_equal(d, (eb.decode(idx) != x[0]).sum(-1).numpy())


def test_dynamics_objects_select_the_same_maps():
    x = iid_patterns(2, 8, generator=torch.Generator().manual_seed(3))
    mem = ClassicalHopfield().store(x)
    assert np.array_equal(exact_basins(mem, Sync()).images, exact_basins(mem, "sync").images)
    assert np.array_equal(exact_basins(mem, Async(order="sequential")).images, exact_basins(mem, "async").images)


def test_largest_length_runs():
    x = iid_patterns(3, MAX_LENGTH, generator=torch.Generator().manual_seed(0))
    eb = exact_basins(ClassicalHopfield().store(x))
    assert int(eb.attractor_sizes.sum()) == 2**MAX_LENGTH


def test_bad_input():
    g = torch.Generator().manual_seed(0)
    long = ClassicalHopfield().store(iid_patterns(2, MAX_LENGTH + 1, generator=g))
    with pytest.raises(ValueError, match=rf"L <= {MAX_LENGTH}.*L = {MAX_LENGTH + 1}"):
        exact_basins(long)
    potts = ClassicalHopfield().store(iid_patterns(2, 6, vocab_size=3, generator=g), vocab_size=3)
    with pytest.raises(ValueError, match="vocab_size 2.*got vocab_size 3"):
        exact_basins(potts)
    mem = ClassicalHopfield().store(iid_patterns(2, 6, generator=g))
    for bad in ("glauber", Async(order="random"), Sync(beta=1.0), Async(beta=1.0, order="sequential")):
        with pytest.raises(ValueError, match="update"):
            exact_basins(mem, bad)
    with pytest.raises(TypeError, match="memory"):
        exact_basins(torch.zeros(3))
    with pytest.raises(ValueError, match="memory"):
        exact_basins(ClassicalHopfield())
    with pytest.raises(ValueError, match="chunk_size"):
        exact_basins(mem, chunk_size=0)
    eb = exact_basins(mem)
    for delta in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="delta"):
            eb.radius(delta)
    with pytest.raises(ValueError, match="index"):
        eb.decode(eb.n_states)
    with pytest.raises(ValueError, match="tokens"):
        eb.encode(torch.zeros(7, dtype=torch.long))
