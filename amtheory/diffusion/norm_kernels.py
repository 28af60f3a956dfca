"""Fused residual update and modulated LayerNorm of the DiT's blocks: Triton kernels, forward and backward.

Between the matrix products of a DiT block, the float32 residual stream takes a branch's output and is normalised
for the next branch::

    x_new = x + gate_b * dropout(o)                                  (residual update, dropout rate p)
    h     = LayerNorm(x_new) * w * (1 + scale_b) + shift_b            (modulated LayerNorm, no bias)

with ``gate, shift, scale [B, D]`` from the time conditioning of sequence ``b``. Compiled as separate elementwise
and reduction kernels, this reads and writes the ``[B, L, D]`` stream several times per branch, and the dropout
mask is stored for the backward pass. Here one forward kernel reads ``x`` and ``o`` once and writes ``x_new``,
``h`` and each row's mean and inverse standard deviation; the dropout mask is drawn from a counter-based generator
(Philox, keyed by a seed and the element's position; one call serves four elements) and drawn again in the backward
pass instead of being stored. One backward kernel (a program per slice of one sequence) reads the two incoming
gradients, ``x_new`` and ``o`` once, writes the gradients of ``x`` and ``o``, and accumulates per-sequence sums
from which the small gradients of ``gate``, ``shift``, ``scale`` and ``w`` follow.

The block applies the mlp branch's residual update in the next block's first call (or before the final norm), so
every norm of the stream but the first is one such call. :func:`add_norm` is an autograd function with its own
backward that launches the kernels; torch.compile traces it and launches them from the compiled block's own code.
:func:`reference_add_norm` is the same map in torch operations, the DiT's path where the kernels do not apply (and
the tests' reference, given the same dropout mask, which :func:`dropout_keep` returns). Under
``TRITON_INTERPRET=1`` the kernels run on CPU tensors in Triton's interpreter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from amtheory.core._triton import can_run, tl, triton

__all__ = [
    "AUTO_MIN_WIDTH",
    "NORM_KERNELS",
    "add_norm",
    "available",
    "dropout_keep",
    "reference_add_norm",
    "use_fused_norm",
]

EPS = 1e-5  # F.layer_norm's default, as in the DiT's _LayerNorm
MAX_WIDTH = 8192


def available(device: torch.device | str) -> bool:
    """Triton importable and a CUDA device, or a CPU device under Triton's interpreter (for tests)."""
    return can_run(device)


