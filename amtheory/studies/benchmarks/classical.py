"""GPU check and throughput of classical Hopfield retrieval.

1. Deterministic results on the GPU equal those on the CPU (every rule, V = 2 and 3, sync and async).
2. Throughput of the synchronous update in the Hebbian pattern form: queries x steps per second and TFLOP/s counted
   as 4 B N K operations a step, as a share of the bf16 matrix-multiply rate measured in the same run, for the
   float32 path and the exact bf16 tensor-core path.
3. Asynchronous sweeps: flips per second with the incremental local fields.

``--small`` runs the same code at sizes a CPU finishes in seconds.
"""

from __future__ import annotations

import argparse

import torch

import amtheory as am
from amtheory.core.benchmarking import bf16_matmul_rate as bf16_rate
from amtheory.core.benchmarking import timed
from amtheory.studies.benchmarks.measure import write_json


def check_cpu_equals_gpu(device) -> list[dict]:
    rows = []
    g = torch.Generator().manual_seed(7)
    for V in (2, 3):
        for rule, form, dtype, matmul in [
            ("hebbian", "patterns", torch.float32, "float32"),
            ("hebbian", "patterns", torch.float32, "exact-bf16"),
            ("hebbian", "weights", torch.float32, "float32"),
            ("storkey", "weights", torch.float64, "float32"),
            ("pseudoinverse", "weights", torch.float64, "float32"),
        ]:
            if matmul == "exact-bf16" and V != 2:
                continue
            X = am.iid_patterns(12, 96, vocab_size=V, generator=g)
            q = am.corrupt(X.repeat(4, 1), vocab_size=V, n_changed=20, generator=g).states
            for update, order in (("sync", "random"), ("async", "sequential"), ("async", "random")):
                res = []
                for dev in ("cpu", device):
                    mem = am.ClassicalHopfield(rule, form=form, dtype=dtype, matmul=matmul).store(
                        X.to(dev), vocab_size=V
                    )
                    r = am.retrieve(
                        mem,
                        q.to(dev),
                        update=update,
                        order=order,
                        max_steps=30,
                        generator=torch.Generator().manual_seed(3),
                    )
                    res.append(r)
                a, b = res
                same = (
                    torch.equal(a.states, b.states.cpu())
                    and torch.equal(a.steps, b.steps.cpu())
                    and torch.equal(a.converged, b.converged.cpu())
                    and torch.equal(a.cycled, b.cycled.cpu())
                )
                rows.append(
                    dict(
                        V=V,
                        rule=rule,
                        form=form,
                        dtype=str(dtype),
                        matmul=matmul,
                        update=update,
                        order=order,
                        identical=same,
                    )
                )
    return rows


