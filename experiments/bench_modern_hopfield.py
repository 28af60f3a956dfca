"""Benchmark one modern-Hopfield update ``X^T softmax(beta X xi)`` at large K: plain, torch SDPA, and streamed.

For each configuration (K stored patterns of width d, B queries) it prints the time per step, the throughput in
TFLOP/s (4 B K d floating-point operations: two matmuls), its share of the bf16 matmul rate measured in the same
run (an 8192^3 product on GPU), the peak memory the step itself allocates (against the size of the queries plus
the patterns, ``B d + K d``), and the largest deviation from a float32 reference on a subset of queries.

    python experiments/bench_modern_hopfield.py            # GPU: K=65536, d=512, B=4096 and K=2^20, d=128, B=1024
    python experiments/bench_modern_hopfield.py --small    # CPU-sized, a few seconds
    python experiments/bench_modern_hopfield.py --compile  # also the streamed step under torch.compile

Methods: "plain" materializes the [B, K] logits (bf16 matmuls, float32 softmax); "sdpa" is
``torch.nn.functional.scaled_dot_product_attention`` with keys = values = X (bf16); "stream" is
``ModernHopfield(beta, chunk_size=..., matmul_dtype=torch.bfloat16).continuous_step``. An out-of-memory error is
reported in the table instead of stopping the run.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from amtheory.backends.modern import ModernHopfield


def timed(fn: Callable[[], torch.Tensor], device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """Median seconds per call and peak bytes allocated by one call above what was allocated before it."""
    for _ in range(warmup):
        fn()
    peak = float("nan")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), peak


def matmul_rate(n: int, device: torch.device, warmup: int, repeats: int) -> float:
    """Measured bf16 matmul rate (FLOP/s) of an n x n x n product."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=g, device=device).to(torch.bfloat16)
    b = torch.randn(n, n, generator=g, device=device).to(torch.bfloat16)
    t, _ = timed(lambda: a @ b, device, warmup, repeats)
    return 2.0 * n**3 / t


def sdpa_backends(d: int, device: torch.device) -> list[str]:
    """Fused SDPA kernels that accept head dimension ``d`` in bf16 (probed on a tiny problem)."""
    if device.type != "cuda":
        return []
    from torch.nn.attention import SDPBackend, sdpa_kernel

    ok = []
    x = torch.randn(1, 1, 64, d, device=device, dtype=torch.bfloat16)
    for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue
        try:
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(x, x, x)
            ok.append(name.lower().removesuffix("_attention"))
        except RuntimeError:
            pass
    return ok


def bench_config(K: int, d: int, B: int, args, device: torch.device, rate: float) -> None:
    g = torch.Generator(device="cpu").manual_seed(K + d + B)
    # Spin patterns and queries: exact in bf16, so every method sees the same inputs.
    patterns = torch.randint(0, 2, (K, d), generator=g).to(device)
    queries = (2.0 * torch.randint(0, 2, (B, d), generator=g) - 1.0).to(device)
    beta = 1.0 / math.sqrt(d)  # logits of order one: a softmax spread over many patterns (the costly case)
    # Default chunk: the [B, chunk] logits take about a quarter of the patterns' size, so the step's own memory
    # stays of order B d + K d; at least 1024 (matmuls big enough for tensor cores), at most 8192.
    chunk = args.chunk or max(1024, min(8192, 2 ** int(math.log2(max(1, K * d // (4 * B))))))
    mem = ModernHopfield(beta, chunk_size=chunk, matmul_dtype=torch.bfloat16).store(patterns, vocab_size=2)
    del patterns
    X16 = mem.Xmm_
    q16 = queries.to(torch.bfloat16)
    n_ref = min(B, 64)
    ref = torch.softmax(beta * (queries[:n_ref] @ mem.X_.T), dim=-1) @ mem.X_  # float32 reference

    def plain():
        p = torch.softmax(beta * (q16 @ X16.T).float(), dim=-1)
        return (p.to(torch.bfloat16) @ X16).float()

    def sdpa():
        out = F.scaled_dot_product_attention(q16[None, None], X16[None, None], X16[None, None], scale=beta)
        return out[0, 0].float()

    methods: dict[str, Callable[[], torch.Tensor]] = {
        "plain": plain,
        "sdpa": sdpa,
        "stream": lambda: mem.continuous_step(queries),
    }
    if args.compile:
        try:
            step = torch.compile(mem.continuous_step)
            methods["stream+compile"] = lambda: step(queries)
        except Exception as e:  # compile support differs per platform; report rather than stop
            print(f"  torch.compile unavailable: {type(e).__name__}: {e}")
    flops = 4.0 * B * K * d
    size_mb = (B * d + K * d) * 2 / 2**20
    fused = sdpa_backends(d, device)
    print(
        f"\nK={K} d={d} B={B} beta={beta:.4f} chunk={chunk}: {flops / 1e9:.1f} GFLOP per step; "
        f"B d + K d in bf16 = {size_mb:.1f} MiB; fused SDPA kernels for d={d}: {fused or 'none'}"
    )
    print(f"  {'method':<15}{'ms/step':>10}{'TFLOP/s':>10}{'% bf16':>9}{'peak MiB':>11}{'max err':>10}")
    for name, fn in methods.items():
        try:
            t, peak = timed(fn, device, args.warmup, args.repeats)
            err = float((fn()[:n_ref] - ref).abs().max())
        except torch.OutOfMemoryError:
            print(f"  {name:<15}{'out of memory':>40}")
            continue
        except RuntimeError as e:
            print(f"  {name:<15} failed: {str(e).splitlines()[0][:90]}")
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        tf = flops / t / 1e12
        mem_mib = "n/a" if math.isnan(peak) else f"{peak / 2**20:.1f}"
        print(f"  {name:<15}{t * 1e3:>10.3f}{tf:>10.3f}{100 * flops / t / rate:>8.1f}%{mem_mib:>11}{err:>10.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CPU-sized problems that run in seconds")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available, cpu with --small)")
    parser.add_argument("--chunk", type=int, default=None, help="stored patterns per streamed block (default: auto)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time the streamed step under torch.compile")
    args = parser.parse_args()
    if args.device is None:
        args.device = "cpu" if args.small or not torch.cuda.is_available() else "cuda"
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    if args.small:
        configs = [(4096, 64, 256), (16384, 32, 128)]
        n_mm = 512
    else:
        configs = [(65536, 512, 4096), (2**20, 128, 1024)]
        n_mm = 8192
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (1 thread)"
    rate = matmul_rate(n_mm, device, args.warmup, args.repeats)
    print(f"device: {name}; torch {torch.__version__}")
    print(f"measured bf16 matmul rate ({n_mm}^3): {rate / 1e12:.2f} TFLOP/s")
    for K, d, B in configs:
        bench_config(K, d, B, args, device, rate)


if __name__ == "__main__":
    main()
