"""Exact integer matrix products on bf16 tensor cores.

Classical Hopfield fields in the pattern form are integer products: overlaps ``m = S Xi^T`` (spins times spins,
``|m| <= N``) and fields ``H = m Xi``. bf16 holds every integer of magnitude <= 256 exactly and tensor cores
accumulate in float32, which is exact while partial sums stay below 2^24. Splitting an integer matrix into
balanced base-256 digits (each in [-128, 128]) and stacking the digits along the rows gives the exact product in
one bf16 matrix multiply with float32 output, at tensor-core speed instead of the float32 (non-tensor-core) rate.
"""

from __future__ import annotations

import math

import torch

_BASE = 256.0


def n_digits(max_abs: int) -> int:
    """Balanced base-256 digits needed for integers of magnitude <= ``max_abs``."""
    return max(1, math.ceil(math.log(2 * max_abs + 1) / math.log(_BASE)))


def split_digits(a: torch.Tensor, count: int) -> torch.Tensor:
    """``a`` (integer-valued float) -> ``[count, *a.shape]`` balanced digits with ``a = sum_k 256^k d_k``."""
    out = []
    r = a.to(torch.float32)
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


def exact_int_matmul(a: torch.Tensor, b: torch.Tensor, *, max_abs_a: int) -> torch.Tensor:
    """``a @ b`` exactly, in float32, for integer-valued ``a`` ``[M, K]`` with ``|a| <= max_abs_a`` and ``b``
    ``[K, N]`` with entries in {-1, 0, 1}.

    On CUDA this uses bf16 tensor cores with float32 accumulation over digit-split ``a``; elsewhere a float32
    product (exact for these magnitudes). Exactness needs ``128 K < 2^24`` and the result below 2^24.
    """
    if b.shape[0] * 128 >= 2**24:
        raise ValueError(f"b: expected at most {2**24 // 128} rows for an exact product, got {b.shape[0]}")
    if a.device.type != "cuda" or not bf16_out_fp32_supported(a.device):
        return a.to(torch.float32) @ b.to(torch.float32)
    c = n_digits(max_abs_a)
    if c == 1:
        return torch.mm(a.to(torch.bfloat16), b.to(torch.bfloat16), out_dtype=torch.float32)
    d = split_digits(a, c)  # [c, M, K]
    out = torch.mm(d.flatten(0, 1).to(torch.bfloat16), b.to(torch.bfloat16), out_dtype=torch.float32)
    out = out.view(c, a.shape[0], b.shape[1])
    total = out[-1]
    for k in range(c - 2, -1, -1):
        total = total * _BASE + out[k]
    return total
