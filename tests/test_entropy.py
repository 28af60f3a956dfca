import math

import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from amtheory.backends.classical import ClassicalHopfield
from amtheory.backends.dense import DenseAM
from amtheory.core.entropy import conditional_entropy, entropy_from_probs
from amtheory.core.patterns import iid_patterns

torch.set_num_threads(1)


class _Fixed:
    """A stand-in memory whose conditionals are given probabilities; records the keyword arguments it gets."""

    def __init__(self, probs_LV):
        self.probs = probs_LV
        self.calls = []

    def conditionals(self, x, **kwargs):
        self.calls.append((x.shape[0], kwargs))
        return self.probs.expand(x.shape[0], *self.probs.shape)


def test_uniform_conditionals_give_log_v():
    V, L = 7, 5
    mem = _Fixed(torch.full((L, V), 1.0 / V))
    x = torch.zeros(3, L, dtype=torch.long)
    H = conditional_entropy(mem, x)
    assert H.shape == (3, L) and H.dtype == torch.float32
    torch.testing.assert_close(H, torch.full((3, L), math.log(V)))


def test_dense_at_zero_beta_is_uniform():
    g = torch.Generator().manual_seed(0)
    X = iid_patterns(4, 6, vocab_size=5, generator=g)
    mem = DenseAM("exp", beta=0.0).store(X, vocab_size=5)
    H = conditional_entropy(mem, iid_patterns(3, 6, vocab_size=5, generator=g))
    torch.testing.assert_close(H, torch.full((3, 6), math.log(5)))


def test_stored_pattern_large_beta_near_zero_entropy():
    g = torch.Generator().manual_seed(1)
    X = iid_patterns(3, 20, vocab_size=4, generator=g)
    mem = DenseAM("exp", beta=25.0).store(X, vocab_size=4)
    H = conditional_entropy(mem, X)
    assert H.shape == (3, 20)
    assert float(H.max()) < 1e-6
    heb = ClassicalHopfield("hebbian").store(X[:, :], vocab_size=4)
    Hc = conditional_entropy(heb, X, beta=200.0)
    assert float(Hc.max()) < 1e-6
    # Away from the memories at moderate beta the entropy is finite: the probe separates the two.
    far = iid_patterns(3, 20, vocab_size=4, generator=g)
    assert float(conditional_entropy(DenseAM("exp", beta=0.5).store(X, vocab_size=4), far).mean()) > 0.1


def test_matches_scipy_and_handles_zeros():
    g = torch.Generator().manual_seed(2)
    p = torch.rand(4, 6, generator=g, dtype=torch.float64)
    p[0, :3] = 0.0  # 0 log 0 = 0
    p = p / p.sum(-1, keepdim=True)
    ref = torch.tensor([scipy_entropy(row.numpy()) for row in p])
    torch.testing.assert_close(entropy_from_probs(p), ref)
    onehot = torch.zeros(2, 3)
    onehot[:, 1] = 1.0
    assert entropy_from_probs(onehot).tolist() == [0.0, 0.0]


def test_batches_and_kwargs():
    g = torch.Generator().manual_seed(3)
    X = iid_patterns(5, 8, vocab_size=3, generator=g)
    mem = DenseAM("exp", beta=1.0).store(X, vocab_size=3)
    q = iid_patterns(10, 8, vocab_size=3, generator=g)
    whole = conditional_entropy(mem, q, beta=0.5)
    torch.testing.assert_close(conditional_entropy(mem, q, beta=0.5, batch_size=3), whole)
    # A denoiser-style call: no beta, a time argument forwarded as is.
    fake = _Fixed(torch.full((8, 3), 1.0 / 3))
    conditional_entropy(fake, q, beta=None, conditionals_kwargs={"t": 1e-5}, batch_size=4)
    assert [c[0] for c in fake.calls] == [4, 4, 2]
    assert all(c[1] == {"t": 1e-5} for c in fake.calls)


def test_bad_input():
    mem = _Fixed(torch.full((4, 2), 0.5))
    x = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="conditionals_kwargs"):
        conditional_entropy(mem, x, beta=1.0, conditionals_kwargs={"beta": 2.0})
    with pytest.raises(TypeError, match="sequences"):
        conditional_entropy(mem, x.float())
    with pytest.raises(ValueError, match="batch_size"):
        conditional_entropy(mem, x, batch_size=0)
    with pytest.raises(ValueError, match="memory"):
        conditional_entropy(_Fixed(torch.full((3, 2), 0.5)), x)
    with pytest.raises(TypeError, match="memory"):
        conditional_entropy(object(), x)
