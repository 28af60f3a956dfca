"""Split-K attention with keys = values = X as one Triton kernel, for the modern Hopfield step.

Each program owns one block of ``BLOCK_M`` queries and one contiguous slice of the stored patterns. It streams the
slice in tiles of ``BLOCK_N`` patterns, loads each tile once and uses it twice (keys and values are the same
matrix), and runs the online softmax in float32 with the two products on tensor cores (half-precision inputs,
float32 accumulation):

    s = beta q X_t^T,   m' = max(m, max s),   l <- l 2^{m - m'} + sum 2^{s - m'},   acc <- acc 2^{m - m'} + p X_t,

working in base 2 (``exp2``; beta is pre-multiplied by log2 e). It writes the normalized partial output
``acc / l`` ``[S, B, d]`` and the natural log-sum-exp ``lse`` ``[S, B]`` per slice; ``combine_partials`` in
``_attention`` merges the slices (Milakov and Gimelshein 2018; the split over keys is "flash-decoding",
Dao et al. 2023).

Triton is optional: ``available()`` says whether the kernel can run here (CUDA tensors, or CPU tensors with
``TRITON_INTERPRET=1`` set before this module is imported).
"""

from __future__ import annotations

import math

import torch

from amtheory.core._triton import can_run, tl, triton

HAVE_TRITON = triton is not None
_LOG2E = 1.0 / math.log(2.0)


def available(device: torch.device | str) -> bool:
    """Whether the Triton kernel can run on ``device`` (CUDA with triton, or CPU under ``TRITON_INTERPRET=1``)."""
    return can_run(device)


if HAVE_TRITON:

    @triton.jit
    def _split_attention_kernel(
        q_ptr,
        x_ptr,
        out_ptr,
        lse_ptr,
        n_queries,
        n_keys,
        keys_per_split,
        stride_qb,
        stride_xk,
        stride_os,
        stride_ob,
        stride_ls,
        scale_log2,
        D: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_s = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, D)
        row_ok = offs_m < n_queries
        q = tl.load(q_ptr + offs_m[:, None] * stride_qb + offs_d[None, :], mask=row_ok[:, None], other=0.0)
        lo = pid_s * keys_per_split
        hi = tl.minimum(lo + keys_per_split, n_keys)
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
        # 64-bit offset of the slice (K d may pass 2^31); offsets inside one slice stay 32-bit.
        x_base = x_ptr + lo.to(tl.int64) * stride_xk
        for start in range(0, hi - lo, BLOCK_N):
            keys = start + offs_n
            key_ok = keys < hi - lo
            # One tile of X serves as the keys and as the values.
            x = tl.load(x_base + keys[:, None] * stride_xk + offs_d[None, :], mask=key_ok[:, None], other=0.0)
            s = tl.dot(q, tl.trans(x)) * scale_log2  # [BLOCK_M, BLOCK_N], float32
            s = tl.where(key_ok[None, :], s, float("-inf"))
            # Every tile holds at least one valid key, so m_new is finite and the rescaling never sees inf - inf.
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(x.dtype), x)
            m_i = m_new
        out = acc / l_i[:, None]
        tl.store(out_ptr + pid_s * stride_os + offs_m[:, None] * stride_ob + offs_d[None, :], out, mask=row_ok[:, None])
        # Natural-log lse of the beta-scaled logits: (m + log2 l) ln 2.
        lse = (m_i + tl.log2(l_i)) * 0.6931471805599453
        tl.store(lse_ptr + pid_s * stride_ls + offs_m, lse, mask=row_ok)


def default_blocks(d: int) -> tuple[int, int, int, int]:
    """``(BLOCK_M, BLOCK_N, num_warps, num_stages)`` sized so the ``[BLOCK_M, d]`` float32 accumulator, the query
    block and a double-buffered ``[BLOCK_N, d]`` tile fit one SM's registers and shared memory. The d = 128 and
    d = 512 choices are the fastest that ``experiments/bench_modern_hopfield.py`` found (see
    ``benchmarks/README.md``)."""
    if d <= 64:
        return 128, 128, 4, 3
    if d <= 128:
        return 128, 64, 4, 3
    if d <= 256:
        return 64, 64, 8, 2
    return 32, 64, 4, 2


def split_attention_partials(
    q_Bd: torch.Tensor,
    x_Kd: torch.Tensor,
    beta: float,
    splits: int,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice ``softmax(beta q X_s^T) X_s`` ``[S, B, d]`` and ``lse_s = log sum exp(beta q X_s^T)`` ``[S, B]``
    (float32), for ``S`` contiguous slices of ``X`` of equal size (the last one shorter).

    ``q_Bd`` and ``x_Kd`` share one dtype (bfloat16, float16 or float32) with unit stride along ``d``; ``d`` must
    be a power of two >= 16 (tensor-core tiles). Returns fewer than ``splits`` slices where K is too small for them.
    """
    if not HAVE_TRITON:
        raise RuntimeError("split_attention_partials: triton is not installed")
    B, d = q_Bd.shape
    K = x_Kd.shape[0]
    if d < 16 or d & (d - 1):
        raise ValueError(f"q_Bd: expected d a power of two >= 16 for the Triton kernel, got d = {d}")
    if q_Bd.dtype != x_Kd.dtype:
        raise TypeError(f"x_Kd: expected the dtype of q_Bd ({q_Bd.dtype}), got {x_Kd.dtype}")
    bm, bn, nw, ns = default_blocks(d)
    bm = block_m or bm
    bn = block_n or bn
    nw = num_warps or nw
    ns = num_stages or ns
    q_Bd = q_Bd if q_Bd.stride(-1) == 1 else q_Bd.contiguous()
    x_Kd = x_Kd if x_Kd.stride(-1) == 1 else x_Kd.contiguous()
    # Slices are whole tiles, so only the last slice (and only its last tile) is ragged; no slice is empty.
    per = -(-K // max(1, splits))
    per = -(-per // bn) * bn
    S = -(-K // per)
    out = torch.empty(S, B, d, dtype=torch.float32, device=q_Bd.device)
    lse = torch.empty(S, B, dtype=torch.float32, device=q_Bd.device)
    grid = (triton.cdiv(B, bm), S)
    _split_attention_kernel[grid](
        q_Bd,
        x_Kd,
        out,
        lse,
        B,
        K,
        per,
        q_Bd.stride(0),
        x_Kd.stride(0),
        out.stride(0),
        out.stride(1),
        lse.stride(0),
        float(beta) * _LOG2E,
        D=d,
        BLOCK_M=bm,
        BLOCK_N=bn,
        num_warps=nw,
        num_stages=ns,
    )
    return out, lse
