"""Benchmark one modern-Hopfield update ``X^T softmax(beta X xi)`` at large K across kernels.

For each configuration (K stored patterns of width d, B queries) it times every variant and reports the time per
step, the throughput in TFLOP/s (4 B K d floating-point operations: two matmuls), its share of the bf16 matmul rate
measured in the same run (an 8192^3 product on GPU), the peak memory one step allocates (against the size of the
queries plus the patterns, ``B d + K d``), and the largest deviation from a float32 reference on a subset of
queries. It prints a Markdown table per configuration, the fastest variant, and writes all rows with ``--json``.
The GPU configurations are K=65536 d=512 B=4096 and K=2^20 d=128 B=1024; ``--small`` runs CPU-sized ones.

Variants (each guarded: one that fails or runs out of memory is reported and skipped):
  plain            materialized [B, K] logits, bf16 matmuls, float32 softmax
  sdpa             torch.nn.functional.scaled_dot_product_attention, keys = values = X
  stream[-cN]      ModernHopfield(kernel="stream"): chunked online softmax, chunk N
  stream+compile   the streamed step under torch.compile (large chunks)
  split-B/S=N      X cut into N slices run as one batched fused call of backend B (flash, cudnn, efficient;
                   reference = plain matmuls per slice), merged with softmax_s(lse_s)
  triton/...       the split Triton kernel with block sizes (BLOCK_M x BLOCK_N, warps, stages) and N slices
  auto             ModernHopfield(kernel="auto"), what the library runs by default
Total run time is capped by ``--budget`` seconds: once spent, the remaining optional variants are skipped.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from amtheory.backends import _attention, _triton_attention
from amtheory.backends.modern import ModernHopfield
from amtheory.studies.benchmarks.measure import median_time_and_peak, write_json


def matmul_rate(n: int, device: torch.device, warmup: int, repeats: int) -> float:
    """Measured bf16 matmul rate (FLOP/s) of an n x n x n product."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=g, device=device).to(torch.bfloat16)
    b = torch.randn(n, n, generator=g, device=device).to(torch.bfloat16)
    t, _ = median_time_and_peak(lambda: a @ b, device, warmup, repeats)
    return 2.0 * n**3 / t


def with_options(mem: ModernHopfield, **options) -> ModernHopfield:
    """A shallow copy of a stored memory (sharing its tensors) with other kernel options."""
    m = copy.copy(mem)
    m.__dict__.update(options)
    return m