if triton is not None:

    @triton.jit
    def _keep(seed, rows, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, p):
        """Keep mask ``[BLOCK_R, BLOCK_D]`` of a tile of whole rows: one Philox call gives the uniforms of four
        adjacent columns (counter ``row * BLOCK_D / 4 + col / 4``), a fixed permutation of them within each group
        of four, so drawing costs a quarter of one call per element."""
        Q: tl.constexpr = BLOCK_D // 4
        counters = rows[:, None] * Q + tl.arange(0, Q)[None, :]
        u0, u1, u2, u3 = tl.rand4x(seed, counters)
        u = tl.join(tl.join(u0, u1), tl.join(u2, u3))  # [BLOCK_R, Q, 2, 2]
        return tl.reshape(u, (BLOCK_R, BLOCK_D)) >= p

    @triton.jit
    def _keep_kernel(SEED, OUT, T, D, p, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        cols = tl.arange(0, BLOCK_D)
        m = (rows < T)[:, None] & (cols < D)[None, :]
        keep = _keep(tl.load(SEED), rows, BLOCK_R, BLOCK_D, tl.cast(p, tl.float32))
        tl.store(OUT + rows[:, None] * D + cols[None, :], keep.to(tl.int8), mask=m)

    @triton.jit
    def _add_norm_fwd_kernel(
        X, O, GATE, W, SHIFT, SCALE, SEED, XN, H, MEAN, RSTD, T, L, D, p, inv_keep, eps,
        DROPOUT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        # Scalars may arrive as float64 (torch.compile passes Python floats so): compute in float32.
        p, inv_keep, eps = tl.cast(p, tl.float32), tl.cast(inv_keep, tl.float32), tl.cast(eps, tl.float32)
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        cols = tl.arange(0, BLOCK_D)
        r_ok = rows < T
        c_ok = cols < D
        m = r_ok[:, None] & c_ok[None, :]
        offs = rows[:, None] * D + cols[None, :]
        mod = (rows // L)[:, None] * D + cols[None, :]
        x = tl.load(X + offs, mask=m, other=0.0).to(tl.float32)
        o = tl.load(O + offs, mask=m, other=0.0).to(tl.float32)
        if DROPOUT:
            o = tl.where(_keep(tl.load(SEED), rows, BLOCK_R, BLOCK_D, p), o * inv_keep, 0.0)
        x = x + tl.load(GATE + mod, mask=m, other=0.0).to(tl.float32) * o
        tl.store(XN + offs, x, mask=m)
        mean = tl.sum(x, 1) / D
        xc = tl.where(m, x - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, 1) / D + eps)
        w = tl.load(W + cols, mask=c_ok, other=0.0).to(tl.float32)
        scale = tl.load(SCALE + mod, mask=m, other=0.0).to(tl.float32)
        shift = tl.load(SHIFT + mod, mask=m, other=0.0).to(tl.float32)
        h = xc * rstd[:, None] * w[None, :] * (1.0 + scale) + shift
        tl.store(H + offs, h.to(H.dtype.element_ty), mask=m)
        tl.store(MEAN + rows, mean, mask=r_ok)
        tl.store(RSTD + rows, rstd, mask=r_ok)

    @triton.jit
    def _add_norm_bwd_kernel(
        GXN, GH, XN, O, GATE, W, SCALE, MEAN, RSTD, SEED, GX, GO, SUMS, B, L, D, CHUNK, p, inv_keep,
        DROPOUT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        p, inv_keep = tl.cast(p, tl.float32), tl.cast(inv_keep, tl.float32)
        b = tl.program_id(0)
        s = tl.program_id(1)
        cols = tl.arange(0, BLOCK_D)
        c_ok = cols < D
        w = tl.load(W + cols, mask=c_ok, other=0.0).to(tl.float32)
        scale1 = 1.0 + tl.load(SCALE + b * D + cols, mask=c_ok, other=0.0).to(tl.float32)
        gate = tl.load(GATE + b * D + cols, mask=c_ok, other=0.0).to(tl.float32)
        if DROPOUT:
            seed = tl.load(SEED)
        end = tl.minimum((s + 1) * CHUNK, L)
        acc_p = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)  # sum of g_h * xhat
        acc_q = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)  # sum of g_h
        acc_g = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)  # sum of g_x * dropout(o)
        for r0 in range(s * CHUNK, end, BLOCK_R):
            local = r0 + tl.arange(0, BLOCK_R)
            r_ok = local < end
            rows = b * L + local
            m = r_ok[:, None] & c_ok[None, :]
            offs = rows[:, None] * D + cols[None, :]
            gh = tl.load(GH + offs, mask=m, other=0.0).to(tl.float32)
            mean = tl.load(MEAN + rows, mask=r_ok, other=0.0)
            rstd = tl.load(RSTD + rows, mask=r_ok, other=0.0)
            xhat = tl.where(m, (tl.load(XN + offs, mask=m, other=0.0) - mean[:, None]) * rstd[:, None], 0.0)
            acc_p += gh * xhat
            acc_q += gh
            gxhat = gh * scale1[None, :] * w[None, :]
            c1 = tl.sum(gxhat * xhat, 1) / D
            c2 = tl.sum(gxhat, 1) / D
            gx = rstd[:, None] * (gxhat - c2[:, None] - xhat * c1[:, None])
            gx += tl.load(GXN + offs, mask=m, other=0.0).to(tl.float32)
            gx = tl.where(m, gx, 0.0)
            tl.store(GX + offs, gx, mask=m)
            o = tl.load(O + offs, mask=m, other=0.0).to(tl.float32)
            if DROPOUT:
                kept = tl.where(_keep(seed, rows, BLOCK_R, BLOCK_D, p), inv_keep, 0.0)
            else:
                kept = 1.0
            acc_g += gx * o * kept
            tl.store(GO + offs, (gx * gate[None, :] * kept).to(GO.dtype.element_ty), mask=m)
        # This slice's parts of the gradients of gate, shift, scale [B, D] and weight [D] (summed over b later).
        part = SUMS + (s * B + b) * D + cols
        step = tl.num_programs(1) * B * D
        p_sum = tl.sum(acc_p, 0)
        tl.store(part, tl.sum(acc_g, 0), mask=c_ok)
        tl.store(part + step, tl.sum(acc_q, 0), mask=c_ok)
        tl.store(part + 2 * step, p_sum * w, mask=c_ok)
        tl.store(part + 3 * step, p_sum * scale1, mask=c_ok)


