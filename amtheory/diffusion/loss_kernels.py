"""Triton kernels of the chunked NELBO over a chunk of float32 logits ``[n, VP]`` (the trainer's loss on CUDA).

For each row of logits (``p = softmax``, ``l = log p``, ``K = exp(lam)``, so ``K p_j = exp(l_j + lam)``), the
NELBO of :mod:`amtheory.diffusion.loss` needs the log-sum-exp, the logits at ``x_0`` and ``x_t``, ``S_rest =
sum_{j != x_0} softplus(l_j + lam)`` and ``G = sum_j sigmoid(l_j + lam)``; its gradient with respect to the
logits is then ``A s_j + P p_j + ck [j = x_0] + ci [j = x_t]`` with per-row coefficients
(:func:`amtheory.diffusion.loss.row_coefficients`). Two kernels:

- :func:`row_stats`: one program per row, two sweeps over it (the log-sum-exp online, then the two sums; the x_0
  term is left out of ``S_rest`` rather than subtracted, so a memorized row loses nothing to cancellation);
- :func:`row_logit_grad`: one sweep that writes the gradient in the product dtype (bf16 on the GPU).

Between them, the per-row loss and coefficients are float32 torch code shared with the other paths. Like
:func:`amtheory.diffusion.loss.rows_loss_and_grad` these are inner kernels: token ids are not range-checked here
(:func:`amtheory.diffusion.loss.chunked_nelbo` checks them). Padding
columns (logit :data:`amtheory.diffusion.loss.PAD_LOGIT`) add exactly zero and get a zero gradient. Under
``TRITON_INTERPRET=1`` (set before Triton is first imported) the same kernels run on CPU tensors in Triton's
interpreter: exact but slow, which is how the tests check them without a GPU.

At the training shapes a forward + backward of the chunked loss with these kernels is faster than with the
compiled loss kernel's one fused reduction (``experiments/bench_loss_kernels.py``; figures in
``benchmarks/README.md``).
"""

import torch

from amtheory.core._triton import INTERPRET, can_run, tl, triton

__all__ = ["available", "interpreted", "row_logit_grad", "row_stats", "tiles_for"]


def interpreted() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1`` when Triton was imported)."""
    return triton is not None and INTERPRET


def available(device: torch.device | str) -> bool:
    """Whether the kernels can run on ``device``: Triton importable and a CUDA device, or a CPU device under
    Triton's interpreter (exact but slow: for tests)."""
    return can_run(device)


