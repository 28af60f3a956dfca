"""Synchronous step for spins (V = 2) as matrix products (``sync_update``). With ``s = 2 x - 1``, ``Xi`` the pattern
spins ``[K, N]`` and ``m = Xi s`` the overlaps (one product), setting ``s_i = a`` gives ``sim_mu = h_mu + xi_mu,i a``
with ``h_mu = m_mu - xi_mu,i s_i``, so the field ``f_i = -E(s_i = +1) + E(s_i = -1)`` is
``sum_mu [F_N(h_mu + xi_mu,i) - F_N(h_mu - xi_mu,i)]`` and ``s_i <- sign(f_i)``, kept where ``f_i = 0``.

* "poly": with ``u = xi_mu,i s_i`` (so ``u^2 = s_i^2 = 1``), ``f_i ∝ s_i sum_mu [m^n - (m - 2 u)^n]``; expanding
  the binomial,

      f_i ∝ sum_mu xi_mu,i P(m_mu) - s_i sum_mu Q(m_mu),
      P(m) = sum_{k odd} C(n, k) 2^k m^(n-k),    Q(m) = sum_{k even >= 2} C(n, k) 2^k m^(n-k),

  one more product ``P(m) Xi`` and a sum per query. Everything is an integer of magnitude below
  ``K (N + 2)^n``; while that is below 2^53 float64 is exact (any summation order), so the sign, ties included,
  is exact. On CUDA the overlaps and ``P(m) Xi`` run on bf16 tensor cores, ``P(m)`` split into balanced base-256
  digits with float32 accumulation (exact while ``128 K < 2^24``) and recombined in float64: the same integers.
  Beyond 2^53 (large n) the generic path is used.
* "rectpoly": the same split for any ``F``. With ``G(h) = F_N(h + 1) - F_N(h - 1)``, ``f_i = sum_mu xi_mu,i
  G(m_mu - u)``, and ``G(m - u) = A(m) + u B(m)`` for ``u = +-1`` with ``2 A(m) = G(m - 1) + G(m + 1)`` and
  ``2 B(m) = G(m - 1) - G(m + 1)``; since ``xi_mu,i u = s_i``, ``f_i = sum_mu xi_mu,i A(m_mu) + s_i sum_mu
  B(m_mu)`` (for ``F = z^n``, ``A = P`` and ``B = -Q``). With ``R(z) = max(z, 0)^n`` in integers,
  ``2 A = R(m + 2) - R(m - 2)`` and ``2 B = 2 R(m) - R(m - 2) - R(m + 2)``: the same two products, exact while
  ``3 K (N + 2)^n < 2^53``, and the same bf16 digits on CUDA.
* "exp": ``exp(beta sim_mu)`` with ``s_i`` flipped is ``w_mu = exp(beta m_mu)`` times ``exp(-2 beta u)``, a
  factor depending only on ``u = xi_mu,i s_i``; the flip lowers E iff ``log D_i + 2 beta > log A_i`` with ``A_i``
  (``D_i``) the sum of ``w_mu`` over the patterns that agree (disagree) with ``s`` at ``i``. Both are products of
  the weights with the 0/1 token indicators ``[Xi = +1 | Xi = -1]``, sums of positive terms (no cancellation).
  The weights are taken relative to the per-query maximum and multiplied by ``e^{c0}``,
  ``c0 = min(2 beta, 690 - log K)``: every term that can tip the comparison is a normal float64 and nothing
  overflows. Where ``2 beta > 690 - log K`` (beta above ~340) the generic path is used; at ``beta = 0`` the
  energy is constant and nothing moves.

Matmul counts of that step: ``4 B N K`` (poly: overlaps and ``P(m) Xi``; the bf16 digits add ``2 (d - 1) B N K``
tensor-core work for ``d`` digits), ``6 B N K`` (exp: overlaps and the two indicator products, float64).
"""

from __future__ import annotations

import math

import torch

from amtheory.backends._exact_mm import bf16_out_fp32_supported, digit_matmul, n_digits
from amtheory.core import budget

#: Exponent headroom for the exponential fast path's weights: ``e^{c0} K`` stays below the float64 maximum.
_EXP_HEADROOM = 690.0


def _poly_abs_bound(n: int, N: int) -> int:
    """``max_{|m| <= N} |P(m)|`` bound: ``((N + 2)^n - (N - 2)^n) / 2`` (the odd part of ``(N + 2)^n``)."""
    return ((N + 2) ** n - (N - 2) ** n) // 2