#: Launch settings by phase: elements per program tile (rows = TILE / BLOCK_D) and warps; the backward also
#: aims for at least ``PROGRAMS`` programs, splitting each sequence into slices when the batch is smaller.
TILES = {"fwd": {"TILE": 4096, "num_warps": 8}, "bwd": {"TILE": 4096, "num_warps": 8, "PROGRAMS": 2048}}


def _block_d(D: int) -> int:
    return max(4, triton.next_power_of_2(D))


def _rows(phase: str, D: int) -> int:
    return max(1, TILES[phase]["TILE"] // _block_d(D))


def _check(
    x: torch.Tensor, o: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor,
    scale: torch.Tensor, p: float,
) -> tuple[int, int, int]:  # fmt: skip
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.dtype != torch.float32:
        raise ValueError(
            f"x: expected a float32 tensor [B, L, D], got {getattr(x, 'dtype', type(x).__name__)} "
            f"{tuple(getattr(x, 'shape', ()))}"
        )
    B, L, D = x.shape
    if not 1 <= D <= MAX_WIDTH or B * L * D >= 2**31:
        raise ValueError(f"x: the fused kernels take D <= {MAX_WIDTH} and B L D < 2^31, got shape {tuple(x.shape)}")
    if not isinstance(o, torch.Tensor) or o.shape != x.shape or not o.is_floating_point() or o.device != x.device:
        raise ValueError(
            f"o: expected a float tensor of x's shape {tuple(x.shape)} on {x.device}, got "
            f"{getattr(o, 'dtype', type(o).__name__)} {tuple(getattr(o, 'shape', ()))}"
        )
    for name, t, shape in (("gate", gate, (B, D)), ("weight", weight, (D,)), ("shift", shift, (B, D)),
                           ("scale", scale, (B, D))):  # fmt: skip
        if not isinstance(t, torch.Tensor) or t.shape != shape or not t.is_floating_point() or t.device != x.device:
            raise ValueError(
                f"{name}: expected a float tensor {list(shape)} on {x.device}, got "
                f"{getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}"
            )
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"p: expected a dropout rate in [0, 1), got {p!r}")
    return B, L, D


