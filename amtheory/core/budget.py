"""Working-memory budgets for the batched computations of the Hopfield-family backends.

Every batched path whose intermediates grow with the number of queries times the number of patterns or positions
(overlaps, fields, scores, attention logits, exact digit products) runs over consecutive chunks of query rows, each
chunk sized so that its estimated working memory stays within a budget of bytes:

* on CUDA, ``CUDA_SHARE`` of the memory the device can still hand out when the call starts (the free memory that
  ``torch.cuda.mem_get_info`` reports plus what PyTorch's caching allocator holds unused), never less than
  ``CUDA_MIN_BUDGET``;
* on a CPU, ``CPU_BUDGET`` bytes;
* inside ``with memory_budget(max_bytes):`` (``amtheory run --max-memory``) the budget is lowered: on CUDA to
  ``CUDA_SHARE`` of what is left of ``max_bytes`` after the memory already allocated (still at least
  ``CUDA_MIN_BUDGET``), on a CPU to at most ``max_bytes``.

The rows of a chunk are computed exactly as they would be in one call, so the chunk size never changes a result of
the exact integer paths; the floating-point paths can differ in the last bits where a matrix-multiply library picks
another reduction order for another number of rows.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: Budget of one batched call on a CPU, in bytes.
CPU_BUDGET = 1 << 30
#: Share of the device memory still available (or of what a cap leaves) that one batched call may take on CUDA;
#: the rest is headroom for the caller's own tensors and for estimates that run short.
CUDA_SHARE = 0.5
#: Smallest budget on CUDA, in bytes: below it a call would spend its time launching kernels on a few rows.
CUDA_MIN_BUDGET = 64 << 20

_CAP: contextvars.ContextVar[int | None] = contextvars.ContextVar("amtheory_memory_cap", default=None)

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(name: str, value: object) -> int:
    """A number of bytes from an int (>= 1) or a text such as ``"40GiB"``, ``"512 MiB"``, ``"80GB"`` or ``"2e9"``
    (units B, KB/MB/GB/TB as powers of 1000, KiB/MiB/GiB/TiB as powers of 1024; case-insensitive)."""
    expected = "a positive number of bytes (an int, or text such as '40GiB', '512MiB', '80GB', '2e9')"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(value)
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            raise ValueError(f"{name}: expected {expected}, got {value!r}")
        n = int(float(m.group(1)) * _UNITS[unit])
    if n < 1:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return n


@contextlib.contextmanager
def memory_budget(max_bytes: int | str | None) -> Iterator[int | None]:
    """Within the block, lower the working-memory budget of every batched call (see the module docstring) to fit
    ``max_bytes`` (bytes, or text as ``parse_bytes`` reads it; None changes nothing). Nested blocks keep the
    smallest cap. Yields the cap in force."""
    if max_bytes is None:
        yield _CAP.get()
        return
    cap = parse_bytes("max_bytes", max_bytes)
    outer = _CAP.get()
    cap = cap if outer is None else min(cap, outer)
    token = _CAP.set(cap)
    try:
        yield cap
    finally:
        _CAP.reset(token)


def current_cap() -> int | None:
    """The cap set by the innermost ``memory_budget`` block (None outside any)."""
    return _CAP.get()


def budget_bytes(device: torch.device | str) -> int:
    """The working-memory budget, in bytes, of one batched call on ``device`` now (see the module docstring)."""
    device = torch.device(device)
    cap = _CAP.get()
    if device.type != "cuda":
        return CPU_BUDGET if cap is None else min(CPU_BUDGET, cap)
    free, _ = torch.cuda.mem_get_info(device)
    allocated = torch.cuda.memory_allocated(device)
    # Blocks the caching allocator keeps reserved but unused are available to this process as well.
    room = free + max(0, torch.cuda.memory_reserved(device) - allocated)
    if cap is not None:
        room = min(room, cap - allocated)
    return max(CUDA_MIN_BUDGET, int(CUDA_SHARE * room))


def rows_per_chunk(bytes_per_row: int | float, device: torch.device | str) -> int:
    """How many query rows of ``bytes_per_row`` working memory each fit the budget of ``device`` (at least 1)."""
    return max(1, int(budget_bytes(device) // max(1.0, float(bytes_per_row))))


def row_slices(n_rows: int, bytes_per_row: int | float, device: torch.device | str) -> list[slice]:
    """Consecutive slices covering ``range(n_rows)``, each at most ``rows_per_chunk(bytes_per_row, device)`` long
    (one slice when everything fits; none for zero rows)."""
    step = rows_per_chunk(bytes_per_row, device) if n_rows > 0 else 1
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def map_rows(fn: Callable[..., Any], *rows: torch.Tensor, bytes_per_row: int | float) -> Any:
    """``fn(*rows)`` computed over consecutive chunks of the rows (the first dimension, shared by every tensor in
    ``rows``) sized by ``row_slices``, the results (a tensor or a tuple of tensors per chunk) concatenated along
    their first dimension. Each chunk is one call of ``fn`` on contiguous rows, so ``fn`` must treat rows
    independently."""
    slices = row_slices(rows[0].shape[0], bytes_per_row, rows[0].device)
    if len(slices) <= 1:
        return fn(*rows)
    parts = [fn(*(r[s] for r in rows)) for s in slices]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts))
    return torch.cat(parts)


__all__ = [
    "CPU_BUDGET",
    "CUDA_MIN_BUDGET",
    "CUDA_SHARE",
    "budget_bytes",
    "current_cap",
    "map_rows",
    "memory_budget",
    "parse_bytes",
    "row_slices",
    "rows_per_chunk",
]
