"""Hypothesis strategies for property-based tests of associative memories.

Every strategy draws a seed and a few small sizes and builds its tensors with a ``torch.Generator`` from that
seed. Hypothesis then only shrinks integers (sizes towards small, seeds towards 0), which is cheap, and every
example is reproducible from the seed it prints. Size arguments take an int or a strategy of ints.

Sizes come from :func:`sizes`, about uniform over their range: ``st.integers(lo, hi)``, drawn beside other
arguments, gives ``lo`` in a quarter to over half of a test's examples, where most claims about a memory say least
(one stored pattern, a two-unit network, a one-token sequence).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from amtheory.backends.classical import embed, token_features
from amtheory.core.patterns import biased_binary, iid_patterns

IntOrStrategy = int | SearchStrategy[int]


def sizes(lo: int, hi: int) -> SearchStrategy[int]:
    """Integers in ``[lo, hi]``, each about equally likely (shrinking towards ``lo``)."""
    if not lo <= hi:
        raise ValueError(f"lo, hi: expected lo <= hi, got {lo}, {hi}")
    return st.sampled_from(range(lo, hi + 1))


# Default sizes, small enough that exhaustive checks (2^L states) stay cheap.
SMALL_COUNTS = sizes(1, 4)
SMALL_LENGTHS = sizes(2, 12)
SMALL_BATCHES = sizes(1, 8)


def _value(draw, v):
    return draw(v) if isinstance(v, SearchStrategy) else v


def seeds() -> SearchStrategy[int]:
    """Seeds for ``torch.Generator().manual_seed``."""
    return st.integers(min_value=0, max_value=2**31 - 1)


@st.composite
def generators(draw) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from a drawn seed."""
    return torch.Generator().manual_seed(draw(seeds()))


@st.composite
def patterns(
    draw,
    n_patterns: IntOrStrategy = SMALL_COUNTS,
    length: IntOrStrategy = SMALL_LENGTHS,
    vocab_size: IntOrStrategy = 2,
    bias: float | SearchStrategy[float] | None = None,
) -> torch.Tensor:
    """Patterns ``[K, L]`` (``torch.long``) with i.i.d. uniform tokens, or biased binary ones when ``bias`` (mean
    spin, in [-1, 1]) is given (then ``vocab_size`` must be 2)."""
    K = _value(draw, n_patterns)
    L = _value(draw, length)
    V = _value(draw, vocab_size)
    b = _value(draw, bias)
    g = torch.Generator().manual_seed(draw(seeds()))
    if b is not None:
        if V != 2:
            raise ValueError(f"bias: biased patterns are binary; expected vocab_size 2, got {V}")
        return biased_binary(K, L, bias=b, generator=g)
    return iid_patterns(K, L, vocab_size=V, generator=g)


@st.composite
def states(draw, length: IntOrStrategy, batch: IntOrStrategy = SMALL_BATCHES, vocab_size: int = 2) -> torch.Tensor:
    """A batch of uniformly random states ``[B, L]``, e.g. queries for a dynamics."""
    return draw(patterns(n_patterns=batch, length=length, vocab_size=vocab_size))


@st.composite
def symmetric_weights(
    draw,
    n: IntOrStrategy,
    zero_diagonal: bool = True,
    nonnegative_diagonal: bool = False,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A symmetric coupling matrix ``[n, n]`` with Gaussian entries, ``W = (A + A^T) / 2``.

    ``zero_diagonal``: set ``W_ii = 0``; otherwise the diagonal is Gaussian too, or ``|.|`` of it with
    ``nonnegative_diagonal``. Ties in the local fields then have probability zero, so properties that hold for
    every W are tested without the tie rule deciding them.
    """
    N = _value(draw, n)
    g = torch.Generator().manual_seed(draw(seeds()))
    A = torch.randn(N, N, generator=g, dtype=torch.float64)
    W = (A + A.T) / 2
    if zero_diagonal:
        W.fill_diagonal_(0.0)
    elif nonnegative_diagonal:
        W.diagonal().abs_()
    return W.to(dtype)


def pattern_rank(x: torch.Tensor, vocab_size: int) -> int:
    """Rank of the patterns' feature vectors (spins for V = 2, centred one-hot for V > 2), the linear
    independence that the pseudo-inverse rule needs."""
    xi = embed(x, token_features(vocab_size, dtype=torch.float64))
    return int(torch.linalg.matrix_rank(xi))


@st.composite
def linearly_independent_patterns(
    draw,
    n_patterns: IntOrStrategy = SMALL_COUNTS,
    length: IntOrStrategy = SMALL_LENGTHS,
    vocab_size: IntOrStrategy = 2,
    max_tries: int = 50,
) -> torch.Tensor:
    """Patterns ``[K, L]`` whose feature vectors are linearly independent.

    The centred one-hot features of one position span V - 1 dimensions, so K is capped at ``L (V - 1)``. Draws
    repeat from the same generator until the set is independent; the example is rejected if none is found.
    """
    L = _value(draw, length)
    V = _value(draw, vocab_size)
    K = min(_value(draw, n_patterns), L * (V - 1))
    g = torch.Generator().manual_seed(draw(seeds()))
    for _ in range(max_tries):
        x = iid_patterns(K, L, vocab_size=V, generator=g)
        if pattern_rank(x, V) == K:
            return x
    from hypothesis import reject

    reject()


__all__ = [
    "generators",
    "linearly_independent_patterns",
    "pattern_rank",
    "patterns",
    "seeds",
    "sizes",
    "states",
    "symmetric_weights",
]