def _fwd(
    x: torch.Tensor, o: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor,
    scale: torch.Tensor, seed: torch.Tensor | None, p: float, out_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``x_new, h`` and each row's mean and inverse standard deviation. :func:`add_norm` validated the inputs."""
    B, L, D = x.shape
    xn = torch.empty_like(x)
    h = torch.empty(x.shape, dtype=out_dtype, device=x.device)
    mean = torch.empty((B * L,), dtype=torch.float32, device=x.device)
    rstd = torch.empty_like(mean)
    rows = _rows("fwd", D)
    _add_norm_fwd_kernel[(triton.cdiv(B * L, rows),)](
        x.contiguous(), o.contiguous(), gate.contiguous(), weight.contiguous(), shift.contiguous(),
        scale.contiguous(), seed if seed is not None else mean, xn, h, mean, rstd, B * L, L, D, p, 1.0 / (1.0 - p),
        EPS, DROPOUT=p > 0.0, BLOCK_R=rows, BLOCK_D=_block_d(D), num_warps=TILES["fwd"]["num_warps"],
    )  # fmt: skip
    return xn, h, mean, rstd


def _bwd(
    g_xn: torch.Tensor, g_h: torch.Tensor, xn: torch.Tensor, o: torch.Tensor, gate: torch.Tensor,
    weight: torch.Tensor, scale: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor, seed: torch.Tensor | None,
    p: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Gradients of x and o, and ``[4, B, D]``: those of gate, shift and scale and the per-sequence parts of the
    weight's."""
    B, L, D = xn.shape
    rows = _rows("bwd", D)
    split = max(1, min(triton.cdiv(TILES["bwd"]["PROGRAMS"], B), triton.cdiv(L, rows)))
    chunk = triton.cdiv(L, split)
    split = triton.cdiv(L, chunk)
    gx = torch.empty_like(xn)
    go = torch.empty(o.shape, dtype=o.dtype, device=o.device)
    sums = torch.empty((4, split, B, D), dtype=torch.float32, device=xn.device)
    _add_norm_bwd_kernel[(B, split)](
        g_xn.contiguous(), g_h.contiguous(), xn, o.contiguous(), gate.contiguous(),
        weight.contiguous(), scale.contiguous(), mean, rstd, seed if seed is not None else mean, gx, go, sums,
        B, L, D, chunk, p, 1.0 / (1.0 - p), DROPOUT=p > 0.0, BLOCK_R=rows,
        BLOCK_D=_block_d(D), num_warps=TILES["bwd"]["num_warps"],
    )  # fmt: skip
    return gx, go, sums[:, 0] if split == 1 else sums.sum(1)


class _AddNorm(torch.autograd.Function):
    """The fused map with its own backward. An autograd function launching Triton kernels, rather than a custom
    operator: torch.compile traces it and launches the kernels from its generated code, which costs the host less
    per call than dispatching an opaque operator to Python (the host costs are in ``benchmarks/README.md``)."""

    @staticmethod
    def forward(ctx, x, o, gate, weight, shift, scale, seed, p, out_dtype):
        xn, h, mean, rstd = _fwd(x, o, gate, weight, shift, scale, seed, p, out_dtype)
        ctx.save_for_backward(xn, o, gate, weight, scale, mean, rstd, seed)
        ctx.p = p
        ctx.shift_dtype = shift.dtype
        return xn, h

    @staticmethod
    def backward(ctx, g_xn, g_h):
        # Both output gradients arrive as tensors (autograd fills an unused output's with zeros).
        xn, o, gate, weight, scale, mean, rstd, seed = ctx.saved_tensors
        gx, go, sums = _bwd(g_xn, g_h, xn, o, gate, weight, scale, mean, rstd, seed, ctx.p)
        g_gate, g_shift, g_scale, g_w = sums.unbind(0)
        return (gx, go, g_gate.to(gate.dtype), g_w.sum(0).to(weight.dtype), g_shift.to(ctx.shift_dtype),
                g_scale.to(scale.dtype), None, None, None)  # fmt: skip


def add_norm(
    x: torch.Tensor, o: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor,
    scale: torch.Tensor, *, p: float = 0.0, seed: torch.Tensor | None = None, out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(x_new, h)`` of the module docstring by the fused kernels: ``x [B, L, D]`` float32, ``o [B, L, D]``,
    ``gate, shift, scale [B, D]``, ``weight [D]``; dropout rate ``p`` with the mask :func:`dropout_keep` gives for
    ``seed`` (one int64 on the device; unused when ``p = 0``); ``h`` in ``out_dtype`` (default ``o.dtype``).
    Differentiable in every tensor but ``seed``."""
    if triton is None:
        raise RuntimeError("add_norm: Triton is not installed")
    _check(x, o, gate, weight, shift, scale, p)
    if p > 0.0 and (
        not isinstance(seed, torch.Tensor) or seed.numel() != 1 or seed.dtype != torch.int64 or seed.device != x.device
    ):
        raise ValueError(f"seed: expected one int64 on {x.device} for dropout rate {p}, got {seed!r:.80}")
    return _AddNorm.apply(x, o, gate, weight, shift, scale, seed if p > 0.0 else None, float(p), out_dtype or o.dtype)


def dropout_keep(seed: torch.Tensor, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """The keep mask (bool, ``shape = (..., D)``) that :func:`add_norm` draws for ``seed`` and rate ``p`` over a
    stream of that shape: a Philox draw keyed by ``seed`` and the element's row and column group."""
    D = shape[-1]
    T = 1
    for s in shape[:-1]:
        T *= s
    out = torch.empty((T, D), dtype=torch.int8, device=seed.device)
    rows = _rows("fwd", D)
    _keep_kernel[(triton.cdiv(T, rows),)](seed, out, T, D, float(p), BLOCK_R=rows, BLOCK_D=_block_d(D))
    return out.view(shape).bool()


def reference_add_norm(
    x: torch.Tensor, o: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor,
    scale: torch.Tensor, keep: torch.Tensor | None = None, p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The same map in torch operations, in float32 (``h`` in float32); ``keep`` the dropout mask (or none)."""
    o = o.float()
    if keep is not None:
        o = torch.where(keep, o / (1.0 - p), 0.0)
    xn = x + gate.float()[:, None] * o
    h = F.layer_norm(xn, (xn.shape[-1],), eps=EPS) * weight.float()
    return xn, h * (1.0 + scale.float()[:, None]) + shift.float()[:, None]


#: Which residual-norm the DiT uses (the ``norm`` of :class:`amtheory.diffusion.kernels.Kernels`): "auto" (the fused
#: kernels on CUDA for a float32 stream at least :data:`AUTO_MIN_WIDTH` wide under 16-bit autocast; else torch
#: operations), "fused" (always; an error where they cannot run) or "torch".
NORM_KERNELS = ("auto", "fused", "torch")
#: Narrowest stream "auto" fuses. Fusing shortens the step of a wide stream (small's, 768); a narrow stream's
#: kernels are short, the host's cost of the extra calls sets its step, and fusing made tiny's (256) slower
#: (``docs/design_notes.md``; figures in ``benchmarks/README.md``).
AUTO_MIN_WIDTH = 512


def use_fused_norm(x: torch.Tensor, kernel: str = "auto") -> bool:
    """Whether the DiT's residual updates and norms of the stream ``x`` go through :func:`add_norm` under
    ``kernel`` (one of :data:`NORM_KERNELS`); an error when "fused" is forced where the kernels cannot run."""
    if kernel not in NORM_KERNELS:
        raise ValueError(f"kernel: expected one of {NORM_KERNELS}, got {kernel!r}")
    if kernel == "torch":
        return False
    ok = available(x.device) and x.dtype == torch.float32 and x.shape[-1] <= MAX_WIDTH
    if kernel == "fused":
        if not ok:
            raise RuntimeError(
                f"norm 'fused': the kernels need Triton on CUDA (or its interpreter on a CPU) and a float32 "
                f"stream of width <= {MAX_WIDTH}; got {x.dtype} {tuple(x.shape)} on {x.device}"
            )
        return True
    dev = x.device.type
    sixteen = torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) in (torch.bfloat16, torch.float16)
    return ok and dev == "cuda" and sixteen and x.shape[-1] >= AUTO_MIN_WIDTH
