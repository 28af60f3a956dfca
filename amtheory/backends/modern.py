"""Modern (continuous) Hopfield network on embedded tokens (Ramsauer et al. 2020, "Hopfield Networks is All You
Need").

Tokens are embedded per position (a spin for V = 2, so D = 1; the one-hot vector for V > 2, so D = V) and
flattened to ``xi`` in R^d, d = L D; the stored patterns form ``X`` ``[K, d]``. With ``M`` the largest pattern norm,

    E(xi) = -beta^-1 log sum_mu exp(beta x_mu . xi) + 1/2 xi . xi + beta^-1 log K + 1/2 M^2,
    xi <- X^T softmax(beta X xi),

the update being one softmax-attention step with keys = values = X; it never raises E (concave-convex procedure).

Token interface: ``scores(x)`` is the one-step update of ``embed(x)`` reshaped to ``[B, L, D]`` (for V = 2,
``[-u, u]``), so the deterministic token update is the argmax readout per position. On tokens ``xi . xi = L`` is
constant, so the energy restricted to tokens is ``E(x) = -beta^-1 log sum_mu exp(beta sim_mu(x)) + const`` with
``sim = X embed(x)`` (the spin overlap for V = 2, the agreement count for V > 2): ``beta^-1`` times the exponential
``DenseAM``'s energy. Asynchronous token updates never raise it: log-sum-exp is convex, so changing position
``i`` from ``a`` to ``b`` raises ``lse(beta X xi)`` by at least ``beta (u_i(b) - u_i(a))``, the change of its
linearization, which the argmax update makes ``>= 0``; hence ``has_energy = True``. The Gibbs conditional is the
exact one of that energy, ``softmax(beta_gibbs * -E(x^{i<-a}))`` (not ``softmax(scores)``).

Large K: ``continuous_step`` streams over the stored patterns in chunks of ``chunk_size`` with an online
(running-max) softmax, so memory grows with ``B d + K d + B chunk_size`` instead of ``B K``; with ``matmul_dtype``
(bfloat16 or float16) both matmuls take half-precision inputs (tensor cores) while logits, softmax statistics and the
accumulator stay in float32.

Kernels (``kernel``): ``"stream"`` is the chunked online softmax above; ``"split-sdpa"`` cuts X into S slices,
runs a fused attention kernel that returns the log-sum-exp on all slices at once (``"split-flash"``,
``"split-cudnn"``, ``"split-efficient"`` pin one; on CPU each slice is plain matmuls of at most ``chunk_size``
patterns) and merges them with weights ``softmax_s(lse_s)``; ``"triton"`` does the same split in one Triton kernel
that loads each tile of X once for both products. ``"auto"`` takes the first usable of ``AUTO_ORDER`` on CUDA with
a half-precision ``matmul_dtype`` and ``"stream"`` otherwise. All of them keep memory at ``O(B d + K d)`` (plus
``S B d`` for the slices' partial outputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from amtheory.backends import _attention, _triton_attention
from amtheory.backends._modern_steps import PatternStreamSteps
from amtheory.backends.dense import contributions, exclude_position, exp_log_scores, similarity
from amtheory.core import budget
from amtheory.core._checks import check_float, check_int, check_vocab_fits
from amtheory.core.interface import AssociativeMemory, LocalFields, NotStoredError, argmax_keep
from amtheory.core.registry import ConformanceCase, register_backend


@dataclass(frozen=True)
class ContinuousResult:
    """Continuous iteration outcome: ``states`` ``[B, d]``, per-query ``converged`` ``[B]`` (bool: the last step
    moved the state by at most ``tol`` in Euclidean norm) and ``steps`` ``[B]`` (long: steps taken)."""

    states: torch.Tensor
    converged: torch.Tensor
    steps: torch.Tensor


KERNELS = ("auto", "stream", "split-sdpa", "split-flash", "split-cudnn", "split-efficient", "triton")
# Preference of kernel="auto" on CUDA with half-precision matmuls; each is skipped where it cannot run. cuDNN's
# fused attention over key slices is the fastest for narrow patterns and slow for wide ones, where the Triton
# kernel is the fastest in O(B d + K d) memory (experiments/bench_modern_hopfield.py; see benchmarks/README.md).
AUTO_ORDER_NARROW = ("split-cudnn", "triton", "split-sdpa", "stream")  # width d <= 256
AUTO_ORDER = ("triton", "split-sdpa", "stream")  # wider
_AUTO_FAILED: set[tuple[str, str, int, torch.dtype | None]] = set()


class ModernHopfield(PatternStreamSteps, AssociativeMemory):
    """Continuous modern Hopfield network ``xi <- X^T softmax(beta X xi)`` on embedded tokens (Ramsauer et al. 2020).

    ``beta`` (> 0) inverse temperature; ``max_iter``, ``tol`` defaults of ``iterate``; ``chunk_size`` stored
    patterns per streamed block (None: all at once); ``matmul_dtype`` None (the working ``dtype``), torch.bfloat16
    or torch.float16 for the two matmuls; ``dtype`` float32 or float64 for embeddings and accumulators;
    ``kernel`` one of ``KERNELS`` (see the module docstring) for ``continuous_step``; ``splits`` the number of key
    slices of the split kernels (None: chosen from the SM count on CUDA, ``ceil(K / chunk_size)`` on CPU).
    """

    has_energy: ClassVar[bool] = True

    def __init__(
        self,
        beta: float = 1.0,
        *,
        max_iter: int = 100,
        tol: float = 1e-6,
        chunk_size: int | None = None,
        matmul_dtype: torch.dtype | None = None,
        dtype: torch.dtype = torch.float32,
        kernel: str = "auto",
        splits: int | None = None,
    ):
        self.beta = check_float("beta", beta, minimum=0.0, strict_min=True)
        self.max_iter = check_int("max_iter", max_iter, minimum=1)
        self.tol = check_float("tol", tol, minimum=0.0)
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, minimum=1)
        self.chunk_size = chunk_size
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        if matmul_dtype not in (None, torch.bfloat16, torch.float16, dtype):
            raise ValueError(
                f"matmul_dtype: expected None, torch.bfloat16, torch.float16 or {dtype}, got {matmul_dtype}"
            )
        self.matmul_dtype = matmul_dtype
        self.dtype = dtype
        if kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        if splits is not None:
            check_int("splits", splits, minimum=1)
        self.splits = splits

    # ---- storing and embedding ----------------------------------------------------------------------------------
    def _store(self, patterns: torch.Tensor) -> None:
        V = self.vocab_size_
        dev = patterns.device
        K, L = patterns.shape
        # Overlaps reach L in magnitude: beta L must stay a finite number in the working dtype.
        limit = torch.finfo(self.dtype).max / (2 * L)
        if self.beta > limit:
            raise ValueError(
                f"beta: expected beta <= {limit:.3g} for patterns of length L = {L} in {self.dtype} (beta L must stay "
                f"finite), got {self.beta}"
            )
        D = 1 if V == 2 else V
        check_vocab_fits(V, (V, D), dtype=self.dtype, device=dev, what="the one-hot embedding")
        check_vocab_fits(V, (K, L * D), dtype=self.dtype, device=dev, what="the embedded patterns")
        if V == 2:
            self.phi_ = torch.tensor([[-1.0], [1.0]], dtype=self.dtype, device=dev)
        else:
            self.phi_ = torch.eye(V, dtype=self.dtype, device=dev)
        self.X_ = self.phi_[patterns].flatten(-2)  # [K, d]
        self.Xmm_ = self.X_ if self.matmul_dtype is None else self.X_.to(self.matmul_dtype)
        self.max_norm_ = float(self.X_.double().norm(dim=-1).max())
        self.xi_T_ = patterns.T.contiguous()  # [L, K]: pattern tokens per position
        self._padded_X = None  # X widened to a power of two for the Triton kernel, built on first use

    @property
    def width(self) -> int:
        """``d = L D``, the width of the continuous state."""
        return int(self.X_.shape[1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, L]`` -> continuous states ``[B, d]`` (spins for V = 2, one-hot per position for V > 2)."""
        x = self.check_queries("x", x)
        return self.phi_[x].flatten(-2)

    def _check_xi(self, xi: object) -> torch.Tensor:
        if not self.is_stored:
            raise NotStoredError(f"{type(self).__name__}: call store(patterns, vocab_size=...) before using it")
        if not isinstance(xi, torch.Tensor) or not xi.is_floating_point():
            got = xi.dtype if isinstance(xi, torch.Tensor) else type(xi).__name__
            raise TypeError(f"xi_Bd: expected a floating-point torch.Tensor [B, d], got {got}")
        if xi.dim() != 2 or xi.shape[1] != self.width:
            raise ValueError(
                f"xi_Bd: expected shape [B, d] with d = L * D = {self.length_} * {self.phi_.shape[1]} = {self.width}, "
                f"got {tuple(xi.shape)}"
            )
        if xi.device != self.X_.device:
            raise ValueError(f"xi_Bd: expected a tensor on the memory's device {self.X_.device}, got {xi.device}")
        return xi.to(self.dtype)

    # ---- the continuous network -------------------------------------------------------------------------------
    def resolved_kernel(self, device: torch.device | str) -> str:
        """The kernel ``continuous_step`` runs on ``device``: ``kernel`` itself unless it is ``"auto"``, which takes
        the first usable of ``AUTO_ORDER`` on CUDA with a half-precision ``matmul_dtype`` and ``"stream"`` else."""
        device = torch.device(device)
        if self.kernel != "auto":
            return self.kernel
        if device.type != "cuda" or self.matmul_dtype not in (torch.bfloat16, torch.float16):
            return "stream"
        for name in AUTO_ORDER_NARROW if self.width <= 256 else AUTO_ORDER:
            if (name, str(device), self.width, self.matmul_dtype) in _AUTO_FAILED:
                continue
            if name == "triton" and _triton_attention.available(device):
                return name
            if name == "split-cudnn" and "cudnn" in _attention.fused_backends(device, self.matmul_dtype, self.width):
                return name
            if name == "split-sdpa" and _attention.fused_backends(device, self.matmul_dtype, self.width):
                return name
            if name == "stream":
                return name
        return "stream"

    def continuous_step(self, xi_Bd: torch.Tensor) -> torch.Tensor:
        """One update ``X^T softmax(beta X xi)`` ``[B, d]`` with the kernel ``resolved_kernel`` names.

        All kernels compute the same attention step; they differ in how they cut the work (see the module
        docstring). ``"stream"``: per chunk ``c``: ``s = beta X_c xi``, ``m' = max(m, max s)``,
        ``l <- l e^{m - m'} + sum e^{s - m'}``, ``acc <- acc e^{m - m'} + e^{s - m'} X_c``; the result is ``acc / l``
        (Milakov and Gimelshein 2018). The split kernels compute per-slice outputs ``o_s`` and log-sum-exps
        ``lse_s`` and return ``sum_s softmax_s(lse_s) o_s``. Queries go through in chunks sized to the working-memory
        budget (``amtheory.core.budget``).
        """
        q = self._check_xi(xi_Bd)
        while True:
            kernel = self.resolved_kernel(q.device)
            try:
                if kernel == "stream":
                    step = self._stream_step
                elif kernel == "triton":
                    step = self._triton_step
                else:
                    backend = "auto" if kernel == "split-sdpa" else kernel.removeprefix("split-")

                    def step(rows, backend=backend):
                        return self._split_step(rows, backend)

                return budget.map_rows(step, q, bytes_per_row=self._step_row_bytes(kernel))
            except Exception:
                if self.kernel != "auto" or kernel == "stream":
                    raise
                # A kernel "auto" picked failed here (compilation limits, resources): never pick it again for
                # this device and width, and fall through to the next one.
                _AUTO_FAILED.add((kernel, str(q.device), self.width, self.matmul_dtype))

    def continuous_energy(self, xi_Bd: torch.Tensor) -> torch.Tensor:
        """``E(xi) = -beta^-1 lse(beta X xi) + 1/2 xi.xi + beta^-1 log K + 1/2 M^2`` ``[B]`` (float64; >= 0)."""
        q = self._check_xi(xi_Bd).double()
        K, d = self.X_.shape
        chunk = K if self.chunk_size is None else self.chunk_size
        # Per query: its float64 copy and square, and the logits of a block of patterns with their log-sum-exp.
        per_row = 8 * (3 * d + 3 * min(K, chunk))
        return budget.map_rows(lambda rows: self._energy_rows(rows, chunk), q, bytes_per_row=per_row)

    def _energy_rows(self, q: torch.Tensor, chunk: int) -> torch.Tensor:
        K = self.X_.shape[0]
        lse = torch.full((q.shape[0],), -math.inf, dtype=torch.float64, device=q.device)
        for start in range(0, K, chunk):
            z = self.beta * (q @ self.X_[start : start + chunk].double().T)
            lse = torch.logaddexp(lse, torch.logsumexp(z, dim=-1))
        b = self.beta
        return -lse / b + 0.5 * (q * q).sum(-1) + math.log(K) / b + 0.5 * self.max_norm_**2

    def iterate(
        self, xi_Bd: torch.Tensor, *, max_iter: int | None = None, tol: float | None = None
    ) -> ContinuousResult:
        """Iterate ``continuous_step`` per query until a step moves it by at most ``tol`` or ``max_iter`` steps."""
        xi = self._check_xi(xi_Bd)
        max_iter = self.max_iter if max_iter is None else check_int("max_iter", max_iter, minimum=1)
        tol = self.tol if tol is None else check_float("tol", tol, minimum=0.0)
        B = xi.shape[0]
        converged = torch.zeros(B, dtype=torch.bool, device=xi.device)
        steps = torch.zeros(B, dtype=torch.long, device=xi.device)
        for _ in range(max_iter):
            active = ~converged
            if not bool(active.any()):
                break
            new = self.continuous_step(xi[active])
            moved = (new - xi[active]).norm(dim=-1)
            xi = xi.clone()
            xi[active] = new
            steps[active] += 1
            converged[active] = moved <= tol
        return ContinuousResult(xi, converged, steps)

    def metastability(self, xi_Bd: torch.Tensor, *, mass: float = 0.9) -> torch.Tensor:
        """Number of softmax weights ``softmax(beta X xi)`` that together hold ``mass`` of it, ``[B]`` long.

        1 near a single stored pattern, a few at a metastable state, about K at the global average (Ramsauer et
        al. 2020, Sec. 3).
        """
        q = self._check_xi(xi_Bd).double()
        check_float("mass", mass, minimum=0.0, maximum=1.0, strict_min=True)
        K, d = self.X_.shape
        # Per query: the [K] float64 logits, weights, sorted weights with their order and cumulative sums.
        per_row = 8 * (d + 8 * K)
        return budget.map_rows(lambda rows: self._metastability_rows(rows, mass), q, bytes_per_row=per_row)

    def _metastability_rows(self, q: torch.Tensor, mass: float) -> torch.Tensor:
        p = torch.softmax(self.beta * (q @ self.X_.double().T), dim=-1).sort(dim=-1, descending=True).values
        before = p.cumsum(-1) - p
        # Count the weights needed: those whose preceding mass is still short of the target.
        return (before < mass - 1e-12).sum(-1).clamp_min(1)

    # ---- the token interface ----------------------------------------------------------------------------------
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The one-step update of ``embed(x)`` as ``[B, L, V]`` (V = 2: ``[-u, u]``); argmax is the readout."""
        x = self.check_queries("x", x)
        return self._scores(x)

    def sync_update(self, x: torch.Tensor) -> torch.Tensor:
        """One deterministic synchronous step ``[B, L]``: the argmax of ``scores`` (the current token kept on a tie),
        over chunks of queries sized to the working-memory budget (``amtheory.core.budget``)."""
        self.require_stored()
        e = torch.finfo(self.dtype).bits // 8
        # Per query: the embedded state and the scores with their copies, the argmax and the selections.
        per_row = self._step_row_bytes(self.resolved_kernel(x.device)) + self.length_ * (4 * self.vocab_size_ * e + 40)
        return budget.map_rows(lambda y: argmax_keep(self._scores(y), y), x, bytes_per_row=per_row)

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        u = self.continuous_step(self.phi_[x].flatten(-2)).view(x.shape[0], self.length_, -1)
        return torch.cat([-u, u], dim=-1) if self.vocab_size_ == 2 else u

    def gibbs_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``-E(x^{i<-a})`` up to a shift per ``(b, i)``, ``[B, L, V]`` float64 (exact log-sum-exp)."""
        x = self.check_queries("x", x)
        K, L = self.patterns_.shape
        # Per query: about eight [L, K] float64 similarities, weights and their logs, and the [L, V] scores.
        per_row = 8 * L * (8 * K + 3 * self.vocab_size_) + K * L
        return budget.map_rows(self._gibbs_rows, x, bytes_per_row=per_row)

    def _gibbs_rows(self, x: torch.Tensor) -> torch.Tensor:
        B, L = x.shape
        K = self.patterns_.shape[0]
        sim = (
            similarity(x, self.patterns_, self.vocab_size_, centred=self.vocab_size_ == 2).unsqueeze(1).expand(B, L, K)
        )
        xi_col = self.xi_T_.unsqueeze(0).expand(B, L, K)
        h = exclude_position(sim, xi_col, x, self.vocab_size_, centred=self.vocab_size_ == 2)
        return exp_log_scores(h, xi_col, self.beta, self.vocab_size_, centred=self.vocab_size_ == 2) / self.beta

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``continuous_energy(embed(x))`` ``[B]`` (float64)."""
        return self.continuous_energy(self.embed(x))

    def local_fields(self, x: torch.Tensor) -> LocalFields:
        self.require_stored()
        return _ModernFields(self, x)


class _ModernFields(LocalFields):
    """Keeps the overlaps ``X embed(x)`` ``[B, K]``; a change costs O(K), the scores at one position O(K D)."""

    def __init__(self, mem: ModernHopfield, x: torch.Tensor):
        self.m = mem
        self.x = x.clone()
        self.sim = similarity(
            self.x, mem.patterns_, mem.vocab_size_, centred=mem.vocab_size_ == 2
        )  # float64, equals X embed(x)
        self.rows = torch.arange(x.shape[0], device=x.device)
        self.blocks = mem.X_.double().view(mem.X_.shape[0], mem.length_, -1)  # [K, L, D]
        c_a, c_d = contributions(mem.vocab_size_, centred=mem.vocab_size_ == 2)
        self.step = c_a - c_d

    def at(self, pos: torch.Tensor, *, gibbs: bool = False) -> torch.Tensor:
        K, _, D = self.blocks.shape
        # Per query: the gathered [K, D] float64 pattern features at its position, and a few [K] weights.
        per_row = 8 * K * (D + 8) + 24 * self.m.vocab_size_
        return budget.map_rows(lambda r, p: self._at(r, p, gibbs), self.rows, pos, bytes_per_row=per_row)

    def _at(self, rows: torch.Tensor, pos: torch.Tensor, gibbs: bool) -> torch.Tensor:
        m = self.m
        xi_col = m.xi_T_[pos]  # [b, K]
        sim = self.sim[rows]
        if gibbs:
            h = exclude_position(sim, xi_col, self.x[rows, pos], m.vocab_size_, centred=m.vocab_size_ == 2)
            return exp_log_scores(h, xi_col, m.beta, m.vocab_size_, centred=m.vocab_size_ == 2) / m.beta
        p = torch.softmax(m.beta * sim, dim=-1)  # [b, K]
        u = torch.einsum("bk,kbd->bd", p, self.blocks[:, pos, :]).to(m.dtype)
        return torch.cat([-u, u], dim=-1) if m.vocab_size_ == 2 else u

    def set(self, pos: torch.Tensor, new: torch.Tensor) -> None:
        xi_col = self.m.xi_T_[pos]
        old = self.x[self.rows, pos]
        self.sim += self.step * ((xi_col == new.unsqueeze(-1)).double() - (xi_col == old.unsqueeze(-1)).double())
        self.x[self.rows, pos] = new


register_backend(
    "modern",
    ModernHopfield,
    label="modern Hopfield",
    colour="#fbafe4",
    make=lambda beta=None: ModernHopfield() if beta is None else ModernHopfield(beta=beta),
    conformance=[
        ConformanceCase("modern", lambda: ModernHopfield(beta=0.5)),
        # Streamed path with a chunk that does not divide K = 3: the online softmax must equal the plain one.
        ConformanceCase("modern-chunked", lambda: ModernHopfield(beta=0.5, chunk_size=2)),
        # Split-K attention (slices merged by their log-sum-exp), on CPU through its reference per-slice path.
        ConformanceCase("modern-split", lambda: ModernHopfield(beta=0.5, kernel="split-sdpa", chunk_size=2)),
    ],
    compare=True,
)