def sync_throughput(device, N, K, B, rate):
    g = torch.Generator(device=device).manual_seed(0)
    X = am.iid_patterns(K, N, generator=g, device=device)
    q = am.corrupt(X[torch.arange(B, device=device) % K], vocab_size=2, n_changed=N // 10, generator=g).states
    out = []
    for matmul in ("float32", "exact-bf16"):
        mem = am.ClassicalHopfield("hebbian", form="patterns", matmul=matmul).store(X, vocab_size=2)
        step = am.Sync()
        t = timed(lambda mem=mem, step=step: step.step(mem, q, None), torch.device(device), repeats=10)
        flops = 4 * B * N * K
        out.append(
            dict(
                N=N,
                K=K,
                B=B,
                matmul=matmul,
                ms_per_step=1e3 * t,
                queries_steps_per_s=B / t,
                tflops=flops / t / 1e12,
                share_of_bf16=flops / t / rate,
            )
        )
    s32 = am.Sync().step(am.ClassicalHopfield(form="patterns").store(X), q, None)
    mem16 = am.ClassicalHopfield(form="patterns", matmul="exact-bf16").store(X)
    s16 = am.Sync().step(mem16, q, None)
    if torch.device(device).type == "cuda":
        # The two tensor-core products alone: the floor the element-wise work sits on.
        xi16 = X.to(torch.bfloat16) * 2 - 1
        xi2 = torch.cat([xi16, 256 * xi16])
        sq = q.to(torch.bfloat16) * 2 - 1
        lohi = torch.zeros(B, 2 * K, device=device, dtype=torch.bfloat16)

        def gemms():
            torch.mm(sq, xi16.T, out_dtype=torch.float32)
            torch.mm(lohi, xi2, out_dtype=torch.float32)

        t = timed(gemms, torch.device(device), repeats=10)
        flops = 4 * B * N * K
        out.append(
            dict(
                N=N,
                K=K,
                B=B,
                matmul="gemms only",
                ms_per_step=1e3 * t,
                queries_steps_per_s=B / t,
                tflops=flops / t / 1e12,
                share_of_bf16=flops / t / rate,
            )
        )
    # End to end: retrieve() from corrupted queries, with its per-query fixed-point and cycle bookkeeping.
    t = timed(lambda: am.retrieve(mem16, q, max_steps=5), torch.device(device), repeats=3, warmup=1)
    r = am.retrieve(mem16, q, max_steps=5)
    n_steps = int(r.steps.max()) + 1
    out.append(
        dict(
            N=N,
            K=K,
            B=B,
            matmul=f"retrieve ({n_steps} steps)",
            ms_per_step=1e3 * t / n_steps,
            queries_steps_per_s=B * n_steps / t,
            tflops=4 * B * N * K * n_steps / t / 1e12,
            share_of_bf16=4 * B * N * K * n_steps / t / rate,
        )
    )
    return out, bool(torch.equal(s32, s16))


def async_throughput(device, N, K, B):
    g = torch.Generator(device=device).manual_seed(1)
    X = am.iid_patterns(K, N, generator=g, device=device)
    q = am.corrupt(X[torch.arange(B, device=device) % K], vocab_size=2, n_changed=N // 10, generator=g).states
    out = []
    for form in ("patterns", "weights"):
        mem = am.ClassicalHopfield("hebbian", form=form).store(X, vocab_size=2)
        step = am.Async(order="random")
        t = timed(lambda mem=mem, step=step: step.step(mem, q, g), torch.device(device), repeats=2, warmup=1)
        out.append(dict(N=N, K=K, B=B, form=form, s_per_sweep=t, flips_per_s=B * N / t))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="small sizes (CPU smoke run)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__}
    rate = bf16_rate(device, n=1024 if args.small else 8192)
    report["bf16_matmul_tflops"] = rate / 1e12
    print(f"device {report['device']}, torch {torch.__version__}, bf16 matmul {rate / 1e12:.0f} TFLOP/s")
    if device.type == "cuda":
        rows = check_cpu_equals_gpu(device)
        report["cpu_equals_gpu"] = rows
        bad = [r for r in rows if not r["identical"]]
        print(f"CPU == GPU on {len(rows) - len(bad)}/{len(rows)} deterministic configurations")
        for r in bad:
            print("  DIFFERS:", r)
    sizes = [(512, 40, 256)] if args.small else [(8192, 800, 8192), (4096, 400, 8192)]
    report["sync"] = []
    print("| N | K | B | matmul | ms/step | queries x steps / s | TFLOP/s (4BNK) | share of bf16 rate |")
    print("|---|---|---|---|---|---|---|---|")
    for N, K, B in sizes:
        rows, same = sync_throughput(device, N, K, B, rate)
        report["sync"] += rows
        for r in rows:
            print(
                f"| {N} | {K} | {B} | {r['matmul']} | {r['ms_per_step']:.2f} | {r['queries_steps_per_s']:.3g} | "
                f"{r['tflops']:.1f} | {100 * r['share_of_bf16']:.1f}% |"
            )
        print(f"float32 and exact-bf16 steps identical at N={N}: {same}")
    a_sizes = [(256, 20, 64)] if args.small else [(1024, 100, 4096)]
    report["async"] = []
    for N, K, B in a_sizes:
        for r in async_throughput(device, N, K, B):
            report["async"].append(r)
            print(
                f"async N={N} K={K} B={B} {r['form']}: {r['s_per_sweep']:.3f} s/sweep, "
                f"{r['flips_per_s']:.3g} position updates/s"
            )
    if args.json:
        write_json(args.json, report)
    return report
