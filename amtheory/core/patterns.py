"""Random pattern ensembles in the one state space: ``torch.long`` tensors ``[K, L]`` with tokens in ``[0, V)``.

Binary patterns use V = 2 with token 0 standing for spin -1 and token 1 for spin +1. Every generator takes an
explicit ``torch.Generator``; draws happen on the generator's device and are moved to ``device``.
"""

from __future__ import annotations

import torch

from amtheory.core._checks import check_float, check_generator, check_int, check_tokens, check_vocab_size, draw_device


def spins_to_tokens(s: torch.Tensor) -> torch.Tensor:
    """Map spins in {-1, +1} to tokens in {0, 1}."""
    if not bool(((s == 1) | (s == -1)).all()):
        raise ValueError("s: expected spins in {-1, +1}")
    return (s > 0).long()


def tokens_to_spins(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Map binary tokens in {0, 1} to spins in {-1, +1}."""
    check_tokens("x", x, vocab_size=2)
    return (2 * x - 1).to(dtype)


def iid_patterns(
    n: int,
    length: int,
    *,
    vocab_size: int = 2,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``n`` i.i.d. uniform patterns of ``length`` tokens, shape ``[n, length]``."""
    check_int("n", n, minimum=1)
    check_int("length", length, minimum=1)
    check_vocab_size("vocab_size", vocab_size)
    check_generator("generator", generator)
    where = draw_device(generator, device)
    x = torch.randint(0, vocab_size, (n, length), generator=generator, device=where)
    return x.to(device)


def biased_binary(
    n: int,
    length: int,
    *,
    bias: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Binary patterns with mean spin ``bias``: each token is 1 with probability ``(1 + bias) / 2``."""
    check_int("n", n, minimum=1)
    check_int("length", length, minimum=1)
    check_float("bias", bias, minimum=-1.0, maximum=1.0)
    check_generator("generator", generator)
    where = draw_device(generator, device)
    u = torch.rand((n, length), generator=generator, device=where)
    return (u < (1.0 + bias) / 2.0).long().to(device)


def correlated_families(
    n_families: int,
    per_family: int,
    length: int,
    *,
    vocab_size: int = 2,
    p: float = 0.2,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Prototypes with noisy copies: ``n_families`` uniform prototypes, each copied ``per_family`` times with every
    token redrawn uniformly over all V tokens with probability ``p``. Shape ``[n_families * per_family, length]``,
    families contiguous.
    """
    check_int("n_families", n_families, minimum=1)
    check_int("per_family", per_family, minimum=1)
    check_float("p", p, minimum=0.0, maximum=1.0)
    protos = iid_patterns(n_families, length, vocab_size=vocab_size, generator=generator, device=device)
    from amtheory.core.corruption import corrupt

    copies = protos.repeat_interleave(per_family, dim=0)
    return corrupt(copies, vocab_size=vocab_size, p=p, generator=generator).states


def unique_rows(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask [K] marking the first occurrence of each distinct row."""
    _, inverse = torch.unique(x, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), x.shape[0], dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, torch.arange(x.shape[0], device=x.device), reduce="amin")
    mask = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    mask[first] = True
    return mask


def stored_and_unseen(
    n_stored: int,
    n_unseen: int,
    length: int,
    *,
    vocab_size: int = 2,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    max_tries: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint stored and unseen i.i.d. pattern sets (no row equal to another, and for V = 2 no spin-reversed
    copy of a stored pattern among the unseen ones)."""
    check_int("n_stored", n_stored, minimum=1)
    check_int("n_unseen", n_unseen, minimum=0)
    total = n_stored + n_unseen
    for _ in range(max_tries):
        x = iid_patterns(total, length, vocab_size=vocab_size, generator=generator, device=device)
        # For V = 2, canonicalise each pattern up to a global flip so that reversed copies collide.
        keys = torch.where(x[:, :1] == 1, 1 - x, x) if vocab_size == 2 else x
        if bool(unique_rows(keys).all()):
            return x[:n_stored], x[n_stored:]
    raise ValueError(
        f"length: {length} with vocab_size {vocab_size} is too small to draw {total} distinct patterns "
        f"in {max_tries} tries"
    )
