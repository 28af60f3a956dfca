"""The rectified-polynomial dense memory's synchronous step for spins as matrix products: the sign of the exact
integer field, ties keeping the token, and the generic step wherever that field is nonzero."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.backends.dense import DenseAM
from amtheory.core.corruption import corrupt
from amtheory.core.interface import AssociativeMemory
from amtheory.core.patterns import iid_patterns
from amtheory.testing.profiles import property_settings

torch.set_num_threads(1)


def _exact_rectpoly_field(X, q, n):
    """``f_i = sum_mu R(h_mu + xi_mu,i) - R(h_mu - xi_mu,i)``, ``R(z) = max(z, 0)^n``, in int64 from the
    definition: ``[B, L]``."""
    xi = (2 * X - 1).long()  # [K, L]
    s = (2 * q - 1).long()  # [B, L]
    h = (s @ xi.T).unsqueeze(1) - xi.T.unsqueeze(0) * s.unsqueeze(-1)  # [B, L, K]
    return ((h + xi.T).clamp_min(0) ** n - (h - xi.T).clamp_min(0) ** n).sum(-1)


@property_settings(max_examples=40)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 6),
    K=st.integers(1, 9),
    L=st.integers(2, 14),
    flips=st.integers(0, 8),
)
def test_rectpoly_sync_is_the_exact_field_sign(seed, n, K, L, flips):
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(K, L, generator=g)
    q = corrupt(X[torch.arange(12) % K], vocab_size=2, n_changed=min(flips, L), generator=g).states
    q[-3:] = iid_patterns(3, L, generator=g)
    mem = DenseAM("rectpoly", n=n).store(X, vocab_size=2)
    assert mem.sync_path() == "rectpoly"
    fast = mem.sync_update(q)
    f = _exact_rectpoly_field(X, q, n)
    assert torch.equal(fast, torch.where(f > 0, 1, torch.where(f < 0, 0, q)))
    generic = AssociativeMemory.sync_update(mem, q)
    assert torch.equal(fast[f != 0], generic[f != 0])


def test_rectpoly_sync_ties_keep_the_current_token():
    """Four patterns and random queries: exact zero fields are common (every overlap at most -2 gives R = 0 for
    all terms), and the step must keep the token at each of them."""
    g = torch.Generator().manual_seed(4)
    for n, L in ((2, 10), (3, 11), (5, 9)):
        X = iid_patterns(4, L, generator=g)
        q = iid_patterns(300, L, generator=g)
        mem = DenseAM("rectpoly", n=n).store(X, vocab_size=2)
        f = _exact_rectpoly_field(X, q, n)
        ties = f == 0
        assert int(ties.sum()) > 20, n
        fast = mem.sync_update(q)
        assert torch.equal(fast[ties], q[ties])
        assert torch.equal(fast[~ties], (f[~ties] > 0).long())


def test_rectpoly_sync_path_bounds():
    g = torch.Generator().manual_seed(0)
    X = iid_patterns(5, 40, generator=g)
    assert DenseAM("rectpoly", n=3).store(X).sync_path() == "rectpoly"
    # 3 K (N + 2)^n must stay below 2^53 for every intermediate to be an exact float64 integer.
    assert DenseAM("rectpoly", n=9).store(X).sync_path() == "rectpoly"  # 15 * 42^9 < 2^53
    assert DenseAM("rectpoly", n=10).store(X).sync_path() == "generic"  # 15 * 42^10 > 2^53
    assert DenseAM("rectpoly", n=3).store(iid_patterns(5, 6, vocab_size=3, generator=g), vocab_size=3).sync_path() == (
        "generic"
    )


class _GenericStep(DenseAM):
    """The same memory, always through the base class's step (argmax of the full scores)."""

    def sync_update(self, x):
        return AssociativeMemory.sync_update(self, x)


@pytest.mark.parametrize("n", [3, 10])
def test_rectpoly_retrieves_like_the_generic_step(n):
    """Whole retrievals on a moderately loaded N = 64 network end where the generic step's do (n = 3 takes the
    matrix-product step, n = 10 falls back to the generic one)."""
    from amtheory.core.dynamics import retrieve

    g = torch.Generator().manual_seed(9)
    X = iid_patterns(12, 64, generator=g)
    q = corrupt(X.repeat(4, 1), vocab_size=2, n_changed=20, generator=g).states
    mem = DenseAM("rectpoly", n=n).store(X, vocab_size=2)
    ref = _GenericStep("rectpoly", n=n).store(X, vocab_size=2)
    assert mem.sync_path() == ("rectpoly" if n == 3 else "generic")
    fast = retrieve(mem, q, update="sync", max_steps=20)
    slow = retrieve(ref, q, update="sync", max_steps=20)
    assert torch.equal(fast.states, slow.states) and torch.equal(fast.steps, slow.steps)
    assert bool((fast.states == X.repeat(4, 1)).all(-1).float().mean() > 0.5)