def triton_configs(d: int) -> list[tuple[int, int, int, int]]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages) candidates for width d: the default first."""
    default = _triton_attention.default_blocks(d)
    if d <= 128:
        extra = [(128, 128, 8, 2), (128, 64, 4, 3), (64, 64, 4, 3), (128, 32, 4, 4)]
    elif d <= 256:
        extra = [(64, 32, 4, 2), (128, 32, 8, 2), (64, 64, 4, 1)]
    else:
        extra = [(64, 64, 8, 1), (64, 32, 4, 2), (32, 64, 4, 2), (128, 32, 8, 1), (64, 16, 4, 3)]
    return [default] + [c for c in extra if c != default]


def variants(
    K: int, d: int, B: int, beta: float, mem: ModernHopfield, queries: torch.Tensor, args, device: torch.device
) -> list[tuple[str, Callable[[], Callable[[], torch.Tensor]]]]:
    """Named factories; each builds (and may compile) its step when called, so failures are caught per variant."""
    X16 = mem.Xmm_
    q16 = queries.to(torch.bfloat16)
    n_sm = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1
    out: list[tuple[str, Callable[[], Callable[[], torch.Tensor]]]] = []

    def plain():
        def step():
            p = torch.softmax(beta * (q16 @ X16.T).float(), dim=-1)
            return (p.to(torch.bfloat16) @ X16).float()

        return step

    def sdpa():
        return lambda: F.scaled_dot_product_attention(q16[None, None], X16[None, None], X16[None, None], scale=beta)[
            0, 0
        ].float()

    out += [("plain", plain), ("sdpa", sdpa)]
    for chunk in dict.fromkeys([mem.chunk_size, 4 * mem.chunk_size]):

        def stream(chunk=chunk):
            m = with_options(mem, chunk_size=chunk, kernel="stream")
            return lambda: m.continuous_step(queries)

        out.append((f"stream-c{chunk}", stream))

    # Split over keys with each fused backend that works here (CPU: the reference per-slice matmuls).
    backends = _attention.fused_backends(device, torch.bfloat16, d) if device.type == "cuda" else ["reference"]
    block_m = 128 if d <= 128 else 64
    s_auto = _attention.choose_splits(-(-B // block_m), K, n_sm) if device.type == "cuda" else 4
    split_counts = sorted({1, s_auto, 2 * s_auto, max(1, s_auto // 2)} | ({8, 16, 32, 64} if d <= 128 else {2, 4}))
    for backend in backends:
        for S in split_counts:
            if backend == "reference" and S > 8:
                continue

            def split(backend=backend, S=S):
                return lambda: _attention.split_attention(
                    queries, X16, beta, splits=S, backend=backend, matmul_dtype=torch.bfloat16
                )

            out.append((f"split-{backend}/S={S}", split))

    if _triton_attention.available(device) and device.type == "cuda":
        qm = q16.contiguous()
        for bm, bn, nw, ns in triton_configs(d):
            s_tri = _attention.choose_splits(-(-B // bm), K, n_sm, min_keys=4 * bn)
            for S in dict.fromkeys([s_tri, 2 * s_tri]):

                def tri(bm=bm, bn=bn, nw=nw, ns=ns, S=S):
                    def step():
                        o, lse = _triton_attention.split_attention_partials(
                            qm, X16, beta, S, block_m=bm, block_n=bn, num_warps=nw, num_stages=ns
                        )
                        return o[0] if o.shape[0] == 1 else _attention.combine_partials(o, lse)

                    return step

                out.append((f"triton/{bm}x{bn},w{nw},s{ns}/S={S}", tri))

    if args.compile:
        # Few, large chunks: the compiled graph unrolls the loop over chunks.
        chunk_c = max(mem.chunk_size, K // 16)

        def compiled():
            m = with_options(mem, chunk_size=chunk_c, kernel="stream")
            return torch.compile(m.continuous_step)

        out.append((f"stream+compile-c{chunk_c}", lambda: (lambda f: lambda: f(queries))(compiled())))

    def auto():
        m = with_options(mem, kernel="auto")
        print(f"  (auto resolves to {m.resolved_kernel(device)!r})")
        return lambda: m.continuous_step(queries)

    out.append(("auto", auto))
    return out


def bench_config(K: int, d: int, B: int, args, device: torch.device, rate: float, t_start: float) -> list[dict]:
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
    n_ref = min(B, 64)
    ref = torch.softmax(beta * (queries[:n_ref] @ mem.X_.T), dim=-1) @ mem.X_  # float32 reference
    flops = 4.0 * B * K * d
    size_mib = (B * d + K * d) * 2 / 2**20
    print(
        f"\n### K={K} d={d} B={B} beta={beta:.4f} chunk={chunk}: {flops / 1e9:.1f} GFLOP per step; "
        f"B d + K d in bf16 = {size_mib:.1f} MiB\n"
    )
    rows: list[dict] = []
    base = dict(K=K, d=d, B=B, beta=beta)
    for name, factory in variants(K, d, B, beta, mem, queries, args, device):
        if time.perf_counter() - t_start > args.budget and name not in ("plain", f"stream-c{chunk}", "auto"):
            rows.append(dict(base, method=name, status="skipped (time budget)"))
            continue
        try:
            fn = factory()
            t, peak = median_time_and_peak(fn, device, args.warmup, args.repeats)
            err = float((fn()[:n_ref].float() - ref).abs().max())
        except torch.OutOfMemoryError:
            rows.append(dict(base, method=name, status="out of memory"))
            continue
        except Exception as e:  # a variant that cannot run here (kernel limits, compile support) is reported
            rows.append(dict(base, method=name, status=f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
        rows.append(
            dict(
                base,
                method=name,
                status="ok",
                ms=t * 1e3,
                tflops=flops / t / 1e12,
                pct_bf16=100 * flops / t / rate,
                peak_mib=None if math.isnan(peak) else peak / 2**20,
                max_err=err,
            )
        )
    print("| method | ms/step | TFLOP/s | % bf16 | peak MiB | max err |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["status"] != "ok":
            print(f"| {r['method']} | {r['status']} | | | | |")
            continue
        peak = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.1f}"
        print(
            f"| {r['method']} | {r['ms']:.3f} | {r['tflops']:.1f} | {r['pct_bf16']:.1f}% | {peak} | "
            f"{r['max_err']:.2e} |"
        )
    # The winner must also be accurate and stay within the memory target (a few times B d + K d).
    ok = [r for r in rows if r["status"] == "ok" and r["max_err"] < 1e-2]
    lean = [r for r in ok if r["peak_mib"] is None or r["peak_mib"] <= 4 * size_mib + 64]
    for label, pool in (("fastest", ok), ("fastest within O(B d + K d) memory", lean)):
        if pool:
            best = min(pool, key=lambda r: r["ms"])
            print(f"\n{label}: {best['method']} at {best['ms']:.3f} ms ({best['pct_bf16']:.1f}% of bf16 rate)")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CPU-sized problems that run in seconds")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available, cpu with --small)")
    parser.add_argument("--chunk", type=int, default=None, help="stored patterns per streamed block (default: auto)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="time torch.compile")
    parser.add_argument("--budget", type=float, default=200.0, help="seconds after which optional variants skip")
    parser.add_argument("--json", default=None, help="write all rows to this JSON file")
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = "cpu" if args.small or not torch.cuda.is_available() else "cuda"
    device = torch.device(args.device)
    if args.compile is None:
        args.compile = device.type == "cuda"
    if device.type == "cpu":
        torch.set_num_threads(1)
    if args.small:
        configs = [(4096, 64, 256), (16384, 32, 128)]
        n_mm = 512
    else:
        configs = [(65536, 512, 4096), (2**20, 128, 1024)]
        n_mm = 8192
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (1 thread)"
    rate = matmul_rate(n_mm, device, args.warmup, args.repeats)
    triton_version = getattr(_triton_attention.triton, "__version__", None)
    print(f"device: {name}; torch {torch.__version__}; triton {triton_version}")
    print(f"measured bf16 matmul rate ({n_mm}^3): {rate / 1e12:.2f} TFLOP/s")
    rows: list[dict] = []
    for K, d, B in configs:
        rows += bench_config(K, d, B, args, device, rate, t_start)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if args.json:
        meta = dict(device=name, torch=torch.__version__, triton=triton_version, bf16_tflops=rate / 1e12)
        write_json(args.json, dict(meta=meta, rows=rows))
        print(f"wrote {args.json}")
    return rows
