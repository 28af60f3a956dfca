"""Corruption on one axis for every backend.

Two modes:

* exact count: exactly ``n_changed`` positions change, each to one of the other V - 1 tokens (uniformly). This is
  a fixed Hamming distance, the axis of a basin radius.
* Bernoulli: each position is replaced with probability ``p`` by a uniform draw over all V tokens (it may redraw
  the same token). This is the uniform-diffusion forward kernel
  ``q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t) / V`` with ``1 - alpha_t = p``; the expected changed fraction
  is ``p (1 - 1/V)`` (for V = 2, a bit flip with probability p / 2).

Both report the fraction of positions actually changed, so results from every backend share one x-axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amtheory.core._checks import check_float, check_generator, check_int, check_tokens, check_vocab_size, draw_device


@dataclass(frozen=True)
class Corrupted:
    """A corrupted batch.

    ``states``: the corrupted tokens ``[..., L]``; ``changed``: bool ``[..., L]``, True where the token id differs
    from the original; ``fraction_changed``: float ``[...]``, the share of positions that changed.
    """

    states: torch.Tensor
    changed: torch.Tensor
    fraction_changed: torch.Tensor


def corrupt(
    patterns: torch.Tensor,
    *,
    vocab_size: int,
    n_changed: int | None = None,
    p: float | None = None,
    generator: torch.Generator | None = None,
) -> Corrupted:
    """Corrupt ``patterns`` (``[..., L]`` tokens) in exact-count mode (``n_changed``) or Bernoulli mode (``p``)."""
    check_vocab_size("vocab_size", vocab_size)
    check_tokens("patterns", patterns, vocab_size=vocab_size)
    check_generator("generator", generator)
    if (n_changed is None) == (p is None):
        raise ValueError(f"n_changed, p: expected exactly one of them, got n_changed={n_changed!r}, p={p!r}")
    device = patterns.device
    where = draw_device(generator, device)
    L = patterns.shape[-1]
    flat = patterns.reshape(-1, L)
    if n_changed is not None:
        check_int("n_changed", n_changed, minimum=0, maximum=L)
        # Exactly n_changed distinct positions per row: the first n_changed of a random permutation.
        keys = torch.rand(flat.shape, generator=generator, device=where).to(device)
        ranks = keys.argsort(dim=-1).argsort(dim=-1)
        mask = ranks < n_changed
        # An offset in [1, V) added modulo V moves to one of the other V - 1 tokens uniformly. The sum wraps where
        # offset >= V - x, and is then x - (V - offset): neither form leaves int64 for V up to 2^63 - 1.
        offset = torch.randint(1, vocab_size, flat.shape, generator=generator, device=where).to(device)
        moved = torch.where(offset >= vocab_size - flat, flat - (vocab_size - offset), flat + offset)
        out = torch.where(mask, moved, flat)
    else:
        check_float("p", p, minimum=0.0, maximum=1.0)
        replace = torch.rand(flat.shape, generator=generator, device=where).to(device) < p
        draw = torch.randint(0, vocab_size, flat.shape, generator=generator, device=where).to(device)
        out = torch.where(replace, draw, flat)
    out = out.reshape(patterns.shape)
    changed = out != patterns
    return Corrupted(states=out, changed=changed, fraction_changed=changed.float().mean(dim=-1))
