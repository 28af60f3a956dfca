"""Fused rotary self-attention of the DiT's blocks for short sequences: Triton kernels, forward and backward.

The DiT's attention takes the packed projection ``qkv [B, L, 3 D]`` (queries, keys and values of ``H`` heads of
width ``hd = D / H``), applies rotary positions to queries and keys, and returns ``softmax(q k^T / sqrt(hd)) v``
as ``[B, L, D]``, heads side by side: the layout the output projection reads. With SDPA this takes a rotary
kernel that writes rotated copies of ``q`` and ``k`` in ``[B, H, L, hd]``, the attention kernel, and in the
backward pass a kernel that rotates the gradients back and packs them into ``[B, L, 3 D]``.

Here a sequence is short enough (``L <= MAX_LENGTH``) for one program to hold all its keys and values, so:

- the forward kernel (a program per block of queries of one head) reads ``q``, ``k`` and ``v`` from the packed
  projection, rotates ``q`` and ``k`` as they are loaded, and writes the output in ``[B, L, D]`` together with
  each row's log-sum-exp;
- the backward kernel (a program per head of one sequence) keeps the rotated keys, the values and the
  accumulating key and value gradients in registers, loops over blocks of queries, and writes the gradients of
  ``q``, ``k`` and ``v`` rotated back, straight into the packed ``[B, L, 3 D]`` gradient: no atomics, no
  rotated copies, no permutes.

Products run in the input dtype (bf16 under autocast) with float32 accumulation, the softmax in float32, as in
flash attention. Float32 inputs give float32 products (no TF32), which is what the tests compare with the
float64 reference. Under ``TRITON_INTERPRET=1`` the kernels run on CPU tensors in Triton's interpreter.

:func:`rotary_attention` is a ``torch.library`` custom operator with its own backward, so compiled blocks keep
it as one opaque node (no graph break). :func:`reference_rotary_attention` is the same map written with
``scaled_dot_product_attention``: the DiT's path where the kernels do not apply, and the tests' reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from amtheory.core._triton import can_run, tl, triton

__all__ = [
    "ATTENTION_KERNELS",
    "HEAD_DIMS",
    "MAX_LENGTH",
    "apply_rotary",
    "available",
    "block_attention",
    "reference_rotary_attention",
    "rotary_attention",
    "rotary_tables",
    "supports",
]

#: Longest sequence the kernels take (one program holds all keys of a head in registers); head widths 32 and 64
#: (every preset of the DiT), which keep the backward's key and value gradients in registers.
MAX_LENGTH = 128
HEAD_DIMS = (32, 64)


def available(device: torch.device | str) -> bool:
    """Triton importable and a CUDA device, or a CPU device under Triton's interpreter (for tests)."""
    return can_run(device)


def supports(length: int, head_dim: int) -> bool:
    """Whether the kernels take this shape: ``length <= MAX_LENGTH`` and a head width in :data:`HEAD_DIMS`."""
    return 1 <= length <= MAX_LENGTH and head_dim in HEAD_DIMS


