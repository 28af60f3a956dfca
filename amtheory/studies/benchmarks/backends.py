"""Retrieval throughput of every backend's deterministic synchronous step, on one GPU.

For each backend at a size that fills the device: the time of one synchronous step (``Sync().step``, i.e. the
backend's ``sync_update``), queries x steps per second, TFLOP/s for the step counted as matrix-multiply work, the
share of the bf16 matmul rate measured in the same run, and the store (learning) time. Matmul counts per step
(B queries, N positions, K patterns, spins so the width is N):

* ClassicalHopfield, pattern form (hebbian float32 / exact-bf16): overlaps ``S Xi^T`` and fields ``m Xi``: 4 B N K.
* ClassicalHopfield, weight form (storkey, pseudoinverse): fields ``S W``: 2 B N^2.
* DenseAM poly (n = 3): overlaps and ``P(m) Xi``: 4 B N K (on CUDA the bf16 digit split of ``P(m)`` adds
  2 (d - 1) B N K tensor-core work for d = 4 digits, not counted).
* DenseAM exp: overlaps and the two token-indicator products ``w [Xi = 1 | Xi = 0]`` (float64): 6 B N K.
* ModernHopfield (bf16 matmuls): logits ``X xi`` and readout ``X^T softmax``: 4 B N K.

Sizes (full run): N = 8192 and B = 8192 queries, except Storkey learning (a sequential loop over patterns of
N^2 float64 updates) at N = 4096. K: 0.1 N for the classical rules (near their useful load), N for the dense and
modern memories (well inside their capacity; the cost grows linearly in K).
``--small`` runs the same code at sizes a CPU finishes in seconds.
"""

from __future__ import annotations

import argparse
import time

import torch

import amtheory as am
from amtheory.backends.classical import ClassicalHopfield
from amtheory.backends.dense import DenseAM
from amtheory.backends.modern import ModernHopfield
from amtheory.core.benchmarking import bf16_matmul_rate as bf16_rate
from amtheory.core.benchmarking import timed
from amtheory.studies.benchmarks.measure import synchronize, write_json


def backends(full: bool) -> list[dict]:
    """The configurations: name, factory, N, K, and the step's matmul count as a function of (B, N, K)."""
    N = 8192 if full else 256
    Nw = 4096 if full else 256
    pattern_count = lambda B, N, K: 4 * B * N * K  # noqa: E731
    weight_count = lambda B, N, K: 2 * B * N * N  # noqa: E731
    return [
        dict(
            name="classical hebbian patterns float32",
            make=lambda: ClassicalHopfield("hebbian", form="patterns"),
            N=N,
            K=N // 10,
            flops=pattern_count,
            count="4BNK",
        ),
        dict(
            name="classical hebbian patterns exact-bf16",
            make=lambda: ClassicalHopfield("hebbian", form="patterns", matmul="exact-bf16"),
            N=N,
            K=N // 10,
            flops=pattern_count,
            count="4BNK",
        ),
        dict(
            name="classical storkey weights float32",
            make=lambda: ClassicalHopfield("storkey", form="weights"),
            N=Nw,
            K=Nw // 10,
            flops=weight_count,
            count="2BN^2",
        ),
        dict(
            name="classical pseudoinverse weights float32",
            make=lambda: ClassicalHopfield("pseudoinverse", form="weights"),
            N=N,
            K=N // 10,
            flops=weight_count,
            count="2BN^2",
        ),
        dict(name="dense poly n=3", make=lambda: DenseAM("poly", n=3), N=N, K=N, flops=pattern_count, count="4BNK"),
        dict(
            name="dense exp beta=0.05",
            make=lambda: DenseAM("exp", beta=0.05),
            N=N,
            K=N,
            flops=lambda B, N, K: 6 * B * N * K,
            count="6BNK",
        ),
        dict(
            name="modern bf16 beta=0.05",
            make=lambda: ModernHopfield(0.05, matmul_dtype=torch.bfloat16),
            N=N,
            K=N,
            flops=pattern_count,
            count="4BNK",
        ),
    ]


