"""Sums of per-pattern weights by the token each stored pattern holds at each position.

For patterns ``xi`` ``[K, L]`` over ``V`` tokens and weights ``w`` ``[B, K]``,

    T[b, i, v] = sum_{mu: xi_mu,i = v} w[b, mu],

the operation at the heart of every categorical memory that mixes its stored patterns: the exponential dense
memory's update scores and the memorizing denoiser's per-position posterior. Written as a scatter over ``[B, L,
K]`` it is ``B L K`` atomic additions into ``[B, L, V]``; here it is one product of ``w`` with the patterns'
one-hot indicator, a sparse ``[K, L V]`` matrix with one entry per (pattern, position), built once and kept per
device. Rows of ``T`` are independent sums of the weights in the library's reduction order: equal to the scatter
up to float rounding (a few ulps of each sum), with exact zeros where no pattern holds the token.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["TokenSums"]


class TokenSums:
    """``T = TokenSums(patterns_KL, vocab_size)``; ``T(w_BK)`` gives ``[B, L, V]`` in ``w``'s dtype (see the module
    docstring). The indicator is built on first use on each device ``w`` arrives on."""

    def __init__(self, patterns_KL: torch.Tensor, vocab_size: int):
        if not isinstance(patterns_KL, torch.Tensor) or patterns_KL.dim() != 2 or patterns_KL.dtype.is_floating_point:
            raise TypeError(f"patterns_KL: expected an integer tensor [K, L], got {patterns_KL!r:.80}")
        self.patterns = patterns_KL
        self.vocab_size = int(vocab_size)
        self._by_device: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def indicator(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The one-hot indicator as a sparse CSR ``[K, L V]`` matrix: row ``mu`` holds a one at column ``i V +
        xi_mu,i`` for each position ``i`` (in increasing order)."""
        key = (str(device), dtype)
        if key not in self._by_device:
            xi = self.patterns.to(device)
            K, L = xi.shape
            V = self.vocab_size
            cols = ((torch.arange(L, device=device) * V)[None, :] + xi).reshape(-1)
            crow = torch.arange(0, K * L + 1, L, device=device)
            values = torch.ones(K * L, dtype=dtype, device=device)
            with warnings.catch_warnings():  # the CSR layout's "beta" notice, once per process
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self._by_device[key] = torch.sparse_csr_tensor(
                    crow, cols, values, size=(K, L * V), check_invariants=False
                )
        return self._by_device[key]

    def __call__(self, w_BK: torch.Tensor) -> torch.Tensor:
        K, L = self.patterns.shape
        if w_BK.dim() != 2 or w_BK.shape[1] != K:
            raise ValueError(f"w_BK: expected weights [B, {K}] (one per stored pattern), got {tuple(w_BK.shape)}")
        S = self.indicator(w_BK.device, w_BK.dtype)
        return (w_BK @ S).view(w_BK.shape[0], L, self.vocab_size)