class SpinSyncSteps:
    """The "poly", "rectpoly" and "exp" synchronous spin steps of :class:`~amtheory.backends.dense.DenseAM` as
    matrix products (see the module docstring), over chunks of queries sized to the working-memory budget."""

    patterns_: torch.Tensor
    length_: int
    kind: str
    n: int
    beta: float
    _fast_cache: dict[tuple[str, str], torch.Tensor]

    def _cached(self, name: str, device: torch.device, build) -> torch.Tensor:
        key = (name, str(device))
        if key not in self._fast_cache:
            self._fast_cache[key] = build()
        return self._fast_cache[key]

    def _overlaps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Spins ``s`` ``[B, N]`` (float64), overlaps ``m = s Xi^T`` ``[B, K]`` (float64, exact integers) and the
        bf16 pattern spins on CUDA (None elsewhere)."""
        dev = x.device
        s = x.to(torch.float64) * 2 - 1
        K, N = self.patterns_.shape
        if dev.type == "cuda" and 128 * max(K, N) < 2**24 and bf16_out_fp32_supported(dev):
            # +-1 products accumulated in float32: exact integers while |m| <= N < 2^24.
            xi16 = self._cached("xi_bf16", dev, lambda: (self.patterns_ * 2 - 1).to(torch.bfloat16))
            m = torch.mm((x * 2 - 1).to(torch.bfloat16), xi16.T, out_dtype=torch.float32).double()
            return s, m, xi16
        xi = self._cached("xi_f64", dev, lambda: self.patterns_.to(torch.float64) * 2 - 1)
        return s, s @ xi.T, None

    def _field_bound(self) -> int:
        """Largest magnitude of the per-pattern coefficients that multiply ``Xi`` in the "poly" and "rectpoly"
        steps (``P(m)``, or ``R(m + 2) - R(m - 2)``)."""
        N = self.length_
        return _poly_abs_bound(self.n, N) if self.kind == "poly" else (N + 2) ** self.n

    def _sync_poly(self, x: torch.Tensor) -> torch.Tensor:
        """The "poly" and "rectpoly" steps over chunks of queries sized to the working-memory budget (exact
        whatever the chunk)."""
        K, N = self.patterns_.shape
        c = n_digits(self._field_bound())
        # Per query: spins and their casts, about ten [K] float64 overlap polynomials, the digit product's c rows
        # of float32 and float64 (see digit_matmul), and seven [N] float64 / int64 fields and selections.
        per_row = (104 + 12 * c) * N + (72 + 18 * c) * K
        return budget.map_rows(self._sync_poly_rows, x, bytes_per_row=per_row)

    def _sync_poly_rows(self, x: torch.Tensor) -> torch.Tensor:
        n = self.n
        K, N = self.patterns_.shape
        s, m, xi16 = self._overlaps(x)
        if self.kind == "poly":
            # f_i = sum_mu xi_mu,i P(m_mu) - s_i sum_mu Q(m_mu); Horner in float64 on integers below 2^53: exact.
            P = torch.zeros_like(m)
            Q = torch.zeros_like(m)
            for j in range(n - 1, -1, -1):  # coefficient of m^j comes from k = n - j
                k = n - j
                coef = float(math.comb(n, k) * 2**k)
                P = P * m + (coef if k % 2 == 1 else 0.0)
                Q = Q * m + (coef if (k % 2 == 0 and k >= 2) else 0.0)
        else:
            # 2 f_i = sum_mu xi_mu,i [R(m + 2) - R(m - 2)] - s_i sum_mu [R(m - 2) + R(m + 2) - 2 R(m)], the same
            # sign; R(z) = max(z, 0)^n by repeated products, exact integers in float64.
            def R(z):
                z = z.clamp_min(0.0)
                out = z
                for _ in range(n - 1):
                    out = out * z
                return out

            lo, mid, hi = R(m - 2.0), R(m), R(m + 2.0)
            P = hi - lo
            Q = lo + hi - 2.0 * mid
        c = Q.sum(-1, keepdim=True)  # [B, 1]
        if xi16 is not None:
            field = digit_matmul(P, xi16, max_abs=self._field_bound(), out_dtype=torch.float64)
        else:
            xi = self._cached("xi_f64", x.device, lambda: self.patterns_.to(torch.float64) * 2 - 1)
            field = P @ xi
        d = field - s * c
        return torch.where(d > 0, torch.ones_like(x), torch.where(d < 0, torch.zeros_like(x), x))

    def _sync_exp(self, x: torch.Tensor) -> torch.Tensor:
        """The "exp" step over chunks of queries sized to the working-memory budget."""
        K, N = self.patterns_.shape
        # Per query: spins and casts, about eight [K] float64 overlaps and weights, the [2 N] sums and a dozen [N]
        # float64 / int64 selections, logs and results.
        per_row = 112 * N + 72 * K
        return budget.map_rows(self._sync_exp_rows, x, bytes_per_row=per_row)

    def _sync_exp_rows(self, x: torch.Tensor) -> torch.Tensor:
        K = self.patterns_.shape[0]
        s, m, _ = self._overlaps(x)
        beta = self.beta
        c0 = min(2 * beta, _EXP_HEADROOM - math.log(K))
        z = beta * m
        w = torch.exp(z - z.amax(-1, keepdim=True) + c0)  # [B, K], max e^{c0}
        # [Xi = +1 | Xi = -1]: sums over the patterns holding token 1 and token 0 at each position, no cancellation.
        ind = self._cached(
            "ind_f64",
            x.device,
            lambda: torch.cat([self.patterns_ == 1, self.patterns_ == 0], dim=1).to(torch.float64),
        )
        S = w @ ind  # [B, 2N]
        N = self.length_
        S1, S0 = S[:, :N], S[:, N:]
        up = s > 0
        agree = torch.where(up, S1, S0)
        disagree = torch.where(up, S0, S1)
        # Flip iff sum_dis e^{beta (m + 2)} > sum_agree e^{beta m}, in logs (log 0 = -inf never flips).
        flip = torch.log(disagree) + 2 * beta > torch.log(agree)
        return torch.where(flip, 1 - x, x)
