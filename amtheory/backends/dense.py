"""Dense associative memories: polynomial, rectified-polynomial and exponential energies over stored patterns.

With stored patterns ``xi_mu`` (``mu = 1..K``) and a state ``x`` of ``N = L`` tokens,

    E(x) = -N sum_mu F(sim(xi_mu, x) / N)                               (Krotov and Hopfield 2016)

with ``F(z) = z^n`` ("poly"), ``F(z) = max(z, 0)^n`` ("rectpoly"), and, for the exponential kind
(Demircigil, Heusel, Löwe, Upgang and Vermet 2017), the log form

    E(x) = -log sum_mu exp(beta sim(xi_mu, x)),

which is finite at any size and has the same descent dynamics as ``-sum_mu exp(beta sim)`` (a monotone map of it).

The polynomial energy is Krotov and Hopfield's ``-sum_mu F(sim)`` times the positive constant ``N^(1 - n)``: the
deterministic dynamics are identical, the energy is extensive (``-N`` at a lone stored pattern) so a Gibbs
``beta_gibbs`` means the same at every N and n, and nothing overflows (a Gibbs ``beta_gibbs`` here is
``beta_gibbs N^(1 - n)`` on the unnormalized energy). For ``n = 2`` and spins,
``E = -s^T W s = 2 E_Hebb(s) - K`` with ``W = (1/N) sum_mu xi_mu xi_mu^T`` and ``E_Hebb`` the zero-diagonal Hebbian
energy: the same dynamics as ``ClassicalHopfield("hebbian", zero_diagonal=True)`` and its Gibbs conditional at
``2 beta_gibbs``.

Similarity: the centred agreement ``sim = (V m_mu - N) / (V - 1)`` with ``m_mu`` the number of agreeing positions,
in ``[-N / (V - 1), N]``. For V = 2 it is the spin overlap ``xi_mu . s`` of Krotov and Hopfield (token 0 is spin
-1); for V > 2 it is the overlap of Kanter's Potts coding, which has zero mean for an unrelated pattern. (The raw
count ``m_mu`` carries a chance agreement of N / V, whose polynomial powers swamp the signal: with it the
polynomial capacity does not grow with N.) Each position adds ``c_agree = 1`` or ``c_disagree = -1 / (V - 1)``.
For the exponential kind the centring is a constant factor in the energy's log-sum-exp: ``beta`` on ``sim`` is the
inverse temperature ``b = beta V / (V - 1)`` on agreement counts.

Update and conditionals. Write ``h_mu = sim(xi_mu, x) - c(xi_mu,i, x_i)`` for the overlap on the positions other
than ``i`` and ``c = c_agree`` (1) or ``c_disagree`` (``-1 / (V - 1)``) for the contribution of position
``i``. Setting ``x_i = a`` gives, for the polynomial kinds (``F_N(z) = N F(z / N)``),
``-E(x^{i<-a}) = sum_mu F_N(h_mu + c_disagree) + sum_{mu: xi_mu,i = a} G(h_mu)`` with
``G(h) = F_N(h + c_agree) - F_N(h + c_disagree)``: a constant in ``a`` plus a sum with no cancellation. The
deterministic update is ``x_i <- argmax_a -E(x^{i<-a})``, so asynchronous updates never raise E; the Gibbs
conditional is ``p(x_i = a | rest) = softmax_a(beta_gibbs * -E(x^{i<-a}))``.

Numerics (float64 throughout). Polynomial update scores are ``G`` divided by ``N (M / N)^n`` with
``M = max_mu |h_mu| + 1`` per query and position, so every term is in ``[-2, 2]`` however large ``n`` is (the
argmax does not change); the Gibbs scores multiply back by ``N (M / N)^n <= N`` and cannot overflow (they underflow
only where every ``G`` is below ~1e-300, i.e. where the Gibbs conditional is uniform to that precision).
Exponential scores are computed with log-sum-exp relative to the per-query maximum and are exact at any ``beta``
and ``N``.

The diffusion bridge (exponential kind). Let ``m_mu^{-i}`` count the positions other than ``i`` where ``x`` agrees
with ``xi_mu`` and ``b = beta V / (V - 1)`` be the inverse temperature on agreement counts (``2 beta`` for spins).
With ``q_i(v) ∝ sum_mu 1(xi_mu,i = v) exp(b m_mu^{-i})``, the posterior over the clean token at ``i`` of a memory
that holds exactly the stored set given the other positions (``pattern_conditionals``), the Gibbs conditional at
``beta_gibbs = 1`` is exactly

    p(x_i = v | rest) = alpha q_i(v) + (1 - alpha) / V,    alpha = (e^b - 1) / (e^b - 1 + V)    (``noise_level``),

the uniform forward kernel applied to ``q_i``; equivalently ``b = log(1 + V alpha / (1 - alpha))``, the inverse
temperature of the memorizing denoiser at noise level ``alpha`` (``amtheory.diffusion.schedule.beta_of_alpha``).
No finite energy has ``q_i`` itself as its conditional (``q_i(v)`` is zero for a token no pattern holds at ``i``),
so the mixture is the exact statement; ``q_i`` is its ``alpha -> 1`` part.

Cost: a full ``scores`` call builds ``[B, L, K]`` float64 (``B L K`` work, in chunks of queries so that memory
stays bounded); the exponential kind's, from ``_SPARSE_PER_TOKEN`` patterns per token on, sums its ``[B, K]``
weights by token in one sparse product instead (``amtheory.core.token_sums``), where its weights fit float64. An
asynchronous flip through ``local_fields`` costs O(K) and the scores at one position O(K + V).

Synchronous step for spins (V = 2) as matrix products (``sync_update``): see
:mod:`amtheory.backends._dense_sync`.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch

from amtheory.backends._dense_sync import _EXP_HEADROOM, SpinSyncSteps
from amtheory.core import budget
from amtheory.core._checks import check_beta, check_choice
from amtheory.core.interface import AssociativeMemory, LocalFields
from amtheory.core.registry import ConformanceCase, register_backend
from amtheory.core.token_sums import TokenSums

#: Elements of the ``[chunk, L, K]`` float64 intermediates of the generic scores (128 MiB each).
_SCORE_CHUNK_ELEMS = 2**24
#: Patterns per token from which the exponential kind's scores sum weights by token in a sparse product, whose cost
#: has the floor of a ``[B, L V]`` output: on an H200 at V = 8,192 it made the memorization study's cells 2.0x faster
#: at 53,167 stored blocks, 1.2-3.5x slower at 16 to 8,772 (``benchmarks/h200_bench_hopfield_family.txt``).
_SPARSE_PER_TOKEN = 4.0


def contributions(vocab_size: int, *, centred: bool = True) -> tuple[float, float]:
    """``(c_agree, c_disagree) = (1, -1 / (V - 1))``: what one position adds to the centred similarity
    (``(1, 0)`` for the raw agreement count, ``centred=False``)."""
    return (1.0, -1.0 / (vocab_size - 1)) if centred else (1.0, 0.0)


def similarity(x_BL: torch.Tensor, patterns_KL: torch.Tensor, vocab_size: int, *, centred: bool = True) -> torch.Tensor:
    """``sim(xi_mu, x) = (V m_mu - N) / (V - 1)`` ``[B, K]`` (float64): the spin overlap for V = 2; the raw
    agreement count ``m_mu`` with ``centred=False`` (the one-hot dot product). Queries go through in chunks sized to
    the working-memory budget (``amtheory.core.budget``); the counts are exact whatever the chunk."""
    K, L = patterns_KL.shape
    # The [K, L] comparison of a query with every pattern, then a few [K] counts.
    return budget.map_rows(
        lambda x: _similarity_rows(x, patterns_KL, vocab_size, centred), x_BL, bytes_per_row=K * L + 32 * K
    )


def _similarity_rows(x_BL: torch.Tensor, patterns_KL: torch.Tensor, vocab_size: int, centred: bool) -> torch.Tensor:
    agree_BK = (x_BL.unsqueeze(1) == patterns_KL.unsqueeze(0)).sum(-1).to(torch.float64)
    return _centred(agree_BK, vocab_size, x_BL.shape[-1]) if centred else agree_BK


def _centred(agree_BK: torch.Tensor, vocab_size: int, length: int) -> torch.Tensor:
    """``(V m - N) / (V - 1)`` from the agreement counts ``m``."""
    return (vocab_size * agree_BK - length) / (vocab_size - 1)


def exclude_position(
    sim_XK: torch.Tensor, xi_col_XK: torch.Tensor, cur_X: torch.Tensor, vocab_size: int, *, centred: bool = True
) -> torch.Tensor:
    """``h_mu = sim_mu - c(xi_mu,i, x_i)``: the similarity on the other positions (leading shape ``X``)."""
    c_a, c_d = contributions(vocab_size, centred=centred)
    agree = (xi_col_XK == cur_X.unsqueeze(-1)).to(sim_XK.dtype)
    return sim_XK - (c_d + (c_a - c_d) * agree)


def _scatter_tokens(values_XK: torch.Tensor, xi_col_XK: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``out[..., a] = sum_{mu: xi_mu,i = a} values[..., mu]`` ``[..., V]``."""
    out = torch.zeros(*values_XK.shape[:-1], vocab_size, dtype=values_XK.dtype, device=values_XK.device)
    return out.scatter_add_(-1, xi_col_XK, values_XK)


