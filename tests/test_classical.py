import pytest
import torch

import amtheory as am
from amtheory.backends._exact_mm import digit_matmul, n_digits, split_digits
from amtheory.backends.classical import hopfield_from_weights, token_features
from amtheory.core.dynamics import argmax_keep


@pytest.mark.parametrize("zero_diagonal", [True, False])
@pytest.mark.parametrize("matmul", ["float32", "exact-bf16"])
def test_fused_binary_sync_equals_generic_argmax(zero_diagonal, matmul):
    g = torch.Generator().manual_seed(0)
    X = am.iid_patterns(30, 100, generator=g)
    mem = am.ClassicalHopfield(form="patterns", zero_diagonal=zero_diagonal, matmul=matmul).store(X)
    q = am.corrupt(X.repeat(3, 1), vocab_size=2, n_changed=35, generator=g).states
    fused = mem.sync_update(q)
    generic = argmax_keep(mem.scores(q), q)
    assert torch.equal(fused, generic)
    # and the pattern form agrees with the explicit weight matrix
    w = am.ClassicalHopfield(form="weights", zero_diagonal=zero_diagonal).store(X)
    assert torch.equal(w.sync_update(q), fused)


def test_fused_path_keeps_token_on_zero_field():
    # Two orthogonal patterns of length 4: the field at a position can vanish; the update must then keep x_i.
    X = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0]])
    mem = am.ClassicalHopfield(form="patterns", zero_diagonal=False).store(X)
    q = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]])
    h = mem.fields(q)[..., 0]
    assert bool((h == 0).any()), "the example must contain a zero field"
    new = mem.sync_update(q)
    assert torch.equal(new[h == 0], q[h == 0])


def test_digit_split_round_trip_and_exact_product():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(-9000, 9001, (64, 48), generator=g).float()
    d = split_digits(a, n_digits(9000))
    assert float(d.abs().max()) <= 128
    assert torch.equal((d * 256.0 ** torch.arange(d.shape[0]).view(-1, 1, 1)).sum(0), a)
    b = (torch.randint(0, 2, (48, 32), generator=g) * 2 - 1).float()
    assert torch.equal(digit_matmul(a, b.to(torch.bfloat16), max_abs=9000), (a.double() @ b.double()).float())


def test_sync_two_cycle_is_flagged():
    W = torch.tensor([[0.0, -1.0], [-1.0, 0.0]])
    mem = hopfield_from_weights(W, torch.tensor([[1, 0]]))
    r = am.retrieve(mem, torch.tensor([[1, 1], [1, 0]]), update="sync", max_steps=10)
    assert r.cycled.tolist() == [True, False]
    assert r.converged.tolist() == [False, True]
    assert r.steps.tolist()[1] == 0


def test_async_converges_where_sync_cycles():
    W = torch.tensor([[0.0, -1.0], [-1.0, 0.0]])
    mem = hopfield_from_weights(W, torch.tensor([[1, 0]]))
    r = am.retrieve(mem, torch.tensor([[1, 1]]), update="async", order="sequential", max_steps=10)
    assert bool(r.converged.all()) and not bool(r.cycled.any())
    assert r.states[0, 0] != r.states[0, 1]


def test_stored_patterns_are_fixed_points_at_low_load():
    g = torch.Generator().manual_seed(2)
    for V in (2, 5):
        X = am.iid_patterns(3, 200, vocab_size=V, generator=g)
        for rule in ("hebbian", "storkey", "pseudoinverse"):
            mem = am.ClassicalHopfield(rule).store(X, vocab_size=V)
            r = am.retrieve(mem, X, max_steps=5)
            assert torch.equal(r.states, X), (V, rule)
            assert r.steps.tolist() == [0, 0, 0]


def test_potts_features_are_centred():
    phi = token_features(5)
    assert torch.allclose(phi.sum(0), torch.zeros(5), atol=1e-6)
    assert token_features(2).tolist() == [[-1.0], [1.0]]


def test_spin_reversal_symmetry_of_hebbian_energy():
    g = torch.Generator().manual_seed(3)
    X = am.iid_patterns(4, 30, generator=g)
    mem = am.ClassicalHopfield().store(X)
    x = am.iid_patterns(5, 30, generator=g)
    torch.testing.assert_close(mem.energy(x), mem.energy(1 - x))


def test_memory_moves_between_devices_and_checks_query_device():
    # The meta device stands in for a second device on a machine with only a CPU.
    X = am.iid_patterns(2, 10, generator=torch.Generator().manual_seed(0))
    mem = am.ClassicalHopfield().store(X)
    assert mem.to("meta") is mem, "to() moves the memory in place"
    assert mem.device.type == "meta"
    assert all(v.device.type == "meta" for v in vars(mem).values() if isinstance(v, torch.Tensor))
    with pytest.raises(ValueError, match="queries: expected a tensor on the memory's device meta"):
        am.retrieve(mem, X)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rule": "oja"}, "rule"),
        ({"form": "dense"}, "form"),
        ({"rule": "storkey", "form": "patterns"}, "form"),
        ({"matmul": "fp8"}, "matmul"),
        ({"rule": "storkey", "matmul": "exact-bf16"}, "matmul"),
        ({"dtype": torch.float16}, "dtype"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        am.ClassicalHopfield(**kwargs)


def test_bad_store_and_queries():
    mem = am.ClassicalHopfield()
    with pytest.raises(am.NotStoredError):
        am.retrieve(mem, torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="patterns"):
        mem.store(torch.zeros(0, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"patterns: expected tokens in \[0, 2\)"):
        mem.store(torch.full((2, 4), 2, dtype=torch.long))
    with pytest.raises(TypeError, match="patterns"):
        mem.store(torch.zeros(2, 4))
    mem.store(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="queries: expected tokens in"):
        am.retrieve(mem, torch.full((1, 4), 3, dtype=torch.long))
    with pytest.raises(ValueError, match="update"):
        am.retrieve(mem, torch.zeros(1, 4, dtype=torch.long), update="parallel")
    with pytest.raises(ValueError, match="beta"):
        am.retrieve(mem, torch.zeros(1, 4, dtype=torch.long), beta=float("nan"))
    with pytest.raises(ValueError, match="beta"):
        am.retrieve(mem, torch.zeros(1, 4, dtype=torch.long), beta=-1.0)
    with pytest.raises(ValueError, match="vocab_size"):
        mem.store(torch.zeros(2, 4, dtype=torch.long), vocab_size=1)
    with pytest.raises(ValueError, match="weights"):
        hopfield_from_weights(torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.zeros(1, 2, dtype=torch.long))


def test_stochastic_dynamics_at_high_beta_match_deterministic_fixed_points():
    g = torch.Generator().manual_seed(4)
    X = am.iid_patterns(3, 60, generator=g)
    mem = am.ClassicalHopfield().store(X)
    r = am.retrieve(mem, X, update="async", beta=50.0, max_steps=3, generator=g)
    assert torch.equal(r.states, X)
    assert bool(r.converged.all())
