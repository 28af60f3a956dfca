"""What one reverse step of the chain needs from a denoiser's output, in one read of it: per position of logits
``[n, L, V]`` (the log posterior up to a constant per position), the log-sum-exp, the largest logit, its token
(the first on ties) and the logit at the current token.

The reverse step (:func:`amtheory.diffusion.sampler.steps.chain_update`) needs no more than these four numbers per
position, except at the few positions whose draw lands in the model's own part of the step weight (2-18% of them
in a step of a 50-step grid), where it reads that position's row again. Found by ``log_softmax``, then ``exp`` and a
sum over the vocabulary, they took about seven passes over ``[n, L, V]``, the largest cost of a measured group's
chain step (``benchmarks/h200_bench_group_chain.txt``); the Triton kernel here takes one (the log-sum-exp online).

``chain_stats(..., kernel="auto")`` takes the kernel on CUDA where Triton is installed, else torch operations
(``torch.logsumexp``, ``max``, ``gather``), which give the same numbers to float rounding (the tests compare the
two, with the kernel in Triton's interpreter on the CPU).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from amtheory.core._checks import check_choice
from amtheory.core._triton import INTERPRET, can_run, tl, triton

__all__ = ["ChainStats", "chain_stats"]

#: Columns per step and warps of the kernel on the GPU; the interpreter uses small tiles.
GPU_TILES = {"BLOCK_R": 1, "BLOCK_C": 2048, "num_warps": 4}
CPU_TILES = {"BLOCK_R": 2, "BLOCK_C": 64}


class ChainStats(NamedTuple):
    """Per position ``[n, L]``: ``lse`` the log-sum-exp of the logits, ``top`` the largest logit, ``best`` its
    token (long, the first on ties) and ``at_z`` the logit at the current token; ``lse``, ``top`` and ``at_z`` in
    float32 (float64 for float64 logits)."""

    lse: torch.Tensor
    top: torch.Tensor
    best: torch.Tensor
    at_z: torch.Tensor


if triton is not None:

    @triton.jit
    def _chain_stats_kernel(
        Z, XT, OUT, BEST, N, V, stride_z, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        """One sweep over each row of ``Z [N, V]``: the log-sum-exp online, the largest entry and its first index;
        ``OUT [N, 3]`` gets (lse, top, at_z), ``BEST [N]`` the index. A row whose entries are all -inf so far
        scales by exp(0) rather than exp(-inf + inf), so a first block of ruled-out tokens does not poison the sum;
        a NaN or +inf entry makes the lse NaN, and a row of -inf gives lse = -inf (the caller raises on both)."""
        pid = tl.program_id(0)
        rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
        rmask = rows < N
        zrow = Z + rows.to(tl.int64) * stride_z
        m = tl.full([BLOCK_R], float("-inf"), tl.float32)
        s = tl.zeros([BLOCK_R], tl.float32)
        best = tl.zeros([BLOCK_R], tl.int32)
        for c0 in range(0, V, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            mask = rmask[:, None] & (cols[None, :] < V)
            z = tl.load(zrow[:, None] + cols[None, :], mask=mask, other=float("-inf")).to(tl.float32)
            bm, bi = tl.max(z, axis=1, return_indices=True, return_indices_tie_break_left=True)
            best = tl.where(bm > m, c0 + bi, best)
            m_new = tl.maximum(m, bm)
            m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)
            s = s * tl.exp(m - m_ref) + tl.sum(tl.exp(z - m_ref[:, None]), axis=1)
            m = m_new
        lse = tl.where(m == float("-inf"), m, m + tl.log(s))
        xt = tl.load(XT + rows, mask=rmask, other=0)
        tl.store(OUT + rows * 3 + 0, lse, mask=rmask)
        tl.store(OUT + rows * 3 + 1, m, mask=rmask)
        tl.store(OUT + rows * 3 + 2, tl.load(zrow + xt, mask=rmask, other=0.0).to(tl.float32), mask=rmask)
        tl.store(BEST + rows, best, mask=rmask)


def _use_kernel(logits: torch.Tensor, kernel: str) -> bool:
    if kernel == "torch":
        return False
    usable = logits.dtype in (torch.float32, torch.bfloat16, torch.float16) and can_run(logits.device)
    if kernel == "triton":
        if not usable:
            raise ValueError(
                f"kernel: 'triton' needs Triton and float32, bf16 or float16 logits on CUDA (or on the CPU under "
                f"TRITON_INTERPRET=1), got {logits.dtype} on {logits.device}"
            )
        return True
    # "auto": compiled kernels only; the interpreter is for tests that ask for it.
    return usable and logits.is_cuda and not INTERPRET


def _stats_triton(z: torch.Tensor, x: torch.Tensor, tiles: dict | None) -> ChainStats:
    n, L, V = z.shape
    flat = z.reshape(n * L, V)
    if flat.stride(1) != 1:
        flat = flat.contiguous()
    xt = x.reshape(-1).contiguous()
    out = torch.empty((n * L, 3), dtype=torch.float32, device=z.device)
    best = torch.empty(n * L, dtype=torch.int32, device=z.device)
    if n * L:
        t = dict(tiles or (GPU_TILES if z.is_cuda else CPU_TILES))
        if not z.is_cuda:
            t.pop("num_warps", None)
        grid = (-(-(n * L) // t["BLOCK_R"]),)
        _chain_stats_kernel[grid](flat, xt, out, best, n * L, V, flat.stride(0), **t)
    out = out.view(n, L, 3)
    return ChainStats(out[..., 0], out[..., 1], best.view(n, L).long(), out[..., 2])


def _stats_torch(z: torch.Tensor, x: torch.Tensor) -> ChainStats:
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    top, best = z.max(dim=-1)
    return ChainStats(torch.logsumexp(z, dim=-1), top, best, z.gather(-1, x.unsqueeze(-1)).squeeze(-1))


def chain_stats(logits: torch.Tensor, x_t: torch.Tensor, *, kernel: str = "auto", tiles: dict | None = None):
    """The :class:`ChainStats` of ``logits`` ``[n, L, V]`` (any float dtype; unnormalized) at the current tokens
    ``x_t`` ``[n, L]`` (not range-checked here: the chain's callers check them). ``kernel``: "auto" (the Triton
    kernel on CUDA, else torch), "triton" or "torch"; ``tiles`` overrides the kernel's tiles."""
    check_choice("kernel", kernel, ("auto", "triton", "torch"))
    if _use_kernel(logits, kernel):
        return _stats_triton(logits, x_t, tiles)
    return _stats_torch(logits, x_t)
