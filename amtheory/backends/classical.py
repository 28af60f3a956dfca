"""Classical (pairwise) Hopfield networks, binary and V-state (Potts).

Tokens are embedded per position as features ``phi(x_i)`` in R^D: for V = 2 a spin (D = 1, token 0 -> -1,
token 1 -> +1); for V > 2 Kanter's (1988) Potts coding ``V e_a - 1`` (D = V, centred, integer-valued).
A pattern is a vector ``xi`` in R^{N D}, N = L. With couplings ``W`` ([N D, N D], symmetric):

    E(x) = -1/2 phi(x)^T W phi(x),    h_i = sum_j W_ij phi(x_j),    x_i <- argmax_a <h_i, phi(a)>

(for V = 2: s_i <- sign(sum_j W_ij s_j)). Rules:

* ``hebbian``: ``W = (1/N) sum_mu xi_mu xi_mu^T`` (Hopfield 1982); capacity alpha_c ≈ 0.138 (Amit, Gutfreund,
  Sompolinsky 1985).
* ``storkey``: the local, incremental rule of Storkey (1997),
  ``W <- W + (1/N) (xi xi^T - xi h^T - h xi^T)`` with ``h_ij = sum_{k != i, j} W_ik xi_k``;
  capacity about N / sqrt(2 ln N).
* ``pseudoinverse``: the projection ``W = Xi^T (Xi Xi^T)^+ Xi`` (Personnaz et al. 1985; Kanter and Sompolinsky
  1987): every linearly independent set is stored exactly, up to K = N.

Storkey and pseudo-inverse fields within ``64 eps N D`` of zero count as exact ties (the current token is kept), so
that ties do not depend on rounding.

``zero_diagonal`` (default True) removes the self-couplings (the per-position D x D blocks); with them kept, the
update includes the self-term while the Gibbs conditional, from the energy, does not depend on it for V = 2.
Asynchronous deterministic updates never raise E when the diagonal blocks are positive semi-definite (always for
Hebbian and pseudo-inverse; zero for the default).

``form``: "weights" keeps W (O(N D) per asynchronous flip); "patterns" (Hebbian only) keeps the overlaps with
the K stored patterns (O(K D) per flip; a synchronous step costs 4 B N K multiply-adds for B queries);
"auto" picks patterns when K < N D / 2.

``matmul="exact-bf16"`` (binary Hebbian, pattern form) computes the integer overlaps and fields on bf16 tensor
cores with float32 accumulation, exactly (see ``_integer_field``); results equal the float32 path bit for bit (both
are exact while N K < 2^24).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from amtheory.backends._classical_fields import _PatternFields, _WeightFields, embed, token_features
from amtheory.backends._exact_mm import bf16_out_fp32_supported
from amtheory.core import budget
from amtheory.core._checks import check_choice, check_vocab_fits
from amtheory.core.interface import AssociativeMemory, LocalFields, argmax_keep
from amtheory.core.registry import ConformanceCase, register_backend


class ClassicalHopfield(AssociativeMemory):
    """Pairwise Hopfield network with a Hebbian, Storkey or pseudo-inverse learning rule."""

    has_energy: ClassVar[bool] = True

    def __init__(
        self,
        rule: Literal["hebbian", "storkey", "pseudoinverse"] = "hebbian",
        *,
        zero_diagonal: bool = True,
        form: Literal["auto", "weights", "patterns"] = "auto",
        dtype: torch.dtype = torch.float32,
        matmul: Literal["float32", "exact-bf16"] = "float32",
    ):
        self.rule = check_choice("rule", rule, ("hebbian", "storkey", "pseudoinverse"))
        self.form = check_choice("form", form, ("auto", "weights", "patterns"))
        if not isinstance(zero_diagonal, bool):
            raise TypeError(f"zero_diagonal: expected a bool, got {type(zero_diagonal).__name__}")
        if form == "patterns" and rule != "hebbian":
            raise ValueError(f"form: 'patterns' needs rule='hebbian' (a low-rank W), got rule={rule!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.matmul = check_choice("matmul", matmul, ("float32", "exact-bf16"))
        if matmul == "exact-bf16" and (rule != "hebbian" or dtype != torch.float32):
            raise ValueError(f"matmul: 'exact-bf16' needs rule='hebbian' and float32, got rule={rule!r}, {dtype}")
        self.zero_diagonal = zero_diagonal
        self.dtype = dtype

    # ---- learning --------------------------------------------------------------------------------------------
    def _store(self, patterns: torch.Tensor) -> None:
        self._bf16_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        V = self.vocab_size_
        dev = patterns.device
        # The Potts features are [V, V] and the embedded patterns [K, N V]: checked before they are built.
        D_V = 1 if V == 2 else V
        check_vocab_fits(V, (V, D_V), dtype=self.dtype, device=dev, what="the Potts features")
        check_vocab_fits(V, (patterns.shape[0], self.length_ * D_V), dtype=self.dtype, device=dev, what="the patterns")
        self.phi_ = token_features(V, dtype=self.dtype, device=dev)
        D = self.phi_.shape[1]
        N = self.length_
        xi = embed(patterns, self.phi_)  # [K, N D]
        K = xi.shape[0]
        self.xi_ = xi
        use_patterns = self.form == "patterns" or (self.form == "auto" and self.rule == "hebbian" and 2 * K < N * D)
        self.form_ = "patterns" if use_patterns else "weights"
        if use_patterns:
            check_vocab_fits(V, (N, D, D), dtype=self.dtype, device=dev, what="the self-couplings")
        else:
            check_vocab_fits(V, (N * D, N * D), device=dev, what="the couplings W (formed in float64)")
        # Diagonal blocks W_ii [N, D, D]: the self-couplings.
        if use_patterns:
            blocks = xi.view(K, N, D)
            # The Hebbian self-couplings, kept whether or not the update uses them: with a zero diagonal the
            # pattern-form fields subtract them from (Xi^T Xi / N) phi(x).
            self.hebbian_diag_ = torch.einsum("kna,knb->nab", blocks, blocks) / N
            self.diag_ = self.hebbian_diag_
            self.W_ = None
        else:
            # Hebbian couplings are kept as integer counts (exact) and scaled by 1/N when fields are formed.
            W = self._weights(xi.double(), N, D).to(self.dtype)
            self.w_scale_ = 1.0 / N if self.rule == "hebbian" else 1.0
            Wb = W.view(N, D, N, D)
            idx = torch.arange(N, device=dev)
            self.diag_ = Wb[idx, :, idx, :].clone() * self.w_scale_  # [N, D, D]
            self.W_ = W
        if self.zero_diagonal:
            if self.W_ is not None:
                Wb = self.W_.view(N, D, N, D)
                idx = torch.arange(N, device=dev)
                Wb[idx, :, idx, :] = 0.0
            self.diag_ = torch.zeros_like(self.diag_)

    def _weights(self, xi: torch.Tensor, N: int, D: int) -> torch.Tensor:
        if self.rule == "hebbian":
            return xi.T @ xi
        if self.rule == "pseudoinverse":
            return xi.T @ torch.linalg.pinv(xi @ xi.T, hermitian=True) @ xi
        # Storkey (1997), with h_ij = sum_{k != i, j} W_ik xi_k = h_i - W_ii xi_i - W_ij xi_j. For V > 2 it runs on
        # the centred one-hot (xi / V), whose scale the rule assumes, and W is rescaled to the V e_a - 1 coding.
        c = 1.0 if D == 1 else 1.0 / D
        xi = xi * c
        M = N * D
        W = torch.zeros(M, M, dtype=xi.dtype, device=xi.device)
        for p in xi:
            h = W @ p
            H = h[:, None] - torch.diagonal(W)[:, None] * p[:, None] - W * p[None, :]
            W = W + (torch.outer(p, p) - p[:, None] * H.T - H * p[None, :]) / N
        return W * c * c

    # ---- fields and scores ----------------------------------------------------------------------------------
    def _row_bytes(self, per_position: int = 0) -> int:
        """Working memory of one query row of the field computations, in bytes (a generous estimate): eight
        ``[N D]`` feature and field vectors in the working dtype (embedding, products, scaling, snapping), the
        ``K`` overlaps with their digit split, 48 bytes per position of spins, signs and token selections, and
        ``per_position`` bytes per position for what the caller builds from the fields."""
        N, D, K = self.length_, self.phi_.shape[1], self.xi_.shape[0]
        e = self.phi_.element_size()
        return e * (8 * N * D + 6 * K) + (48 + per_position) * N

    def fields(self, x: torch.Tensor, *, snap: bool = True) -> torch.Tensor:
        """Local fields ``h`` ``[B, N, D]`` including the self-coupling (zero by default), over chunks of queries
        sized to the working-memory budget (``amtheory.core.budget``)."""
        self.require_stored()
        return budget.map_rows(lambda y: self._fields(y, snap=snap), x, bytes_per_row=self._row_bytes())

    def _fields(self, x: torch.Tensor, *, snap: bool = True) -> torch.Tensor:
        f = embed(x, self.phi_)
        N, D = self.length_, self.phi_.shape[1]
        if self.form_ == "patterns" and self.vocab_size_ == 2 and self.dtype == torch.float32:
            # Binary fields are integers times 1/N: form the integer field exactly (float32 is exact below 2^24,
            # or bf16 tensor cores with digit splitting), then scale; dividing by N keeps every sign and zero.
            H = self._integer_field(f.to(torch.bfloat16) if self._tensor_cores(x) else f)
            if self.zero_diagonal:
                H = H - self.xi_.shape[0] * f
            return (H / N).view(-1, N, 1)
        if self.form_ == "patterns":
            h = (f @ self.xi_.T) @ self.xi_ / N
            h = h.view(-1, N, D)
            if self.zero_diagonal:
                h = h - torch.einsum("nab,Bnb->Bna", self.hebbian_diag_, f.view(-1, N, D))
            return h
        h = ((f @ self.W_) * self.w_scale_).view(-1, N, D)
        return self._snap(h) if snap else h

    def _snap(self, h: torch.Tensor) -> torch.Tensor:
        """Set fields within rounding of zero to exactly zero for the real-valued rules, so that a mathematical tie
        (e.g. the pseudo-inverse field ``(1 - W_ii) xi_i`` with ``W_ii = 1``) keeps the current token on every
        device. Hebbian fields are exact integers and need no tolerance."""
        if self.rule == "hebbian":
            return h
        tol = 64 * torch.finfo(h.dtype).eps * self.length_ * self.phi_.shape[1]
        return torch.where(h.abs() <= tol, torch.zeros_like(h), h)

    def sync_update(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic synchronous step; binary Hebbian pattern form takes a fused sign path (same result). Over
        chunks of queries sized to the working-memory budget (``amtheory.core.budget``)."""
        self.require_stored()
        V, e = self.vocab_size_, self.phi_.element_size()
        return budget.map_rows(self._sync_rows, x, bytes_per_row=self._row_bytes(3 * V * e + 24))

    def _sync_rows(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.form_ == "patterns" and self.vocab_size_ == 2 and self.dtype == torch.float32):
            return argmax_keep(self._fields(x) @ self.phi_.T, x)
        K = self.xi_.shape[0]
        c = float(K) if self.zero_diagonal else 0.0
        if self._tensor_cores(x):
            s = _fused("spins", _spins)(x, torch.bfloat16)
            return _fused("sign_keep", _sign_keep)(self._integer_field(s), s, x, c)
        s = _spins(x, torch.float32)
        return _sign_keep(self._integer_field(s), s, x, c)

    def _tensor_cores(self, x: torch.Tensor) -> bool:
        """Whether the binary pattern-form fields of ``x`` run on bf16 tensor cores (``matmul="exact-bf16"``)."""
        return self.matmul == "exact-bf16" and x.is_cuda and bf16_out_fp32_supported(x.device)

    def _integer_field(self, s: torch.Tensor) -> torch.Tensor:
        """``H = (s Xi^T) Xi`` ``[B, N]`` exactly in float32 for spins ``s``: in bf16 on tensor cores, where the
        second product runs over a doubled contraction, ``[lo | hi] @ [Xi ; 256 Xi]``, summing both base-256 digits
        of the overlaps in one float32 accumulator; else in float32. Exact while N K < 2^24."""
        if s.dtype != torch.bfloat16:
            return (s @ self.xi_.T) @ self.xi_
        if self._bf16_cache is None:
            self._bf16_cache = (
                self.xi_.to(torch.bfloat16),
                torch.cat([self.xi_, 256.0 * self.xi_]).to(torch.bfloat16),
            )
        xi16, xi2_16 = self._bf16_cache
        m = torch.mm(s, xi16.T, out_dtype=torch.float32)
        hi = torch.round(m / 256.0)
        lohi = torch.cat([m - 256.0 * hi, hi], dim=1).to(torch.bfloat16)
        return torch.mm(lohi, xi2_16, out_dtype=torch.float32)

    def _self_term(self, x: torch.Tensor) -> torch.Tensor:
        """``W_ii phi(x_i)`` ``[B, N, D]``."""
        return torch.einsum("nab,Bnb->Bna", self.diag_, self.phi_[x])

    def _quadratic_self(self) -> torch.Tensor:
        """``1/2 phi(a)^T W_ii phi(a)`` ``[N, V]``: the energy's own self-term for each candidate token."""
        return 0.5 * torch.einsum("va,nab,vb->nv", self.phi_, self.diag_, self.phi_)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        self.require_stored()
        e = self.phi_.element_size()
        return budget.map_rows(
            lambda y: self._fields(y) @ self.phi_.T, x, bytes_per_row=self._row_bytes(2 * self.vocab_size_ * e)
        )

    def gibbs_scores(self, x: torch.Tensor) -> torch.Tensor:
        self.require_stored()
        D, V, e = self.phi_.shape[1], self.vocab_size_, self.phi_.element_size()
        return budget.map_rows(self._gibbs_rows, x, bytes_per_row=self._row_bytes(e * (4 * D + 3 * V)))

    def _gibbs_rows(self, x: torch.Tensor) -> torch.Tensor:
        h = self._fields(x, snap=False) - self._self_term(x)
        return h @ self.phi_.T + self._quadratic_self()

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x) = -1/2 phi(x)^T W phi(x)`` (self-couplings included where kept), shape ``[B]``."""
        x = self.check_queries("x", x)
        D = self.phi_.shape[1]
        return budget.map_rows(self._energy_rows, x, bytes_per_row=self._row_bytes(32 * D))

    def _energy_rows(self, x: torch.Tensor) -> torch.Tensor:
        f = embed(x, self.phi_).to(torch.float64)
        h = self._fields(x, snap=False).flatten(-2).to(torch.float64)
        return -0.5 * (f * h).sum(-1)

    def local_fields(self, x: torch.Tensor) -> LocalFields:
        self.require_stored()
        if self.form_ == "patterns":
            return _PatternFields(self, x)
        return _WeightFields(self, x)


def _spins(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Binary tokens -> spins ``2 x - 1`` in ``dtype``."""
    return x.to(dtype) * 2 - 1


