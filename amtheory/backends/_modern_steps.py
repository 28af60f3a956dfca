"""The kernels of :meth:`amtheory.backends.modern.ModernHopfield.continuous_step`: the chunked online softmax
("stream"), fused attention over key slices merged by their log-sum-exp ("split-*"), and the one-pass Triton
kernel ("triton"), with the working memory each needs per query row."""

from __future__ import annotations

import math

import torch

from amtheory.backends import _attention, _triton_attention

#: Key slices for the fused split kernels on CUDA when ``splits`` is None (powers of two divide K evenly; a slice
#: keeps at least ``_MIN_SLICE`` patterns).
_FUSED_SPLITS, _MIN_SLICE = 16, 4096


def _mm_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in float32 from (possibly half-precision) inputs, accumulating in float32."""
    if a.dtype in (torch.float32, torch.float64):
        return a @ b
    if a.is_cuda:
        # Tensor-core matmul with a float32 output: the logits must not be rounded to 8 mantissa bits.
        try:
            return torch.mm(a, b, out_dtype=torch.float32)
        except (RuntimeError, TypeError):
            return (a @ b).float()
    # CPU: emulate half-precision inputs with float32 accumulation exactly.
    return a.float() @ b.float()


class PatternStreamSteps:
    """The one-step update ``X^T softmax(beta X xi)`` of a modern Hopfield network by each kernel, for queries
    ``[B, d]`` against the stored patterns ``X_`` (``Xmm_`` in the matmul dtype)."""

    X_: torch.Tensor
    Xmm_: torch.Tensor
    beta: float
    chunk_size: int
    splits: int | None
    matmul_dtype: torch.dtype | None
    _padded_X: torch.Tensor | None

    def _step_row_bytes(self, kernel: str) -> int:
        """Working memory of one query row of ``continuous_step`` with ``kernel``, in bytes (a generous estimate):
        the logits and weights of the widest block of patterns one product forms (a ``chunk_size`` block for
        "stream", a key slice for the split kernels, whose fused forms keep it on chip instead), the query and
        accumulator, and one partial output of width ``d`` per key slice."""
        K, d = self.X_.shape
        e = torch.finfo(self.dtype).bits // 8
        if kernel == "stream":
            block = K if self.chunk_size is None else min(K, self.chunk_size)
            return e * (4 * block + 8 * d)
        if kernel == "triton":
            d_pad = max(16, 1 << (d - 1).bit_length())
            return e * ((self.splits or 64) + 8) * d_pad
        slices = self._default_splits(K) or 1
        if self.chunk_size is not None:
            slices = max(slices, -(-K // self.chunk_size))
        return e * (4 * -(-K // slices) + (slices + 8) * d)

    def _default_splits(self, K: int) -> int | None:
        if self.splits is not None:
            return self.splits
        if self.X_.is_cuda:
            s = _FUSED_SPLITS
            while s > 1 and K // s < _MIN_SLICE:
                s //= 2
            return s
        return 1 if self.chunk_size is None else -(-K // self.chunk_size)

    def _split_step(self, q: torch.Tensor, backend: str) -> torch.Tensor:
        half = self.matmul_dtype in (torch.bfloat16, torch.float16)
        if not q.is_cuda or not half:
            if backend != "auto":
                raise ValueError(
                    f"kernel: 'split-{backend}' needs a CUDA device and matmul_dtype bfloat16 or float16, got device "
                    f"{q.device} and matmul_dtype {self.matmul_dtype}"
                )
            backend = "reference"
        elif backend == "auto":
            usable = _attention.fused_backends(q.device, self.matmul_dtype, self.width)
            backend = usable[0] if usable else "reference"
        K = self.X_.shape[0]
        splits = self._default_splits(K)
        if backend == "reference" and q.is_cuda:
            # Without a fused kernel the slices are plain matmuls: keep each at most chunk_size patterns wide.
            splits = max(splits or 1, 1 if self.chunk_size is None else -(-K // self.chunk_size))
        return _attention.split_attention(
            q, self.Xmm_, self.beta, splits=splits, backend=backend, matmul_dtype=self.matmul_dtype
        ).to(self.dtype)

    def _triton_step(self, q: torch.Tensor) -> torch.Tensor:
        if not _triton_attention.available(q.device):
            raise RuntimeError(
                f"kernel: 'triton' cannot run on {q.device} here (triton importable: {_triton_attention.HAVE_TRITON})"
            )
        if q.is_cuda and self.matmul_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"kernel: 'triton' needs matmul_dtype bfloat16 or float16, got {self.matmul_dtype}")
        d = self.width
        d_pad = max(16, 1 << (d - 1).bit_length())
        X = self.Xmm_
        if d_pad != d:
            # Zero columns change no dot product and give zero outputs: widen X once, the queries per call.
            if self._padded_X is None or self._padded_X.device != X.device:
                self._padded_X = torch.nn.functional.pad(X, (0, d_pad - d))
            X = self._padded_X
        qm = torch.nn.functional.pad(q.to(X.dtype), (0, d_pad - d))
        K = X.shape[0]
        splits = self.splits
        if splits is None:
            bm, bn = _triton_attention.default_blocks(d_pad)[:2]
            n_sm = torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else 1
            splits = _attention.choose_splits(-(-q.shape[0] // bm), K, n_sm, min_keys=4 * bn)
        out_SBd, lse_SB = _triton_attention.split_attention_partials(qm, X, self.beta, splits)
        out = out_SBd[0] if out_SBd.shape[0] == 1 else _attention.combine_partials(out_SBd, lse_SB)
        return out[:, :d].to(self.dtype)

    def _stream_step(self, q: torch.Tensor) -> torch.Tensor:
        B = q.shape[0]
        K = self.X_.shape[0]
        chunk = K if self.chunk_size is None else self.chunk_size
        acc_dtype = self.dtype
        mm_dtype = self.Xmm_.dtype
        # beta is applied to the float32 logits, not folded into half-precision queries (that would round beta).
        q_mm = q.to(mm_dtype)
        run_max = torch.full((B,), -math.inf, dtype=acc_dtype, device=q.device)
        norm = torch.zeros(B, dtype=acc_dtype, device=q.device)
        acc = torch.zeros(B, self.width, dtype=acc_dtype, device=q.device)
        for start in range(0, K, chunk):
            Xc = self.Xmm_[start : start + chunk]
            s = _mm_f32(q_mm, Xc.T).to(acc_dtype)  # [B, c] raw overlaps
            new_max = torch.maximum(run_max, s.amax(-1) * self.beta)
            corr = torch.exp(run_max - new_max)
            # p = exp(beta s - m'), written in the matmul dtype for the second product. beta s is rounded before the
            # subtraction, exactly as m' was formed, so a row's largest logit becomes exactly 0 at any beta (a fused
            # beta s - m' can round it to -ULP(m'), which underflows the whole row once beta s nears 1e10).
            s.mul_(self.beta).sub_(new_max.unsqueeze(-1))
            p = torch.exp(s, out=torch.empty_like(s, dtype=mm_dtype))
            norm = norm * corr + p.sum(-1, dtype=acc_dtype)
            acc.mul_(corr.unsqueeze(-1)).add_(_mm_f32(p, Xc).to(acc_dtype))
            run_max = new_max
        return acc / norm.unsqueeze(-1)
