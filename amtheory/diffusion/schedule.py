"""The uniform-diffusion noise schedule (as in UDLM / Duo).

``alpha_t = 1 - (1 - eps) t`` with ``eps = 1e-3``, so ``alpha_0 = 1`` and ``alpha_1 = eps``; the network is
conditioned on ``sigma_t = -log alpha_t``. The forward kernel keeps a token with probability ``alpha_t`` and
otherwise redraws it uniformly over all V tokens:
``q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t) / V``.
"""

from __future__ import annotations

import math

import torch

from amtheory.core._checks import check_float

EPS = 1e-3


def alpha(t: torch.Tensor | float, eps: float = EPS):
    """``alpha_t = 1 - (1 - eps) t``."""
    return 1.0 - (1.0 - eps) * t


def alpha_prime(t: torch.Tensor | float, eps: float = EPS):
    """``d alpha_t / dt = -(1 - eps)`` (same shape as ``t``)."""
    if isinstance(t, torch.Tensor):
        return torch.full_like(t, -(1.0 - eps))
    return -(1.0 - eps)


def one_minus_alpha(t: torch.Tensor | float, eps: float = EPS):
    """``1 - alpha_t = (1 - eps) t``, formed from ``t`` so that it keeps its precision where ``alpha_t`` rounds
    to 1 (t below about 1e-16)."""
    return (1.0 - eps) * t


def sigma(t: torch.Tensor | float, eps: float = EPS):
    """``sigma_t = -log alpha_t = -log1p(-(1 - eps) t)``, the network's conditioning signal (exact at tiny t)."""
    m = -one_minus_alpha(t, eps)
    return -torch.log1p(m) if isinstance(m, torch.Tensor) else -math.log1p(m)


def beta_of_alpha(a: torch.Tensor | float, vocab_size: int):
    """Inverse temperature of the memorizing posterior: ``beta_t = log(1 + V alpha_t / (1 - alpha_t))``.

    The exact posterior of a model that memorized {xi_mu} is ``p(x_0 = xi_mu | x_t) ∝ exp(beta_t m_mu(x_t))``,
    with ``m_mu`` the number of positions where ``x_t`` agrees with ``xi_mu``. A float ``a`` must lie in [0, 1)
    (``beta`` is infinite at ``a = 1``); where ``alpha_t`` comes from a time, ``beta_of_t`` keeps the precision that
    ``alpha_t`` loses near 1.
    """
    if isinstance(a, torch.Tensor):
        return torch.log1p(vocab_size * a / (1.0 - a))
    check_float("a", a, minimum=0.0, maximum=1.0, strict_max=True)
    return math.log1p(vocab_size * a / (1.0 - a))


def beta_of_t(t: torch.Tensor | float, vocab_size: int, eps: float = EPS):
    """``beta_of_alpha(alpha_t)`` formed from ``t``: ``log(V alpha_t + (1 - alpha_t)) - log(1 - alpha_t)`` with
    ``1 - alpha_t = (1 - eps) t`` taken directly, so it stays finite and exact for every t in (0, 1] (about
    ``log V + 745`` at the smallest float64), where ``alpha_t`` itself rounds to 1 for t below about 1e-16."""
    if not isinstance(t, torch.Tensor):
        check_float("t", t, minimum=0.0, maximum=1.0, strict_min=True)
    om = one_minus_alpha(t, eps)
    a = 1.0 - om
    if isinstance(om, torch.Tensor):
        return torch.log(vocab_size * a + om) - torch.log(om)
    return math.log(vocab_size * a + om) - math.log(om)


def time_for_changed_fraction(fraction: torch.Tensor | float, vocab_size: int, eps: float = EPS):
    """The time ``t`` at which the forward kernel changes the expected ``fraction`` of tokens.

    A token is redrawn with probability ``1 - alpha_t = (1 - eps) t``, uniformly over all V tokens, so it ends
    different from the clean one with probability ``(1 - eps) t (V - 1) / V``; setting that equal to ``fraction``
    gives ``t = fraction V / ((1 - eps)(V - 1))``, capped at 1 (fractions above ``(1 - eps)(V - 1) / V`` are
    not reached by any t). docs/theory.md, "Matching the reverse chain's start to a corruption".
    """
    if vocab_size < 2 or isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
    scale = vocab_size / ((1.0 - eps) * (vocab_size - 1))
    if isinstance(fraction, torch.Tensor):
        if fraction.numel() and not bool(((fraction >= 0) & (fraction <= 1)).all()):
            raise ValueError("fraction: expected fractions in [0, 1]")
        return (fraction * scale).clamp(max=1.0)
    check_float("fraction", fraction, minimum=0.0, maximum=1.0)
    return min(1.0, fraction * scale)
