"""The token features of :class:`~amtheory.backends.classical.ClassicalHopfield` and the local fields it keeps
for asynchronous updates: from the couplings (weight form) or from the pattern overlaps (pattern form)."""

from __future__ import annotations

import torch

from amtheory.core import budget
from amtheory.core.interface import AssociativeMemory, LocalFields


def token_features(vocab_size: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The embedding ``Phi`` ``[V, D]``: spins for V = 2, Kanter's Potts coding ``V e_a - 1`` for V > 2.

    Integer-valued, so Hebbian couplings and fields are exact integers in float32 and ties stay ties.
    """
    if vocab_size == 2:
        return torch.tensor([[-1.0], [1.0]], dtype=dtype, device=device)
    return vocab_size * torch.eye(vocab_size, dtype=dtype, device=device) - 1.0


def embed(x: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Tokens ``[..., L]`` -> flattened features ``[..., L * D]``."""
    return phi[x].flatten(-2)


def _gibbs_at(m: AssociativeMemory, h: torch.Tensor, pos: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """Gibbs log-potentials ``[B, V]`` at ``pos`` from the fields ``h`` ``[B, D]`` there (self-coupling included):
    ``<h - W_ii phi(x_i), phi(a)> + 1/2 phi(a)^T W_ii phi(a)``."""
    d = m.diag_[pos]  # [B, D, D]
    h = h - torch.einsum("Bab,Bb->Ba", d, m.phi_[cur])
    quad = 0.5 * torch.einsum("va,Bab,vb->Bv", m.phi_, d, m.phi_)
    return h @ m.phi_.T + quad


class _WeightFields(LocalFields):
    """Keeps ``h = W phi(x)`` ``[B, N, D]``; a flip at i adds ``W[i-block] (phi(new) - phi(old))``: O(N D^2)."""

    def __init__(self, mem: AssociativeMemory, x: torch.Tensor):
        self.m = mem
        self.x = x.clone()
        N, D = mem.length_, mem.phi_.shape[1]
        self.h = (embed(self.x, mem.phi_) @ mem.W_).view(-1, N, D)  # unscaled; at() applies w_scale_
        self.Wrows = mem.W_.view(N, D, N, D)
        self.rows = torch.arange(x.shape[0], device=x.device)

    def at(self, pos, *, gibbs=False):
        m = self.m
        h = self.h[self.rows, pos] * m.w_scale_  # [B, D]
        if not gibbs:
            return m._snap(h) @ m.phi_.T
        return _gibbs_at(m, h, pos, self.x[self.rows, pos])

    def set(self, pos, new):
        old = self.x[self.rows, pos]
        delta = self.m.phi_[new] - self.m.phi_[old]  # [B, D]
        N, D = self.m.length_, self.m.phi_.shape[1]
        # The coupling rows of each query's position, [chunk, D, N, D], are gathered a chunk of queries at a time.
        for r in budget.row_slices(pos.shape[0], 3 * D * N * D * self.m.W_.element_size(), pos.device):
            self.h[r] += torch.einsum("Ba,Banc->Bnc", delta[r], self.Wrows[pos[r]])
        self.x[self.rows, pos] = new


class _PatternFields(_WeightFields):
    """Pattern form: keeps the overlaps ``m = Xi phi(x)`` ``[B, K]``; a flip costs O(K D)."""

    def __init__(self, mem: AssociativeMemory, x: torch.Tensor):
        self.m = mem
        self.x = x.clone()
        N, D = mem.length_, mem.phi_.shape[1]
        self.blocks = mem.xi_.view(-1, N, D)  # [K, N, D]
        self.overlap = embed(self.x, mem.phi_) @ mem.xi_.T  # [B, K]
        # With a zero diagonal the overlaps carry the self-coupling, which at() takes out again.
        self.raw_diag = mem.hebbian_diag_ if mem.zero_diagonal else torch.zeros_like(mem.hebbian_diag_)
        self.rows = torch.arange(x.shape[0], device=x.device)

    def _row_bytes(self) -> int:
        """Per query: the gathered pattern features ``[K, D]`` at its position, with a copy."""
        K, D = self.blocks.shape[0], self.blocks.shape[2]
        return 2 * K * D * self.blocks.element_size() + 64 * D * D

    def at(self, pos, *, gibbs=False):
        return budget.map_rows(lambda r, p: self._at(r, p, gibbs), self.rows, pos, bytes_per_row=self._row_bytes())

    def _at(self, rows, pos, gibbs):
        m = self.m
        N = m.length_
        xi_i = self.blocks[:, pos, :].transpose(0, 1)  # [b, K, D]
        h = torch.einsum("Bk,Bkd->Bd", self.overlap[rows], xi_i) / N
        cur = self.x[rows, pos]
        h = h - torch.einsum("Bab,Bb->Ba", self.raw_diag[pos], m.phi_[cur])
        if not gibbs:
            return h @ m.phi_.T
        return _gibbs_at(m, h, pos, cur)

    def set(self, pos, new):
        old = self.x[self.rows, pos]
        delta = self.m.phi_[new] - self.m.phi_[old]  # [B, D]
        for r in budget.row_slices(pos.shape[0], self._row_bytes(), pos.device):
            xi_i = self.blocks[:, pos[r], :].transpose(0, 1)  # [b, K, D]
            self.overlap[r] += torch.einsum("Bd,Bkd->Bk", delta[r], xi_i)
        self.x[self.rows, pos] = new
