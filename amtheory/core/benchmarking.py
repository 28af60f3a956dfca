"""Timing helpers shared by the benchmarks: device-aware timing and the reference matrix-multiply rate.

Throughput figures in this project are reported as a share of the bf16 matrix-multiply rate measured in the same
run (an ``n x n x n`` product), so that figures from different GPUs and clocks compare.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], device: torch.device | str, *, repeats: int = 10, warmup: int = 3) -> float:
    """Mean seconds per call of ``fn`` after ``warmup`` calls: CUDA events on a GPU, the wall clock elsewhere."""
    return timed_steps(lambda i: fn(), device, repeats=repeats, warmup=warmup)


def timed_steps(
    fn: Callable[[int], object], device: torch.device | str, *, repeats: int = 10, warmup: int = 3
) -> float:
    """Mean seconds per call of ``fn(i)`` over calls ``i = warmup .. warmup + repeats - 1``, after the warm-up calls
    ``i = 0 .. warmup - 1`` (the index lets a training step draw its own batch): CUDA events on a GPU, the wall
    clock elsewhere."""
    device = torch.device(device)
    for i in range(warmup):
        fn(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(repeats):
            fn(warmup + i)
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3 / repeats
    t0 = time.perf_counter()
    for i in range(repeats):
        fn(warmup + i)
    return (time.perf_counter() - t0) / repeats


def bf16_matmul_rate(device: torch.device | str, n: int = 8192) -> float:
    """Measured FLOP/s (``2 n^3`` per product) of an ``n x n x n`` bf16 matrix product; float32 on a CPU, where
    bf16 products are emulated."""
    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, device, repeats=10)
