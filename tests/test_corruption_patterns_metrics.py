"""Corruption modes, pattern ensembles and retrieval metrics."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.core.corruption import corrupt
from amtheory.core.metrics import OUTCOMES, classify_outcome, overlap, records_to_frame, retrieval_records
from amtheory.core.patterns import (
    biased_binary,
    correlated_families,
    iid_patterns,
    spins_to_tokens,
    stored_and_unseen,
    tokens_to_spins,
)
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import patterns, seeds, sizes

torch.set_num_threads(1)

FAST = property_settings(max_examples=50)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---- corrupt ----------------------------------------------------------------------------------------------------


@FAST
@given(data=st.data(), vocab_size=st.sampled_from([2, 3, 7]), extra_dim=st.booleans())
def test_exact_count_changes_exactly_n_positions(data, vocab_size, extra_dim):
    x = data.draw(patterns(n_patterns=sizes(1, 6), length=sizes(1, 16), vocab_size=vocab_size))
    if extra_dim:
        x = torch.stack([x, x.flip(0)])  # [2, K, L]: any leading shape
    L = x.shape[-1]
    n = data.draw(sizes(0, L))
    seed = data.draw(seeds())
    c = corrupt(x, vocab_size=vocab_size, n_changed=n, generator=_gen(seed))
    assert c.states.shape == x.shape and c.states.dtype == torch.long
    assert bool(((c.states >= 0) & (c.states < vocab_size)).all())
    assert torch.equal(c.changed, c.states != x)
    assert bool((c.changed.sum(-1) == n).all()), "not exactly n positions changed"
    assert torch.allclose(c.fraction_changed, torch.full(x.shape[:-1], n / L))
    again = corrupt(x, vocab_size=vocab_size, n_changed=n, generator=_gen(seed))
    assert torch.equal(again.states, c.states), "same generator, different corruption"


@pytest.mark.parametrize("vocab_size", [2, 3, 7])
@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
def test_bernoulli_changed_fraction_is_p_times_one_minus_one_over_v(vocab_size, p):
    x = iid_patterns(2000, 50, vocab_size=vocab_size, generator=_gen(0))
    c = corrupt(x, vocab_size=vocab_size, p=p, generator=_gen(1))
    expected = p * (1 - 1 / vocab_size)
    # 100,000 positions: the standard error of the mean is below 0.0016; 0.01 is over 6 of them.
    assert abs(float(c.fraction_changed.mean()) - expected) < 0.01
    assert torch.equal(c.changed, c.states != x)


def test_bernoulli_at_zero_changes_nothing():
    x = iid_patterns(10, 20, vocab_size=5, generator=_gen(0))
    c = corrupt(x, vocab_size=5, p=0.0, generator=_gen(1))
    assert torch.equal(c.states, x) and not bool(c.changed.any())


def test_corrupt_bad_input():
    x = iid_patterns(3, 8, generator=_gen(0))
    with pytest.raises(ValueError, match="n_changed, p"):
        corrupt(x, vocab_size=2, n_changed=1, p=0.1)
    with pytest.raises(ValueError, match="n_changed, p"):
        corrupt(x, vocab_size=2)
    with pytest.raises(ValueError, match="n_changed"):
        corrupt(x, vocab_size=2, n_changed=9)
    with pytest.raises(ValueError, match="p"):
        corrupt(x, vocab_size=2, p=1.5)
    with pytest.raises(ValueError, match="patterns"):
        corrupt(x + 2, vocab_size=2, n_changed=1)
    with pytest.raises(ValueError, match="patterns"):
        corrupt(x - 1, vocab_size=2, n_changed=1)
    with pytest.raises(TypeError, match="patterns"):
        corrupt(x.float(), vocab_size=2, n_changed=1)
    with pytest.raises(TypeError, match="generator"):
        corrupt(x, vocab_size=2, n_changed=1, generator=1)


# ---- patterns ---------------------------------------------------------------------------------------------------


@FAST
@given(n=sizes(1, 6), length=sizes(1, 12), vocab_size=sizes(2, 9), seed=seeds())
def test_iid_patterns_shape_range_and_reproducibility(n, length, vocab_size, seed):
    x = iid_patterns(n, length, vocab_size=vocab_size, generator=_gen(seed))
    assert x.shape == (n, length) and x.dtype == torch.long
    assert bool(((x >= 0) & (x < vocab_size)).all())
    assert torch.equal(x, iid_patterns(n, length, vocab_size=vocab_size, generator=_gen(seed)))


@pytest.mark.parametrize("bias", [-0.6, 0.0, 0.3])
def test_biased_binary_mean_spin(bias):
    x = biased_binary(400, 100, bias=bias, generator=_gen(0))
    assert x.shape == (400, 100) and set(x.unique().tolist()) <= {0, 1}
    # 40,000 spins: the standard error of the mean spin is at most 0.005.
    assert abs(float(tokens_to_spins(x).mean()) - bias) < 0.03


def test_biased_binary_extremes_are_constant():
    assert bool((biased_binary(3, 7, bias=1.0, generator=_gen(0)) == 1).all())
    assert bool((biased_binary(3, 7, bias=-1.0, generator=_gen(0)) == 0).all())
    with pytest.raises(ValueError, match="bias"):
        biased_binary(3, 7, bias=1.5)


def test_correlated_families_shape_and_contiguity():
    x = correlated_families(4, 5, 30, vocab_size=3, p=0.0, generator=_gen(0))
    assert x.shape == (20, 30)
    fam = x.view(4, 5, 30)
    assert bool((fam == fam[:, :1]).all()), "with p = 0 every copy equals its prototype"
    y = correlated_families(4, 5, 30, vocab_size=3, p=0.2, generator=_gen(0))
    same = (y.view(4, 5, 30) == fam).double().mean()
    # Redrawn with probability 0.2 over 3 tokens: agreement with the prototype near 1 - 0.2 * 2/3.
    assert abs(float(same) - (1 - 0.2 * 2 / 3)) < 0.06


@FAST
@given(
    n_stored=sizes(1, 8),
    n_unseen=sizes(0, 8),
    length=sizes(4, 12),
    vocab_size=st.sampled_from([2, 3]),
    seed=seeds(),
)
def test_stored_and_unseen_are_disjoint(n_stored, n_unseen, length, vocab_size, seed):
    try:
        s, u = stored_and_unseen(n_stored, n_unseen, length, vocab_size=vocab_size, generator=_gen(seed))
    except ValueError as e:
        assert "length" in str(e)
        return
    assert s.shape == (n_stored, length) and u.shape == (n_unseen, length)
    both = torch.cat([s, u])
    eq = (both.unsqueeze(1) == both.unsqueeze(0)).all(-1)
    assert int(eq.sum()) == both.shape[0], "a pattern repeats"
    if vocab_size == 2:
        rev = ((1 - both).unsqueeze(1) == both.unsqueeze(0)).all(-1)
        assert not bool(rev.any()), "a spin-reversed copy is present"


def test_stored_and_unseen_too_short_raises():
    with pytest.raises(ValueError, match="length"):
        stored_and_unseen(5, 5, 2, generator=_gen(0), max_tries=5)


def test_spin_token_roundtrip():
    x = iid_patterns(4, 9, generator=_gen(0))
    s = tokens_to_spins(x)
    assert set(s.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(spins_to_tokens(s), x)
    with pytest.raises(ValueError, match="s"):
        spins_to_tokens(torch.tensor([0.0, 1.0]))


# ---- metrics ----------------------------------------------------------------------------------------------------


def test_metrics_on_hand_made_cases():
    stored = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]])
    target = stored[0]
    query = torch.tensor([0, 0, 1, 1, 0, 0])  # positions 0 and 1 corrupted
    finals = torch.stack(
        [
            target,  # retrieved
            stored[1],  # another memory
            1 - target,  # the spin-reversed target
            torch.tensor([1, 0, 1, 0, 1, 0]),  # none of them
        ]
    )
    B = finals.shape[0]
    rec = retrieval_records(
        target.expand(B, 6),
        query.expand(B, 6),
        finals,
        vocab_size=2,
        stored=stored,
        target_index=torch.zeros(B, dtype=torch.long),
    )
    names = [OUTCOMES[i] for i in rec["outcome"].tolist()]
    assert names == ["target", "other", "reversed", "spurious"]
    assert rec["exact"].tolist() == [True, False, False, False]
    # Corrupted positions {0, 1}; clean positions {2, 3, 4, 5}; counted from the rows above.
    assert rec["recovered"].tolist() == pytest.approx([2 / 2, 0 / 2, 0 / 2, 1 / 2])
    assert rec["broken"].tolist() == pytest.approx([0 / 4, 2 / 4, 4 / 4, 2 / 4])
    # Spin overlap (1/L) sum s_f s_0 from the agreements 6, 2, 0, 3 of 6.
    assert rec["overlap"].tolist() == pytest.approx([(2 * a - 6) / 6 for a in (6, 2, 0, 3)])
    assert rec["n_changed"].tolist() == [2] * B
    assert rec["fraction_changed"].tolist() == pytest.approx([2 / 6] * B)
    df = records_to_frame(rec, level=2)
    assert list(df["outcome"].astype(str)) == names and (df["level"] == 2).all()


def test_metrics_unseen_target_and_nothing_changed():
    stored = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 1]])
    unseen = torch.tensor([[1, 0, 0, 1]])  # neither stored nor a reversal of one
    code = classify_outcome(stored[:1], torch.tensor([-1]), stored, vocab_size=2)
    assert OUTCOMES[int(code)] == "other", "an unseen target that falls into a memory"
    code = classify_outcome(unseen, torch.tensor([-1]), stored, vocab_size=2)
    assert OUTCOMES[int(code)] == "spurious"
    rec = retrieval_records(unseen, unseen, unseen, vocab_size=2)
    assert math.isnan(float(rec["recovered"][0])) and float(rec["broken"][0]) == 0.0 and bool(rec["exact"][0])
    assert "outcome" not in rec
    with pytest.raises(ValueError, match="target_index"):
        retrieval_records(unseen, unseen, unseen, vocab_size=2, stored=stored)


def test_overlap_is_chance_corrected_for_potts():
    a = torch.tensor([[0, 1, 2, 0, 1, 2]])
    for agree in range(7):
        b = a.clone()
        b[0, agree:] = (b[0, agree:] + 1) % 3
        assert float(overlap(a, b, vocab_size=3)) == pytest.approx((3 * agree / 6 - 1) / 2)