if triton is not None:

    @triton.jit
    def _log1p_term(e):
        """log1p(e) of each entry, e >= 0: the series to e^4 below 0.03 (relative error < 2e-7), where fl(1 + e)
        would lose e's digits, else log(1 + e)."""
        return tl.where(e < 0.03, e * (1.0 - e * (0.5 - e * (0.3333333333333333 - 0.25 * e))), tl.log(1.0 + e))

    @triton.jit
    def _row_stats_kernel(
        Z, X0, XT, KLAM, OUT, N, VP, stride_z, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        """The five statistics of :func:`row_stats`: two sweeps over each row of ``Z [N, VP]``."""
        pid = tl.program_id(0)
        rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
        rmask = rows < N
        zrow = Z + rows.to(tl.int64) * stride_z
        K = tl.load(KLAM + rows, mask=rmask, other=1.0)
        x0 = tl.load(X0 + rows, mask=rmask, other=0)
        xt = tl.load(XT + rows, mask=rmask, other=0)
        m = tl.full([BLOCK_R], float("-inf"), tl.float32)
        s = tl.zeros([BLOCK_R], tl.float32)
        for c0 in range(0, VP, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            z = tl.load(zrow[:, None] + cols[None, :], mask=rmask[:, None] & (cols[None, :] < VP), other=-30000.0)
            m_new = tl.maximum(m, tl.max(z, axis=1))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new[:, None]), axis=1)
            m = m_new
        lse = m + tl.log(s)
        S = tl.zeros([BLOCK_R], tl.float32)
        G = tl.zeros([BLOCK_R], tl.float32)
        for c0 in range(0, VP, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            z = tl.load(zrow[:, None] + cols[None, :], mask=rmask[:, None] & (cols[None, :] < VP), other=-30000.0)
            e = tl.exp(z - lse[:, None]) * K[:, None]
            one_e = 1.0 + e
            sp = _log1p_term(e)
            S += tl.sum(tl.where(cols[None, :] == x0[:, None], 0.0, sp), axis=1)  # x0 left out: no cancellation
            G += tl.sum(tl.fdiv(e, one_e), axis=1)
        tl.store(OUT + rows * 5 + 0, lse, mask=rmask)
        tl.store(OUT + rows * 5 + 1, tl.load(zrow + x0, mask=rmask, other=0.0), mask=rmask)
        tl.store(OUT + rows * 5 + 2, tl.load(zrow + xt, mask=rmask, other=0.0), mask=rmask)
        tl.store(OUT + rows * 5 + 3, S, mask=rmask)
        tl.store(OUT + rows * 5 + 4, G, mask=rmask)

    @triton.jit
    def _row_grad_kernel(
        Z, X0, XT, COEF, GRAD, N, VP, stride_z, stride_g, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        """:func:`row_logit_grad`: one sweep over each row of float32 logits ``Z [N, VP]``."""
        pid = tl.program_id(0)
        rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
        rmask = rows < N
        zrow = Z + rows.to(tl.int64) * stride_z
        grow = GRAD + rows.to(tl.int64) * stride_g
        x0 = tl.load(X0 + rows, mask=rmask, other=0)
        xt = tl.load(XT + rows, mask=rmask, other=0)
        lse = tl.load(COEF + rows * 6 + 0, mask=rmask, other=0.0)
        K = tl.load(COEF + rows * 6 + 1, mask=rmask, other=1.0)
        A = tl.load(COEF + rows * 6 + 2, mask=rmask, other=0.0)
        P = tl.load(COEF + rows * 6 + 3, mask=rmask, other=0.0)
        ck = tl.load(COEF + rows * 6 + 4, mask=rmask, other=0.0)
        ci = tl.load(COEF + rows * 6 + 5, mask=rmask, other=0.0)
        for c0 in range(0, VP, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            mask = rmask[:, None] & (cols[None, :] < VP)
            z = tl.load(zrow[:, None] + cols[None, :], mask=mask, other=-30000.0)
            p = tl.exp(z - lse[:, None])
            e = p * K[:, None]
            g = A[:, None] * tl.fdiv(e, 1.0 + e) + P[:, None] * p
            g += tl.where(cols[None, :] == x0[:, None], ck[:, None], 0.0)
            g += tl.where(cols[None, :] == xt[:, None], ci[:, None], 0.0)
            tl.store(grow[:, None] + cols[None, :], g.to(GRAD.dtype.element_ty), mask=mask)


# ------------------------------------------------------------------------------------------------ launchers
#: Rows per program, columns per step and warps of each kernel on the GPU (the sweep of
#: ``experiments/bench_loss_kernels.py --sweep``); the interpreter uses small tiles.
GPU_TILES: dict = {
    "row_stats": {"BLOCK_R": 1, "BLOCK_C": 2048, "num_warps": 4},
    "row_grad": {"BLOCK_R": 1, "BLOCK_C": 2048, "num_warps": 16},
}
CPU_TILES = {"BLOCK_R": 2, "BLOCK_C": 64}


def tiles_for(which: str) -> dict:
    """The GPU tiles of kernel ``which`` ("row_stats" or "row_grad")."""
    return dict(GPU_TILES[which])


def _row_tiles(z: torch.Tensor, tiles: dict | None, which: str) -> dict:
    t = dict(tiles or (tiles_for(which) if z.is_cuda else CPU_TILES))
    if not z.is_cuda:
        t.pop("num_warps", None)
    return t


def _check_rows(z: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, per_row) -> int:
    if triton is None:
        raise RuntimeError("the Triton loss kernels need Triton (pip install triton)")
    if not (z.is_cuda or interpreted()):
        raise RuntimeError("the Triton loss kernels run on CUDA tensors, or on the CPU under TRITON_INTERPRET=1")
    if z.dim() != 2 or z.dtype != torch.float32 or z.stride(1) != 1:
        raise ValueError(f"logits: expected float32 [n, VP] with unit column stride, got {z.dtype} {tuple(z.shape)}")
    n = z.shape[0]
    for name, v in (("x0", x0), ("xt", xt), *per_row):
        if v.shape[0] != n or not v.is_contiguous():
            raise ValueError(f"{name}: expected a contiguous tensor with {n} rows, got shape {tuple(v.shape)}")
    return n


def row_stats(
    logits: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, K: torch.Tensor, tiles: dict | None = None
) -> torch.Tensor:
    """Per row of float32 logits ``[n, VP]``: ``[lse, logit at x0, logit at xt, S_rest, G]`` as ``[n, 5]`` float32,
    with ``S_rest = sum_{j != x0} log1p(K p_j)``, ``G = sum_j K p_j / (1 + K p_j)``, ``p = softmax(logits)`` and
    ``K = exp(lam)`` per row. Padding columns must hold -30000 (:data:`amtheory.diffusion.loss.PAD_LOGIT`)."""
    K = K.float().contiguous()
    n = _check_rows(logits, x0, xt, [("K", K)])
    out = torch.empty((n, 5), dtype=torch.float32, device=logits.device)
    if n == 0:
        return out
    t = _row_tiles(logits, tiles, "row_stats")
    _row_stats_kernel[(-(-n // t["BLOCK_R"]),)](logits, x0, xt, K, out, n, logits.shape[1], logits.stride(0), **t)
    return out


def row_logit_grad(
    logits: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    coef: torch.Tensor,
    dtype: torch.dtype,
    tiles: dict | None = None,
) -> torch.Tensor:
    """``grad [n, VP]`` in ``dtype``: ``A s_j + P p_j + ck [j = x0] + ci [j = xt]`` with ``p = softmax(logits)`` and
    ``s_j = K p_j / (1 + K p_j)``; ``coef [n, 6]`` holds ``lse, K, A, P, ck, ci`` per row. Padding columns
    (-30000) get exactly zero."""
    coef = coef.float().contiguous()
    n = _check_rows(logits, x0, xt, [("coef", coef)])
    grad = torch.empty(logits.shape, dtype=dtype, device=logits.device)
    if n == 0:
        return grad
    t = _row_tiles(logits, tiles, "row_grad")
    _row_grad_kernel[(-(-n // t["BLOCK_R"]),)](
        logits, x0, xt, coef, grad, n, logits.shape[1], logits.stride(0), grad.stride(0), **t
    )
    return grad