def exp_log_scores(
    h_XK: torch.Tensor, xi_col_XK: torch.Tensor, beta: float, vocab_size: int, *, centred: bool = True
) -> torch.Tensor:
    """``-E(x^{i<-a}) = log sum_mu exp(beta (h_mu + c(xi_mu,i, a)))`` ``[..., V]``, stable at any beta (float64).

    Split as ``log(A + (e^{beta c_agree} - e^{beta c_disagree}) S_a)`` with ``A = sum_mu exp(beta (h_mu +
    c_disagree))`` and ``S_a = sum_{mu: xi_mu,i = a} exp(beta h_mu)``, both relative to ``max_mu beta h_mu``.
    """
    c_a, c_d = contributions(vocab_size, centred=centred)
    z = beta * h_XK
    top = z.amax(-1, keepdim=True)
    S = _scatter_tokens(torch.exp(z - top), xi_col_XK, vocab_size)  # [..., V]
    log_A = beta * c_d + torch.log(S.sum(-1, keepdim=True))
    # log(e^{beta c_a} - e^{beta c_d}) = beta c_a + log(1 - e^{-beta (c_a - c_d)}); -inf at beta = 0.
    log_gap = beta * c_a + math.log(-math.expm1(-beta * (c_a - c_d))) if beta > 0 else -math.inf
    return torch.logaddexp(log_A.expand_as(S), torch.log(S) + log_gap) + top