def run_one(cfg: dict, B: int, device: torch.device, rate: float, repeats: int) -> dict:
    N, K = cfg["N"], cfg["K"]
    g = torch.Generator(device=device).manual_seed(0)
    X = am.iid_patterns(K, N, generator=g, device=device)
    q = am.corrupt(X[torch.arange(B, device=device) % K], vocab_size=2, n_changed=N // 10, generator=g).states
    mem = cfg["make"]()
    synchronize(device)
    t0 = time.perf_counter()
    mem.store(X, vocab_size=2)
    synchronize(device)
    t_store = time.perf_counter() - t0
    step = am.Sync()
    t = timed(lambda: step.step(mem, q, None), device, repeats=repeats)
    # How far one step moves the corrupted queries towards their patterns: a sanity check that the step is real.
    new = step.step(mem, q, None)
    target = X[torch.arange(B, device=device) % K]
    flops = cfg["flops"](B, N, K)
    row = dict(
        backend=cfg["name"],
        N=N,
        K=K,
        B=B,
        count=cfg["count"],
        store_s=t_store,
        ms_per_step=1e3 * t,
        queries_steps_per_s=B / t,
        tflops=flops / t / 1e12,
        share_of_bf16=flops / t / rate,
        errors_before=float((q != target).float().mean()),
        errors_after=float((new != target).float().mean()),
    )
    if isinstance(mem, DenseAM):
        row["path"] = mem.sync_path(device)
    return row


def check_dense_cpu_equals_device(device: torch.device) -> list[dict]:
    """The dense fast path on ``device`` against the CPU (the poly kind is exact integer arithmetic: identical)."""
    rows = []
    g = torch.Generator().manual_seed(5)
    X = am.iid_patterns(300, 512, generator=g)
    q = am.corrupt(X.repeat(3, 1), vocab_size=2, n_changed=150, generator=g).states
    for mem in (DenseAM("poly", n=3), DenseAM("poly", n=4), DenseAM("exp", beta=0.05), DenseAM("exp", beta=20.0)):
        a = mem.store(X, vocab_size=2).sync_update(q)
        b = mem.store(X.to(device), vocab_size=2).sync_update(q.to(device)).cpu()
        rows.append(dict(memory=repr(mem), path=mem.sync_path(device), differing=int((a != b).sum())))
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="small sizes (CPU smoke run)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # a shared CPU: the smoke run must not take every core
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    full = not args.small
    B = 8192 if full else 128
    report: dict = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    rate = bf16_rate(device, n=8192 if device.type == "cuda" else 512)
    report["bf16_matmul_tflops"] = rate / 1e12
    print(f"device {report['device']}, torch {torch.__version__}, bf16 matmul {rate / 1e12:.1f} TFLOP/s")
    if device.type == "cuda":
        report["dense_cpu_vs_device"] = check_dense_cpu_equals_device(device)
        for r in report["dense_cpu_vs_device"]:
            print(f"dense CPU vs GPU: {r['memory']} ({r['path']}): {r['differing']} differing decisions")
    report["rows"] = []
    print(
        "| backend | N | K | B | store s | ms/step | queries x steps / s | count | TFLOP/s | share of bf16 | "
        "errors before -> after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cfg in backends(full):
        r = run_one(cfg, B, device, rate, repeats=5 if full else 2)
        report["rows"].append(r)
        name = r["backend"] + (f" [{r['path']}]" if "path" in r else "")
        print(
            f"| {name} | {r['N']} | {r['K']} | {r['B']} | {r['store_s']:.3f} | {r['ms_per_step']:.2f} | "
            f"{r['queries_steps_per_s']:.3g} | {r['count']} | {r['tflops']:.1f} | {100 * r['share_of_bf16']:.1f}% | "
            f"{r['errors_before']:.3f} -> {r['errors_after']:.3f} |",
            flush=True,
        )
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        write_json(args.json, report)
    return report
