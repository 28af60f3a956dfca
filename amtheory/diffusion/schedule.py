"""The uniform-diffusion noise schedule (as in UDLM / Duo).

``alpha_t = 1 - (1 - eps) t`` with ``eps = 1e-3``, so ``alpha_0 = 1`` and ``alpha_1 = eps``; the network is
conditioned on ``sigma_t = -log alpha_t``. The forward kernel keeps a token with probability ``alpha_t`` and
otherwise redraws it uniformly over all V tokens:
``q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t) / V``.
"""

from __future__ import annotations

import math

import torch

EPS = 1e-3


def alpha(t: torch.Tensor | float, eps: float = EPS):
    """``alpha_t = 1 - (1 - eps) t``."""
    return 1.0 - (1.0 - eps) * t


def alpha_prime(t: torch.Tensor | float, eps: float = EPS):
    """``d alpha_t / dt = -(1 - eps)`` (same shape as ``t``)."""
    if isinstance(t, torch.Tensor):
        return torch.full_like(t, -(1.0 - eps))
    return -(1.0 - eps)


def sigma(t: torch.Tensor | float, eps: float = EPS):
    """``sigma_t = -log alpha_t``, the network's conditioning signal."""
    a = alpha(t, eps)
    return -torch.log(a) if isinstance(a, torch.Tensor) else -math.log(a)


def beta_of_alpha(a: torch.Tensor | float, vocab_size: int):
    """Inverse temperature of the memorizing posterior: ``beta_t = log(1 + V alpha_t / (1 - alpha_t))``.

    The exact posterior of a model that memorized {xi_mu} is ``p(x_0 = xi_mu | x_t) ∝ exp(beta_t m_mu(x_t))``,
    with ``m_mu`` the number of positions where ``x_t`` agrees with ``xi_mu``.
    """
    if isinstance(a, torch.Tensor):
        return torch.log1p(vocab_size * a / (1.0 - a))
    return math.log1p(vocab_size * a / (1.0 - a))
