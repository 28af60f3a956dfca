"""Exact integer matrix products on bf16 tensor cores.

Hopfield fields in the pattern form are integer products: overlaps ``m = S Xi^T`` (spins times spins,
``|m| <= N``) and fields such as ``H = m Xi`` or, for dense memories, ``P(m) Xi``. bf16 holds every integer of
magnitude <= 256 exactly and tensor cores accumulate in float32, which is exact while partial sums stay below 2^24.
Splitting an integer matrix into balanced base-256 digits (each in [-128, 128]) and stacking the digits along the
rows gives the exact product in one bf16 matrix multiply with float32 output, at tensor-core speed instead of the
float32 (non-tensor-core) rate.
"""

from __future__ import annotations

import math

import torch

from amtheory.core import budget

_BASE = 256.0


def n_digits(max_abs: int) -> int:
    """Balanced base-256 digits needed for integers of magnitude <= ``max_abs``."""
    return max(1, math.ceil(math.log(2 * max_abs + 1) / math.log(_BASE)))


def split_digits(a: torch.Tensor, count: int) -> torch.Tensor:
    """``a`` (integer-valued float) -> ``[count, *a.shape]`` balanced digits with ``a = sum_k 256^k d_k``."""
    out = []
    # float64 input stays float64 (integers up to 2^53 split exactly); anything else is split in float32.
    r = a if a.dtype == torch.float64 else a.to(torch.float32)
    for _ in range(count):
        d = r - _BASE * torch.round(r / _BASE)
        out.append(d)
        r = (r - d) / _BASE
    return torch.stack(out)


_SUPPORTED: dict[str, bool] = {}


def bf16_out_fp32_supported(device: torch.device) -> bool:
    """Whether ``torch.mm(bf16, bf16, out_dtype=float32)`` runs on ``device`` (probed once per device)."""
    if device.type != "cuda":
        return False
    key = str(device)
    if key not in _SUPPORTED:
        _SUPPORTED[key] = _probe(device)
    return _SUPPORTED[key]


def _probe(device: torch.device) -> bool:
    try:
        a = torch.ones(16, 16, device=device, dtype=torch.bfloat16)
        torch.mm(a, a, out_dtype=torch.float32)
        return True
    except (RuntimeError, TypeError):
        return False


def digit_matmul(
    a: torch.Tensor, b16: torch.Tensor, *, max_abs: int, out_dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``a @ b`` exactly, for integer-valued ``a`` ``[M, K]`` (``|a| <= max_abs``) and ``b16`` ``[K, N]`` in bf16
    with entries in {-1, 0, 1}: one bf16 product of the stacked balanced digits of ``a`` with float32
    accumulation (exact while ``128 K < 2^24``), the digits recombined in ``out_dtype`` (float64 where the result
    exceeds 2^24). On a CPU the same bf16 operands are multiplied in float32, so the digit arithmetic is checkable
    there. Rows of ``a`` go through in chunks sized to the working-memory budget (``amtheory.core.budget``): every
    output row is the same exact integer whatever the chunk."""
    c = n_digits(max_abs)
    K, N = b16.shape
    # The digit split (a few float32 or float64 copies of a row, then c bf16 rows), the c float32 product rows, their
    # out_dtype copy and the recombination.
    per_row = 8 * (3 + 2 * c) * K + 2 * c * K + (12 * c + 24) * N
    return budget.map_rows(lambda rows: _digit_matmul_rows(rows, b16, c, out_dtype), a, bytes_per_row=per_row)


def _digit_matmul_rows(a: torch.Tensor, b16: torch.Tensor, c: int, out_dtype: torch.dtype) -> torch.Tensor:
    d16 = split_digits(a, c).flatten(0, 1).to(torch.bfloat16)  # [c M, K]
    if d16.is_cuda:
        out = torch.mm(d16, b16, out_dtype=torch.float32)
    else:
        out = d16.float() @ b16.float()
    out = out.view(c, a.shape[0], b16.shape[1]).to(out_dtype)
    total = out[-1]
    for k in range(c - 2, -1, -1):
        total = total * _BASE + out[k]
    return total