class DenseAM(SpinSyncSteps, AssociativeMemory):
    """Dense associative memory ``E(x) = -N sum_mu F(sim(xi_mu, x) / N)`` (Krotov and Hopfield 2016; Demircigil et
    al. 2017); see the module docstring for the similarity, the normalization, the exponential log form and the
    numerics.

    ``kind``: "poly" (``F = z^n``), "rectpoly" (``F = max(z, 0)^n``) or "exp" (``E = -log sum exp(beta sim)``);
    ``n`` (>= 2) is the polynomial degree, ``beta`` (>= 0) the exponential kind's inverse temperature.
    """

    has_energy: ClassVar[bool] = True

    def __init__(self, kind: Literal["poly", "rectpoly", "exp"] = "poly", *, n: int = 3, beta: float = 1.0):
        self.kind = check_choice("kind", kind, ("poly", "rectpoly", "exp"))
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n: expected an int >= 2, got {type(n).__name__} {n!r}")
        if n < 2:
            raise ValueError(f"n: expected an int >= 2 (the interaction order of F(z) = z^n), got {n}")
        self.n = n
        self.beta = check_beta("beta", beta)

    def _store(self, patterns: torch.Tensor) -> None:
        if self.kind == "exp":
            # Scores and energies reach beta (L + 2) in magnitude: beyond the float64 range they are inf - inf.
            limit = torch.finfo(torch.float64).max / (2 * (patterns.shape[1] + 2))
            if self.beta > limit:
                raise ValueError(
                    f"beta: expected beta <= {limit:.3g} for patterns of length L = {patterns.shape[1]} (beta L must "
                    f"stay a finite float64), got {self.beta}"
                )
        # Pattern tokens transposed once: column i holds xi_mu,i for every mu (the scatter index at position i).
        self.xi_T_ = patterns.T.contiguous()  # [L, K]
        # Per-device operands of the spin fast path, built on first use (keyed by device, so ``to`` is harmless).
        self._fast_cache: dict[tuple[str, str], torch.Tensor] = {}

    # ---- the function F and its per-position differences -------------------------------------------------------
    def _F(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "rectpoly":
            z = z.clamp_min(0.0)
        return z**self.n

    def _position_scores(
        self, sim_XK: torch.Tensor, xi_col_XK: torch.Tensor, cur_X: torch.Tensor, *, gibbs: bool
    ) -> torch.Tensor:
        """Scores ``[..., V]`` at one position per leading index (update scores, or ``-E`` differences)."""
        V = self.vocab_size_
        h = exclude_position(sim_XK, xi_col_XK, cur_X, V)
        if self.kind == "exp":
            return exp_log_scores(h, xi_col_XK, self.beta, V)
        c_a, c_d = contributions(V)
        # Relative to M = max |h| + 1 (>= |h + c|) every term is O(1) at any n; the argmax is unchanged.
        M = h.abs().amax(-1, keepdim=True) + 1.0
        t = self._F((h + c_a) / M) - self._F((h + c_d) / M)
        s = _scatter_tokens(t, xi_col_XK, V)
        if not gibbs:
            return s
        N = float(self.length_)
        return s * (N * (M / N) ** self.n)

    def _all_scores(self, x: torch.Tensor, *, gibbs: bool) -> torch.Tensor:
        B, L = x.shape
        K = self.patterns_.shape[0]
        V = self.vocab_size_
        if self.kind == "exp" and K >= _SPARSE_PER_TOKEN * V:  # [chunk, K] weights, six [chunk, L, V] float64
            per_row = 8 * (4 * K + 6 * L * V) + K * L
            return torch.cat([self._exp_scores(x[part]) for part in budget.row_slices(B, per_row, x.device)])
        out = self._generic_scores(x, gibbs=gibbs)
        return out[0] if len(out) == 1 else torch.cat(out)

    def _exp_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The exponential kind's scores (``exp_log_scores``) from one sum by token of the weights ``exp(beta sim_mu
        - max)`` (``amtheory.core.token_sums``): position ``i``'s own contribution is a factor ``exp(-beta c)`` of
        whether the token is ``x_i``. Where some weight times that factor would leave the normal float64 range (a
        spread of ``beta sim`` plus ``beta (c_agree - c_disagree)`` above ``_EXP_HEADROOM``), the [B, L, K] path."""
        V = self.vocab_size_
        c_a, c_d = contributions(V)
        sums = TokenSums.of(self)
        z = self.beta * _centred(sums.agreements(x).to(torch.float64), V, x.shape[1])  # [b, K]
        top = z.amax(-1, keepdim=True)
        if x.shape[0] == 0 or float((top - z.amin(-1, keepdim=True)).max()) + self.beta * (c_a - c_d) > _EXP_HEADROOM:
            return torch.cat(self._generic_scores(x, gibbs=False))
        T = sums(torch.exp(z - top))  # [b, L, V]
        at_x = x.unsqueeze(-1)
        S = (T * math.exp(-self.beta * c_d)).scatter_(-1, at_x, T.gather(-1, at_x) * math.exp(-self.beta * c_a))
        log_A = self.beta * c_d + torch.log(S.sum(-1, keepdim=True))
        log_gap = self.beta * c_a + math.log(-math.expm1(-self.beta * (c_a - c_d))) if self.beta > 0 else -math.inf
        return torch.logaddexp(log_A.expand_as(S), torch.log(S) + log_gap) + top.unsqueeze(-1)

    def _generic_scores(self, x: torch.Tensor, *, gibbs: bool) -> list[torch.Tensor]:
        B, L = x.shape
        K = self.patterns_.shape[0]
        V = self.vocab_size_
        # Queries in chunks: the intermediates are [chunk, L, K] float64 (about eight of them alive at once, plus
        # the [chunk, L, V] scatter), within the working-memory budget and at most _SCORE_CHUNK_ELEMS elements each.
        per_row = 8 * L * (8 * K + 3 * V) + L * K
        step = max(1, _SCORE_CHUNK_ELEMS // max(1, L * K))
        out = []
        for part in budget.row_slices(B, per_row, x.device):
            for x_c in x[part].split(step):
                b = x_c.shape[0]
                sim = _similarity_rows(x_c, self.patterns_, V, True)  # [b, K]
                xi_col = self.xi_T_.unsqueeze(0).expand(b, L, K)
                out.append(self._position_scores(sim.unsqueeze(1).expand(b, L, K), xi_col, x_c, gibbs=gibbs))
        return out

    # ---- synchronous step for spins as matrix products ---------------------------------------------------------
    def sync_update(self, x: torch.Tensor) -> torch.Tensor:
        """One deterministic synchronous step ``[B, L]``; for V = 2 (poly and exp kinds) as matrix products with
        the same decisions as the argmax of ``scores`` (see :mod:`amtheory.backends._dense_sync`), otherwise the
        generic step."""
        self.require_stored()
        x = self.check_queries("x", x)
        path = self.sync_path(x.device)
        if path in ("poly", "rectpoly"):
            return self._sync_poly(x)
        if path == "exp":
            return self._sync_exp(x)
        if path == "frozen":
            return x.clone()
        return super().sync_update(x)

    def sync_path(self, device: torch.device | str | None = None) -> str:
        """Which synchronous step ``sync_update`` takes: "poly", "rectpoly", "exp", "frozen" (exp at beta = 0:
        constant energy) or "generic" (V > 2, or where the fast path's exactness bounds do not hold)."""
        if not self.is_stored:
            return "generic"
        if self.vocab_size_ != 2:
            return "generic"
        K, N = self.patterns_.shape
        if self.kind == "poly":
            # Every intermediate of the expansion is an integer below K (N + 2)^n: exact in float64 below 2^53.
            return "poly" if K * (N + 2) ** self.n < 2**53 else "generic"
        if self.kind == "rectpoly":
            # The largest intermediate is the sum of the 2 B(m) terms plus the field: below 3 K (N + 2)^n.
            return "rectpoly" if 3 * K * (N + 2) ** self.n < 2**53 else "generic"
        if self.kind == "exp":
            if self.beta == 0:
                return "frozen"
            return "exp" if 2 * self.beta <= _EXP_HEADROOM - math.log(K) else "generic"
        return "generic"

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Update scores ``[B, L, V]`` (float64): ``-E(x^{i<-a})`` up to a positive scale and a shift per ``(b, i)``."""
        x = self.check_queries("x", x)
        return self._all_scores(x, gibbs=False)

    def gibbs_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``-E(x^{i<-a})`` ``[B, L, V]`` (float64) up to a shift per ``(b, i)``: ``p ∝ exp(beta_gibbs * this)``."""
        x = self.check_queries("x", x)
        return self._all_scores(x, gibbs=True)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x) = -N sum_mu F(sim_mu / N)`` (poly kinds) or ``-log sum_mu exp(beta sim_mu)`` (exp), ``[B]``."""
        x = self.check_queries("x", x)
        K, L = self.patterns_.shape
        return budget.map_rows(self._energy_rows, x, bytes_per_row=K * L + 64 * K)

    def _energy_rows(self, x: torch.Tensor) -> torch.Tensor:
        sim = _similarity_rows(x, self.patterns_, self.vocab_size_, True)
        if self.kind == "exp":
            return -torch.logsumexp(self.beta * sim, dim=-1)
        N = float(self.length_)
        return -N * self._F(sim / N).sum(-1)

    def local_fields(self, x: torch.Tensor) -> LocalFields:
        self.require_stored()
        return _DenseFields(self, x)

    # ---- the diffusion bridge (exponential kind) ----------------------------------------------------------------
    def _agreement_beta(self) -> float:
        """Inverse temperature on agreement counts: ``beta V / (V - 1)`` (``sim = (V m - N) / (V - 1)``)."""
        return self.beta * self.vocab_size_ / (self.vocab_size_ - 1)

    def noise_level(self) -> float:
        """``alpha = (e^b - 1) / (e^b - 1 + V)`` with ``b`` the agreement inverse temperature (exp kind only).

        The inverse of ``b = log(1 + V alpha / (1 - alpha))``: the Gibbs conditional at ``beta_gibbs = 1`` is the
        uniform forward kernel at this ``alpha`` applied to ``pattern_conditionals``.
        """
        self._require_exp("noise_level")
        g = math.expm1(self._agreement_beta())
        return g / (g + self.vocab_size_)

    def pattern_conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """``q_i(v) = sum_mu 1(xi_mu,i = v) softmax_mu(b m_mu^{-i})`` ``[B, L, V]`` (float64), exp kind only.

        ``m_mu^{-i}`` counts the positions other than ``i`` where ``x`` agrees with ``xi_mu`` and ``b`` is the
        agreement inverse temperature: the posterior of the clean token at ``i`` of a memory that holds exactly
        the stored set, given the rest of ``x``.
        """
        self._require_exp("pattern_conditionals")
        x = self.check_queries("x", x)
        K, L = self.patterns_.shape
        # Per query: about five [K, L] float64 agreements, counts and weights, and the [L, V] result with a copy.
        per_row = 8 * L * (5 * K + 2 * self.vocab_size_)
        return budget.map_rows(self._pattern_conditionals_rows, x, bytes_per_row=per_row)

    def _pattern_conditionals_rows(self, x: torch.Tensor) -> torch.Tensor:
        B, L = x.shape
        K = self.patterns_.shape[0]
        agree = (x.unsqueeze(1) == self.patterns_.unsqueeze(0)).to(torch.float64)  # [B, K, L]
        m_rest = (agree.sum(-1, keepdim=True) - agree).transpose(1, 2)  # [B, L, K]
        w = torch.softmax(self._agreement_beta() * m_rest, dim=-1)
        return _scatter_tokens(w, self.xi_T_.unsqueeze(0).expand(B, L, K), self.vocab_size_)

    def _require_exp(self, what: str) -> None:
        if self.kind != "exp":
            raise TypeError(f"{what}: defined for kind='exp' only, this memory has kind={self.kind!r}")


class _DenseFields(LocalFields):
    """Keeps the similarities ``[B, K]`` (float64); a change at one position costs O(K), scores there O(K + V)."""

    def __init__(self, mem: DenseAM, x: torch.Tensor):
        self.m = mem
        self.x = x.clone()
        self.sim = similarity(self.x, mem.patterns_, mem.vocab_size_)
        self.rows = torch.arange(x.shape[0], device=x.device)
        self.c_a, self.c_d = contributions(mem.vocab_size_)

    def at(self, pos: torch.Tensor, *, gibbs: bool = False) -> torch.Tensor:
        xi_col = self.m.xi_T_[pos]  # [B, K]
        return self.m._position_scores(self.sim, xi_col, self.x[self.rows, pos], gibbs=gibbs)

    def set(self, pos: torch.Tensor, new: torch.Tensor) -> None:
        xi_col = self.m.xi_T_[pos]  # [B, K]
        old = self.x[self.rows, pos]
        d = self.c_a - self.c_d
        self.sim += d * ((xi_col == new.unsqueeze(-1)).double() - (xi_col == old.unsqueeze(-1)).double())
        self.x[self.rows, pos] = new


# One registration per configuration (``amtheory.core.registry``): name, kind, n, label, colour, conformance beta,
# aliases (the memorization study's tables call the exponential memory "dense_exp"), in the comparison or not. The
# exponential memory is checked at beta = 2 with L = 12: its log-form energy stays O(beta L), far from overflow, and
# its basins are non-trivial.
for _name, _kind, _n, _label, _colour, _beta, _aliases, _compare in (
    ("poly2", "poly", 2, "dense, $z^2$", "#ece133", 1.0, (), False),
    ("poly3", "poly", 3, "dense, $z^3$", "#d55e00", 1.0, (), True),
    ("rectpoly3", "rectpoly", 3, "dense, $\\max(z,0)^3$", "#cc78bc", 1.0, (), True),
    ("exp", "exp", 3, "dense, $e^{\\beta z}$", "#ca9161", 2.0, ("dense_exp",), True),
):
    register_backend(
        _name,
        DenseAM,
        label=_label,
        colour=_colour,
        make=lambda beta=None, k=_kind, n=_n: DenseAM(k, n=n) if beta is None else DenseAM(k, n=n, beta=beta),
        conformance=[ConformanceCase(f"dense-{_name}", lambda k=_kind, n=_n, b=_beta: DenseAM(k, n=n, beta=b))],
        aliases=_aliases,
        compare=_compare,
    )
del _name, _kind, _n, _label, _colour, _beta, _aliases, _compare