def _sign_keep(H: torch.Tensor, s: torch.Tensor, x: torch.Tensor, self_coupling: float) -> torch.Tensor:
    """``x_i <- 1 if H_i > c s_i, 0 if H_i < c s_i, else x_i`` (the zero-diagonal field is ``H - c s``)."""
    d = H - self_coupling * s.to(H.dtype)
    return torch.where(d > 0, 1, torch.where(d < 0, 0, x))


_FUSED: dict[str, object] = {}


def _fused(name: str, fn):
    """``fn`` compiled into one kernel (each element-wise pass over ``[B, N]`` costs as much as the matmuls at
    large N); the eager function where compilation is unavailable. Same arithmetic, same results."""
    if name not in _FUSED:
        try:
            _FUSED[name] = torch.compile(fn, dynamic=False)
        except Exception:  # noqa: BLE001 - no compiler on this machine: eager is correct, only slower
            _FUSED[name] = fn
    compiled = _FUSED[name]

    def call(*args):
        try:
            return compiled(*args)
        except Exception:  # noqa: BLE001 - a failed compile falls back to the identical eager computation
            _FUSED[name] = fn
            return fn(*args)

    return call


def hopfield_from_weights(weights: torch.Tensor, patterns: torch.Tensor) -> ClassicalHopfield:
    """A binary network with given symmetric couplings ``weights`` ``[N, N]`` (for tests of claims that hold for
    any W); ``patterns`` ``[K, N]`` are recorded as the stored set for outcome bookkeeping."""
    if not isinstance(weights, torch.Tensor) or weights.dim() != 2 or weights.shape[0] != weights.shape[1]:
        got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights: expected a square [N, N] tensor, got {got}")
    if not torch.allclose(weights, weights.T):
        raise ValueError("weights: expected a symmetric matrix")
    m = ClassicalHopfield("hebbian", form="weights", zero_diagonal=False, dtype=weights.dtype)
    m.store(patterns, vocab_size=2)
    if patterns.shape[1] != weights.shape[0]:
        raise ValueError(f"patterns: expected length N = {weights.shape[0]}, got {patterns.shape[1]}")
    N = weights.shape[0]
    m.W_ = weights.clone()
    m.w_scale_ = 1.0
    m.diag_ = torch.diagonal(weights).reshape(N, 1, 1).clone()
    return m


# One registration per learning rule (``amtheory.core.registry``); the conformance suite checks each rule with and
# without the zero diagonal, and the Hebbian rule also in its pattern form (fields from the stored set, no weights).
for _rule, _label, _colour in (
    ("hebbian", "Hebbian", "#0173b2"),
    ("storkey", "Storkey", "#de8f05"),
    ("pseudoinverse", "pseudo-inverse", "#029e73"),
):
    register_backend(
        _rule,
        ClassicalHopfield,
        label=_label,
        colour=_colour,
        make=lambda beta=None, rule=_rule: ClassicalHopfield(rule),
        conformance=[
            ConformanceCase(
                f"classical-{_rule}{'' if zd else '-diag'}",
                lambda rule=_rule, zd=zd: ClassicalHopfield(rule, zero_diagonal=zd, form="weights"),
            )
            for zd in (True, False)
        ]
        + (
            [ConformanceCase("classical-hebbian-patterns", lambda: ClassicalHopfield("hebbian", form="patterns"))]
            if _rule == "hebbian"
            else []
        ),
        # The memorization study's tables call its classical network "classical".
        aliases=("classical",) if _rule == "hebbian" else (),
        compare=True,
    )
del _rule, _label, _colour
