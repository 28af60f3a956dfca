"""Sums of per-pattern weights by the token each stored pattern holds at each position, and agreement counts.

For patterns ``xi`` ``[K, L]`` over ``V`` tokens and weights ``w`` ``[B, K]``,

    T[b, i, v] = sum_{mu: xi_mu,i = v} w[b, mu],

the operation at the heart of every categorical memory that mixes its stored patterns: the exponential dense
memory's update scores and the memorizing denoiser's per-position posterior. Written as a scatter over ``[B, L,
K]`` it is ``B L K`` atomic additions into ``[B, L, V]``; here it is one product of ``w`` with the patterns'
one-hot indicator, a sparse matrix with one entry per (pattern, position), built once and kept per device. On a
CPU it is ``w @ S`` with ``S`` the ``[K, L V]`` indicator in CSR (each query's row summed on its own, whatever
the number of rows); on CUDA ``(S^T w^T)^T`` with ``S^T`` held in CSR, which the sparse library multiplies without
converting the layout at every call (``w @ S`` there converts it, a sort of the K L entries, each time). Each
entry is a sum of the weights in the library's order: equal to the scatter up to float rounding (a few ulps),
exactly zero where no pattern holds the token.

``agreements(x)`` counts, for queries ``x`` ``[B, L]``, the positions where each agrees with each pattern,
``[B, K]``: one comparison of a ``[B, K]`` row of narrow integers per position, accumulated in int16 (int32 for
``L`` of 32,768 or more), instead of a ``[B, K, L]`` comparison reduced over its last, short axis.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["TokenSums"]


def _narrow_int(n: int) -> torch.dtype:
    """The narrowest signed integer type that holds every value in ``[0, n)``."""
    return torch.int16 if n <= 2**15 else torch.int32 if n <= 2**31 else torch.int64


class TokenSums:
    """``T = TokenSums(patterns_KL, vocab_size)``; ``T(w_BK)`` gives ``[B, L, V]`` in ``w``'s dtype and
    ``T.agreements(x_BL)`` ``[B, K]`` counts (see the module docstring). What each needs is built on first use on
    each device it is asked on."""

    def __init__(self, patterns_KL: torch.Tensor, vocab_size: int):
        if not isinstance(patterns_KL, torch.Tensor) or patterns_KL.dim() != 2 or patterns_KL.dtype.is_floating_point:
            raise TypeError(f"patterns_KL: expected an integer tensor [K, L], got {patterns_KL!r:.80}")
        self.patterns = patterns_KL
        self.vocab_size = int(vocab_size)
        self._cache: dict[tuple, torch.Tensor] = {}

    @classmethod
    def of(cls, memory) -> TokenSums:
        """The sums of a stored memory (its ``patterns_`` and ``vocab_size_``), kept on it and built again only when
        it stores other patterns."""
        sums = getattr(memory, "_token_sums_cache", None)
        if sums is None or sums.patterns is not memory.patterns_:
            sums = memory._token_sums_cache = cls(memory.patterns_, memory.vocab_size_)
        return sums

    def indicator(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The one-hot indicator in CSR: ``[K, L V]`` (row ``mu`` holds a one at column ``i V + xi_mu,i`` for each
        position ``i``) on a CPU, its transpose ``[L V, K]`` (row ``i V + v`` holds the patterns with token ``v`` at
        position ``i``, in increasing order) on CUDA."""
        key = ("indicator", str(device), dtype)
        if key not in self._cache:
            xi = self.patterns.to(device)
            K, L = xi.shape
            V = self.vocab_size
            cols = ((torch.arange(L, device=device) * V)[None, :] + xi).reshape(-1)  # [K L], pattern-major
            values = torch.ones(K * L, dtype=dtype, device=device)
            if device.type == "cuda":
                order = torch.argsort(cols, stable=True)
                crow = torch.zeros(L * V + 1, dtype=torch.long, device=device)
                crow[1:] = torch.bincount(cols, minlength=L * V).cumsum(0)
                parts = (crow, torch.arange(K, device=device).repeat_interleave(L)[order], values, (L * V, K))
            else:
                parts = (torch.arange(0, K * L + 1, L, device=device), cols, values, (K, L * V))
            with warnings.catch_warnings():  # the CSR layout's "beta" notice, once per process
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self._cache[key] = torch.sparse_csr_tensor(*parts[:3], size=parts[3], check_invariants=False)
        return self._cache[key]

    def __call__(self, w_BK: torch.Tensor) -> torch.Tensor:
        K, L = self.patterns.shape
        if w_BK.dim() != 2 or w_BK.shape[1] != K:
            raise ValueError(f"w_BK: expected weights [B, {K}] (one per stored pattern), got {tuple(w_BK.shape)}")
        S = self.indicator(w_BK.device, w_BK.dtype)
        B = w_BK.shape[0]
        if w_BK.device.type == "cuda":
            return (S @ w_BK.T.contiguous()).T.contiguous().view(B, L, self.vocab_size)
        return (w_BK @ S).view(B, L, self.vocab_size)

    def agreements(self, x_BL: torch.Tensor) -> torch.Tensor:
        """``m[b, mu]``: the number of positions where ``x[b]`` agrees with pattern ``mu``, ``[B, K]`` (int16, or
        int32 for patterns of 32,768 positions or more)."""
        K, L = self.patterns.shape
        if x_BL.dim() != 2 or x_BL.shape[1] != L:
            raise ValueError(f"x_BL: expected queries [B, {L}], got {tuple(x_BL.shape)}")
        key = ("columns", str(x_BL.device))
        if key not in self._cache:
            self._cache[key] = self.patterns.to(x_BL.device, _narrow_int(self.vocab_size)).T.contiguous()  # [L, K]
        cols = self._cache[key]
        x = x_BL.to(cols.dtype)
        m = torch.zeros((x.shape[0], K), dtype=_narrow_int(L + 1), device=x.device)
        for i in range(L):
            m += cols[i][None, :] == x[:, i : i + 1]
        return m
