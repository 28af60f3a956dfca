"""The memorization limit: the exact posterior of a denoiser that has memorized its stored set.

Under the uniform forward kernel ``q(x_t | x_0) = prod_i [alpha_t 1(x_t,i = x_0,i) + (1 - alpha_t) / V]`` and the
empirical data distribution over the stored patterns ``{xi_mu}``, Bayes' rule gives

    p(x_0 = xi_mu | x_t) ∝ exp(beta_t m_mu(x_t)),    beta_t = log(1 + V alpha_t / (1 - alpha_t)),

with ``m_mu(x_t)`` the number of positions where ``x_t`` agrees with ``xi_mu`` (the factor ``((1 - alpha_t)/V)^L``
is common to all mu). The per-position marginal is a log-sum-exp over the patterns carrying each token:

    log p(x_0,i = v | x_t) = logsumexp_{mu: xi_mu,i = v} beta_t m_mu - logsumexp_mu beta_t m_mu.

This is a categorical dense associative memory with an exponential interaction (Demircigil et al. 2017) whose
inverse temperature is set by the noise level; a trained UDDM that memorized its training set computes it
(Pham et al. 2026). Schedule: ``alpha_t = 1 - (1 - 1e-3) t`` (``amtheory.diffusion.schedule``). ``beta_t`` is
formed from ``1 - alpha_t = (1 - 1e-3) t`` directly (``schedule.beta_of_t``), so it is finite for every t in
(0, 1] (at most about ``log V + 745``) and the posterior at tiny t is the nearest stored patterns' indicator.
"""

from __future__ import annotations

import math

import torch

from amtheory.core._checks import check_int, check_vocab_fits
from amtheory.core.registry import ConformanceCase, register_backend
from amtheory.core.token_sums import TokenSums
from amtheory.diffusion.denoiser import Denoiser, check_time
from amtheory.diffusion.schedule import beta_of_t

#: Width of one band of ``beta (max m - m_mu)`` whose weights are summed in linear space (``_banded_log_sums``):
#: ``exp(-600)`` is a normal float64 with room for the underflow of 53,167 x ``exp(-708)`` below it.
_BAND = 600.0
#: Stored patterns per vocabulary entry from which the posterior sums its weights by token in a sparse product
#: (``amtheory.core.token_sums``) and counts agreements one position at a time. Below it a scatter over
#: ``[B, L, chunk]`` is faster: the product's cost has a floor of an ``[B, L V]`` output written and transposed.
#: On an H200 at V = 8,192 (``benchmarks/h200_bench_hopfield_family.txt``) the product made the study's recovery
#: and basin cells 1.5-2.8x faster at 8,772 and 53,167 stored blocks and 1.5-3.0x slower at 16 to 1,447 (the
#: record says which form of the product gave which).
_SPARSE_PER_TOKEN = 1.0