def rotary_tables(length: int, head_dim: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
    """``cos, sin [length, head_dim / 2]`` float32 of rotary positions (Su et al. 2021): position ``l`` turns the
    pair ``(x_j, x_{j + hd/2})`` by ``l / 10000^(2 j / hd)``."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    ang = torch.arange(length, dtype=torch.float32, device=device)[:, None] * inv[None]
    return ang.cos(), ang.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x [..., L, hd]`` with rotary positions applied: halves ``(x1 c - x2 s, x2 c + x1 s)``, in ``x.dtype``."""
    x1, x2 = x.chunk(2, dim=-1)
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def reference_rotary_attention(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[B, L, D]`` attention of the packed ``qkv [B, L, 3 D]`` with rotary tables ``cos, sin [L, hd / 2]``, through
    ``scaled_dot_product_attention`` (whichever of its kernels is allowed); the map :func:`rotary_attention` fuses."""
    B, L, D3 = qkv.shape
    D = D3 // 3
    q, k, v = qkv.view(B, L, 3, n_heads, D // n_heads).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, D)


#: Which attention the DiT's blocks use (the ``attention`` of :class:`amtheory.diffusion.kernels.Kernels`): "auto"
#: (the fused kernels on CUDA for 16-bit inputs of a shape they take, as under bf16 autocast; else SDPA), "fused"
#: (always; an error where they cannot run) or "sdpa".
ATTENTION_KERNELS = ("auto", "fused", "sdpa")


def block_attention(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int, kernel: str = "auto"
) -> torch.Tensor:
    """The DiT block's attention: :func:`rotary_attention` or :func:`reference_rotary_attention`, as ``kernel``
    (one of :data:`ATTENTION_KERNELS`) picks for these inputs."""
    if kernel not in ATTENTION_KERNELS:
        raise ValueError(f"kernel: expected one of {ATTENTION_KERNELS}, got {kernel!r}")
    if kernel == "sdpa":
        return reference_rotary_attention(qkv, cos, sin, n_heads)
    ok = available(qkv.device) and supports(qkv.shape[1], qkv.shape[2] // 3 // n_heads)
    if kernel == "fused":
        if not ok:
            have = "missing" if triton is None else "present"
            raise RuntimeError(
                f"attention 'fused': the kernels cannot run here (Triton {have}, device {qkv.device}, "
                f"L = {qkv.shape[1]}, head width {qkv.shape[2] // 3 // n_heads}; see supports())"
            )
        return rotary_attention(qkv, cos, sin, n_heads)
    if ok and qkv.is_cuda and qkv.dtype != torch.float32:  # float32 (a precision check) keeps SDPA
        return rotary_attention(qkv, cos, sin, n_heads)
    return reference_rotary_attention(qkv, cos, sin, n_heads)


if triton is not None:

    @triton.jit
    def _tables(COS, SIN, rows, mask, HALF: tl.constexpr):
        """Rotary ``cos, sin`` of positions ``rows`` (float32 ``[rows, HALF]``)."""
        t = rows[:, None] * HALF + tl.arange(0, HALF)[None, :]
        return tl.load(COS + t, mask=mask[:, None], other=0.0), tl.load(SIN + t, mask=mask[:, None], other=0.0)

    @triton.jit
    def _load_rotated(base, rows, mask, stride_l, COS, SIN, HALF: tl.constexpr):
        """Rows ``rows`` of one head's q or k (at ``base``), rotated: the two halves ``(x1 c - x2 s, x2 c + x1 s)``
        in float32."""
        ptr = base + rows[:, None] * stride_l + tl.arange(0, HALF)[None, :]
        x1 = tl.load(ptr, mask=mask[:, None], other=0.0).to(tl.float32)
        x2 = tl.load(ptr + HALF, mask=mask[:, None], other=0.0).to(tl.float32)
        c, s = _tables(COS, SIN, rows, mask, HALF)
        return x1 * c - x2 * s, x2 * c + x1 * s

    @triton.jit
    def _attn_fwd_kernel(
        QKV, COS, SIN, O, LSE, L, H, D, scale, stride_qb, stride_ql, stride_ob, stride_ol,
        BLOCK_M: tl.constexpr, BLOCK_L: tl.constexpr, HALF: tl.constexpr, PREC: tl.constexpr,
    ):  # fmt: skip
        """Program (sequence x head, query block): rotated q of its rows against all rotated keys of the head."""
        bh = tl.program_id(0)
        pid_m = tl.program_id(1)
        b = bh // H
        h = bh % H
        dt = QKV.dtype.element_ty
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        keys = tl.arange(0, BLOCK_L)
        m_ok = rows < L
        k_ok = keys < L
        base = QKV + b * stride_qb + h * 2 * HALF
        q1, q2 = _load_rotated(base, rows, m_ok, stride_ql, COS, SIN, HALF)
        k1, k2 = _load_rotated(base + D, keys, k_ok, stride_ql, COS, SIN, HALF)
        cols = tl.arange(0, 2 * HALF)
        v = tl.load(base + 2 * D + keys[:, None] * stride_ql + cols[None, :], mask=k_ok[:, None], other=0.0)
        s = tl.dot((q1 * scale).to(dt), tl.trans(k1.to(dt)), input_precision=PREC)
        s += tl.dot((q2 * scale).to(dt), tl.trans(k2.to(dt)), input_precision=PREC)
        s = tl.where(k_ok[None, :], s, float("-inf"))
        m = tl.max(s, 1)
        p = tl.exp(s - m[:, None])
        denom = tl.sum(p, 1)
        o = tl.dot(p.to(dt), v, input_precision=PREC) / denom[:, None]
        o_ptr = O + b * stride_ob + rows[:, None] * stride_ol + h * 2 * HALF + cols[None, :]
        tl.store(o_ptr, o.to(O.dtype.element_ty), mask=m_ok[:, None])
        tl.store(LSE + bh * L + rows, m + tl.log(denom), mask=m_ok)

    @triton.jit
    def _attn_bwd_kernel(
        QKV, COS, SIN, O, DO, LSE, DQKV, L, H, D, scale, stride_qb, stride_ql, stride_ob, stride_ol,
        BLOCK_M: tl.constexpr, BLOCK_L: tl.constexpr, HALF: tl.constexpr, PREC: tl.constexpr,
    ):  # fmt: skip
        """Program (sequence x head): keys and values held, query blocks looped over; gradients rotated back.

        The scores are formed transposed (keys as rows), so the products that accumulate the key and value
        gradients have all the keys as their M dimension (faster than queries as rows at small's shape; see
        ``benchmarks/README.md``); the keys' rotary tables are read again at the end rather than held through the
        loop (registers)."""
        bh = tl.program_id(0)
        b = bh // H
        h = bh % H
        dt = QKV.dtype.element_ty
        keys = tl.arange(0, BLOCK_L)
        k_ok = keys < L
        half = tl.arange(0, HALF)
        cols = tl.arange(0, 2 * HALF)
        base = QKV + b * stride_qb + h * 2 * HALF
        dbase = DQKV + b * stride_qb + h * 2 * HALF
        k1f, k2f = _load_rotated(base + D, keys, k_ok, stride_ql, COS, SIN, HALF)
        k1 = k1f.to(dt)
        k2 = k2f.to(dt)
        v = tl.load(base + 2 * D + keys[:, None] * stride_ql + cols[None, :], mask=k_ok[:, None], other=0.0)
        dk1 = tl.zeros((BLOCK_L, HALF), dtype=tl.float32)
        dk2 = tl.zeros((BLOCK_L, HALF), dtype=tl.float32)
        dv = tl.zeros((BLOCK_L, 2 * HALF), dtype=tl.float32)
        for start in range(0, L, BLOCK_M):
            rows = start + tl.arange(0, BLOCK_M)
            m_ok = rows < L
            q1f, q2f = _load_rotated(base, rows, m_ok, stride_ql, COS, SIN, HALF)
            q1 = (q1f * scale).to(dt)
            q2 = (q2f * scale).to(dt)
            o_off = b * stride_ob + rows[:, None] * stride_ol + h * 2 * HALF + cols[None, :]
            do = tl.load(DO + o_off, mask=m_ok[:, None], other=0.0)
            o = tl.load(O + o_off, mask=m_ok[:, None], other=0.0)
            delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), 1)
            lse = tl.load(LSE + bh * L + rows, mask=m_ok, other=0.0)
            st = tl.dot(k1, tl.trans(q1), input_precision=PREC) + tl.dot(k2, tl.trans(q2), input_precision=PREC)
            pt = tl.where(k_ok[:, None] & m_ok[None, :], tl.exp(st - lse[None, :]), 0.0)
            do_t = do.to(dt)
            dv += tl.dot(pt.to(dt), do_t, input_precision=PREC)
            dpt = tl.dot(v, tl.trans(do_t), input_precision=PREC)
            dst = (pt * (dpt - delta[None, :])).to(dt)
            dk1 += tl.dot(dst, q1, input_precision=PREC)
            dk2 += tl.dot(dst, q2, input_precision=PREC)
            ds = tl.trans(dst)
            dq1 = tl.dot(ds, k1, input_precision=PREC) * scale
            dq2 = tl.dot(ds, k2, input_precision=PREC) * scale
            cq, sq = _tables(COS, SIN, rows, m_ok, HALF)
            q_ptr = dbase + rows[:, None] * stride_ql + half[None, :]
            tl.store(q_ptr, (dq1 * cq + dq2 * sq).to(DQKV.dtype.element_ty), mask=m_ok[:, None])
            tl.store(q_ptr + HALF, (dq2 * cq - dq1 * sq).to(DQKV.dtype.element_ty), mask=m_ok[:, None])
        ck, sk = _tables(COS, SIN, keys, k_ok, HALF)
        k_ptr = dbase + D + keys[:, None] * stride_ql + half[None, :]
        tl.store(k_ptr, (dk1 * ck + dk2 * sk).to(DQKV.dtype.element_ty), mask=k_ok[:, None])
        tl.store(k_ptr + HALF, (dk2 * ck - dk1 * sk).to(DQKV.dtype.element_ty), mask=k_ok[:, None])
        v_ptr = dbase + 2 * D + keys[:, None] * stride_ql + cols[None, :]
        tl.store(v_ptr, dv.to(DQKV.dtype.element_ty), mask=k_ok[:, None])


#: Launch settings of 16-bit inputs by phase and head width: query rows per block, warps and pipeline depth (the
#: fastest at L = 128, batch 512, in ``experiments/probe_attention_kernels.py``; see ``benchmarks/README.md``).
TILES = {
    "fwd": {
        32: {"BLOCK_M": 128, "num_warps": 8, "num_stages": 1},
        64: {"BLOCK_M": 128, "num_warps": 8, "num_stages": 1},
    },
    "bwd": {32: {"BLOCK_M": 32, "num_warps": 4, "num_stages": 3}, 64: {"BLOCK_M": 16, "num_warps": 4, "num_stages": 3}},
}
#: Float32 inputs (the precision checks) take twice the registers and shared memory: small tiles, no pipelining.
FP32_TILES = {
    "fwd": {"BLOCK_M": 32, "num_warps": 4, "num_stages": 1},
    "bwd": {"BLOCK_M": 16, "num_warps": 4, "num_stages": 1},
}


def _tiles(phase: str, dtype: torch.dtype, L: int, head_dim: int) -> dict:
    t = dict(FP32_TILES[phase] if dtype == torch.float32 else TILES[phase][head_dim])
    t["BLOCK_M"] = min(t["BLOCK_M"], _block_l(L))
    return t


def _block_l(L: int) -> int:
    return max(16, triton.next_power_of_2(L))


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def _check(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int) -> tuple[int, int, int, int]:
    if not isinstance(qkv, torch.Tensor) or qkv.dim() != 3 or qkv.shape[2] % 3:
        raise ValueError(f"qkv: expected a tensor [B, L, 3 D], got {getattr(qkv, 'shape', type(qkv).__name__)}")
    if qkv.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"qkv: expected float32, bfloat16 or float16, got {qkv.dtype}")
    B, L, D3 = qkv.shape
    D = D3 // 3
    if not isinstance(n_heads, int) or n_heads < 1 or D % n_heads:
        raise ValueError(f"n_heads: expected a positive divisor of D = {D}, got {n_heads!r}")
    hd = D // n_heads
    if not supports(L, hd):
        raise ValueError(
            f"qkv: the fused kernels take L <= {MAX_LENGTH} and a head width in {HEAD_DIMS}, "
            f"got L = {L}, head width {hd}"
        )
    for name, t in (("cos", cos), ("sin", sin)):
        if t.shape != (L, hd // 2) or t.dtype != torch.float32 or t.device != qkv.device:
            raise ValueError(
                f"{name}: expected float32 [L, hd / 2] = [{L}, {hd // 2}] on {qkv.device}, got "
                f"{t.dtype} {tuple(t.shape)} on {t.device}"
            )
    return B, L, D, hd


def forward_grid(B: int, L: int, n_heads: int, block_m: int) -> tuple[int, int]:
    """The forward kernel's launch grid: (sequence x head, query block). Sequences x heads go on the first axis,
    whose limit is 2^31 - 1 programs; the second allows only 65,535, which a large batch would pass."""
    return (B * n_heads, -(-L // block_m))


@torch.library.custom_op("amtheory::rotary_attention_fwd", mutates_args=())
def _fwd(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    B, L, D, hd = _check(qkv, cos, sin, n_heads)
    qkv, cos, sin = qkv.contiguous(), cos.contiguous(), sin.contiguous()
    o = torch.empty((B, L, D), dtype=qkv.dtype, device=qkv.device)
    lse = torch.empty((B, n_heads, L), dtype=torch.float32, device=qkv.device)
    t = _tiles("fwd", qkv.dtype, L, hd)
    _attn_fwd_kernel[forward_grid(B, L, n_heads, t["BLOCK_M"])](
        qkv, cos, sin, o, lse, L, n_heads, D, hd**-0.5, qkv.stride(0), qkv.stride(1), o.stride(0), o.stride(1),
        BLOCK_L=_block_l(L), HALF=hd // 2, PREC=_precision(qkv.dtype), **t,
    )  # fmt: skip
    return o, lse


@_fwd.register_fake
def _fwd_fake(qkv, cos, sin, n_heads):
    B, L, D3 = qkv.shape
    return qkv.new_empty((B, L, D3 // 3)), qkv.new_empty((B, n_heads, L), dtype=torch.float32)


@torch.library.custom_op("amtheory::rotary_attention_bwd", mutates_args=())
def _bwd(
    do: torch.Tensor, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:  # fmt: skip
    B, L, D3 = qkv.shape  # the forward validated these inputs
    D = D3 // 3
    hd = D // n_heads
    qkv, o, do = qkv.contiguous(), o.contiguous(), do.to(o.dtype).contiguous()
    dqkv = torch.empty_like(qkv)
    _attn_bwd_kernel[(B * n_heads,)](
        qkv, cos.contiguous(), sin.contiguous(), o, do, lse, dqkv, L, n_heads, D, hd**-0.5,
        qkv.stride(0), qkv.stride(1), o.stride(0), o.stride(1),
        BLOCK_L=_block_l(L), HALF=hd // 2, PREC=_precision(qkv.dtype), **_tiles("bwd", qkv.dtype, L, hd),
    )  # fmt: skip
    return dqkv


@_bwd.register_fake
def _bwd_fake(do, qkv, cos, sin, o, lse, n_heads):
    return torch.empty_like(qkv)


def _setup_context(ctx, inputs, output):
    qkv, cos, sin, n_heads = inputs
    o, lse = output
    ctx.save_for_backward(qkv, cos, sin, o, lse)
    ctx.n_heads = n_heads


def _backward(ctx, do, _dlse):
    qkv, cos, sin, o, lse = ctx.saved_tensors
    return _bwd(do, qkv, cos, sin, o, lse, ctx.n_heads), None, None, None


_fwd.register_autograd(_backward, setup_context=_setup_context)


def rotary_attention(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[B, L, D]`` rotary self-attention of the packed ``qkv [B, L, 3 D]`` (``cos, sin [L, hd / 2]`` float32), by
    the fused kernels; differentiable in ``qkv``. Same map as :func:`reference_rotary_attention`."""
    if triton is None:
        raise RuntimeError("rotary_attention: Triton is not installed")
    return _fwd(qkv, cos, sin, n_heads)[0]
