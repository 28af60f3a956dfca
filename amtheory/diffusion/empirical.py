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

import torch

from amtheory.core._checks import check_int, check_vocab_fits
from amtheory.core.registry import ConformanceCase, register_backend
from amtheory.diffusion.denoiser import Denoiser, check_time
from amtheory.diffusion.schedule import beta_of_t


class EmpiricalDenoiser(Denoiser):
    """Exact posterior of the memorizing denoiser over the stored patterns (duplicates count with multiplicity).

    Computed in float64 and in chunks of ``chunk_size`` patterns, so memory is O(B K + B L V + B L chunk_size)
    for B queries, K patterns of length L and V tokens.
    """

    def __init__(self, t_eval: float = 1e-5, *, batch_size: int | None = None, chunk_size: int = 1024):
        super().__init__(t_eval=t_eval, batch_size=batch_size)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)

    def _store(self, patterns: torch.Tensor) -> None:
        # Nothing to learn: the stored set is the model.
        pass

    def _chunks(self):
        K = self.patterns_.shape[0]
        for lo in range(0, K, self.chunk_size):
            yield lo, min(lo + self.chunk_size, K)

    def agreements(self, x_BL: torch.Tensor) -> torch.Tensor:
        """``m_mu(x)``: the number of positions where each query agrees with each stored pattern, ``[B, K]``."""
        x = self.check_queries("x_BL", x_BL)
        return self._agreements(x)

    def _agreements(self, x: torch.Tensor) -> torch.Tensor:
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
        beta_B11 = beta_of_t(t_B.to(torch.float64), V)[:, None, None]
        m_BK = self._agreements(x_BL)
        # Two passes over the patterns for a stable log-sum-exp per (query, position, token): first the largest
        # agreement among the patterns carrying that token, then the sum of exp(beta (m - that maximum)).
        # -1 marks "no stored pattern has token v at position i" (agreements are >= 0).
        mmax_BLV = torch.full((B, L, V), -1.0, dtype=torch.float64, device=x_BL.device)
        for lo, hi in self._chunks():
            idx = self.patterns_[lo:hi].T[None].expand(B, L, hi - lo)
            mmax_BLV.scatter_reduce_(2, idx, m_BK[:, None, lo:hi].expand(B, L, hi - lo), reduce="amax")
        sum_BLV = torch.zeros_like(mmax_BLV)
        for lo, hi in self._chunks():
            idx = self.patterns_[lo:hi].T[None].expand(B, L, hi - lo)
            w = torch.exp(beta_B11 * (m_BK[:, None, lo:hi] - mmax_BLV.gather(2, idx)))
            sum_BLV.scatter_add_(2, idx, w)
        log_z_B11 = torch.logsumexp(beta_B11[:, :, 0] * m_BK, dim=-1)[:, None, None]
        absent = mmax_BLV < 0
        out = beta_B11 * mmax_BLV + torch.log(sum_BLV) - log_z_B11
        return out.masked_fill_(absent, float("-inf"))


register_backend(
    "empirical",
    EmpiricalDenoiser,
    label="empirical denoiser",
    colour="#949494",
    make=lambda beta=None: EmpiricalDenoiser(),
    # The memorization limit of a diffusion model, at its default evaluation time; chunk_size 2 exercises the
    # chunked log-sum-exp over the stored set.
    conformance=[ConformanceCase("empirical-denoiser", lambda: EmpiricalDenoiser(chunk_size=2))],
)