class EmpiricalDenoiser(Denoiser):
    """Exact posterior of the memorizing denoiser over the stored patterns (duplicates count with multiplicity).

    Computed in float64 from the agreement counts. From ``_SPARSE_PER_TOKEN`` patterns per token on, the pattern
    weights are summed by token in one product with the patterns' one-hot indicator (``amtheory.core.token_sums``;
    a sparse matrix of K L entries, built once per device), one product per band of ``_BAND`` in ``beta m`` where
    the weights span more than that; below it, in two log-space scatter passes over chunks of ``chunk_size``
    patterns. Both are exact at any spread of the weights. Memory is O(K L + B K + B L V + B L chunk_size) for B
    queries, K patterns of length L and V tokens.
    """

    def __init__(self, t_eval: float = 1e-5, *, batch_size: int | None = None, chunk_size: int = 1024):
        super().__init__(t_eval=t_eval, batch_size=batch_size)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)

    def _store(self, patterns: torch.Tensor) -> None:
        # Nothing to learn: the stored set is the model.
        pass

    def agreements(self, x_BL: torch.Tensor) -> torch.Tensor:
        """``m_mu(x)``: the number of positions where each query agrees with each stored pattern, ``[B, K]``."""
        x = self.check_queries("x_BL", x_BL)
        return self._agreements(x)

    def _sparse(self) -> bool:
        return self.patterns_.shape[0] >= _SPARSE_PER_TOKEN * self.vocab_size_

    def _chunks(self):
        K = self.patterns_.shape[0]
        for lo in range(0, K, self.chunk_size):
            yield lo, min(lo + self.chunk_size, K)

    def _agreements(self, x: torch.Tensor) -> torch.Tensor:
        if self._sparse():
            return TokenSums.of(self).agreements(x).to(torch.float64)
        parts = [(x[:, None, :] == self.patterns_[lo:hi][None]).sum(-1) for lo, hi in self._chunks()]
        return torch.cat(parts, dim=1).to(torch.float64)

    def pattern_log_posterior(self, x_t_BL: torch.Tensor, t_B: torch.Tensor | float) -> torch.Tensor:
        """``log p(x_0 = xi_mu | x_t) = beta_t m_mu - logsumexp_nu beta_t m_nu``, ``[B, K]`` (float64)."""
        x = self.check_queries("x_t_BL", x_t_BL)
        t = check_time("t_B", t_B, x.shape[0], x.device)
        beta = beta_of_t(t, self.vocab_size_)
        return torch.log_softmax(beta[:, None] * self._agreements(x), dim=-1)

    def _log_posterior(self, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        V = self.vocab_size_
        B, L = x_BL.shape
        check_vocab_fits(V, (B, L, V), device=x_BL.device, what="the posterior")
        beta_B = beta_of_t(t_B.to(torch.float64), V)
        m_BK = self._agreements(x_BL)
        z_BK = beta_B[:, None] * m_BK
        log_z_B = torch.logsumexp(z_BK, dim=-1)
        if not self._sparse():
            return self._log_space_posterior(m_BK, beta_B, log_z_B)
        top_B = z_BK.amax(-1)
        return self._banded_log_sums(top_B[:, None] - z_BK).add_((top_B - log_z_B)[:, None, None])

    def _banded_log_sums(self, gap_BK: torch.Tensor) -> torch.Tensor:
        """``log sum_{mu: xi_mu,i = v} exp(-gap_mu)`` ``[B, L, V]`` for gaps ``beta (max m - m_mu) >= 0``, exact at
        any spread of the gaps, -inf where no pattern holds the token.

        Band 0 sums ``exp(-gap)`` by token in linear space (``amtheory.core.token_sums``). A sum of at least
        ``exp(-_BAND)`` is exact to rounding: what underflows is below ``K exp(-708)`` in all. A smaller sum means
        every pattern holding that token has a gap above ``_BAND``, so band 1 sums ``exp(_BAND - gap)`` over the
        patterns with a gap of at least ``_BAND`` and takes those tokens whose sum there is at least
        ``exp(-_BAND)`` (their value ``log sum - _BAND``), and so on, for each query until its widest gap is
        covered: one band while its spread is at most ``_BAND``, two or three at the study's smallest times (a
        training block's query near t = 0)."""
        sums = TokenSums.of(self)
        out = torch.log(sums(torch.exp(-gap_BK)))
        row_widest = gap_BK.amax(-1)
        lo = 0.0
        while True:
            need = row_widest > lo + _BAND
            if not bool(need.any()):
                break
            lo += _BAND
            rows = slice(None) if bool(need.all()) else need.nonzero().squeeze(-1)
            g = gap_BK[rows]
            nxt = sums(torch.where(g >= lo, torch.exp(lo - g), 0.0))
            cur = out[rows]
            # After the bands below lo, a value below -lo is not yet exact: its patterns all lie beyond them.
            take = ((cur < -lo) & (nxt >= math.exp(-_BAND))).nonzero(as_tuple=True)
            cur[take] = torch.log(nxt[take]) - lo
            if not isinstance(rows, slice):
                out[rows] = cur
        return out

    def _log_space_posterior(self, m_BK: torch.Tensor, beta_B: torch.Tensor, log_z_B: torch.Tensor) -> torch.Tensor:
        """The per-position posterior in log space from the agreements ``m_BK`` by scatters over chunks of
        patterns (fewer than ``_SPARSE_PER_TOKEN`` per token), exact at any inverse temperature."""
        V, L = self.vocab_size_, self.length_
        B = m_BK.shape[0]
        beta_B11 = beta_B[:, None, None]
        # Two passes over the patterns for a stable log-sum-exp per (query, position, token): first the largest
        # agreement among the patterns carrying that token, then the sum of exp(beta (m - that maximum)).
        # -1 marks "no stored pattern has token v at position i" (agreements are >= 0).
        mmax_BLV = torch.full((B, L, V), -1.0, dtype=torch.float64, device=m_BK.device)
        for lo, hi in self._chunks():
            idx = self.patterns_[lo:hi].T[None].expand(B, L, hi - lo)
            mmax_BLV.scatter_reduce_(2, idx, m_BK[:, None, lo:hi].expand(B, L, hi - lo), reduce="amax")
        sum_BLV = torch.zeros_like(mmax_BLV)
        for lo, hi in self._chunks():
            idx = self.patterns_[lo:hi].T[None].expand(B, L, hi - lo)
            w = torch.exp(beta_B11 * (m_BK[:, None, lo:hi] - mmax_BLV.gather(2, idx)))
            sum_BLV.scatter_add_(2, idx, w)
        absent = mmax_BLV < 0
        out = beta_B11 * mmax_BLV + torch.log(sum_BLV) - log_z_B[:, None, None]
        return out.masked_fill_(absent, float("-inf"))


register_backend(
    "empirical",
    EmpiricalDenoiser,
    label="empirical denoiser",
    colour="#949494",
    make=lambda beta=None: EmpiricalDenoiser(),
    # The memorization limit of a diffusion model, at its default evaluation time; chunk_size 2 exercises the
    # chunked log-sum-exp over the stored set where it has fewer patterns than tokens.
    conformance=[ConformanceCase("empirical-denoiser", lambda: EmpiricalDenoiser(chunk_size=2))],
)
