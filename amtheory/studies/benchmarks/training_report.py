"""Reports of the training benchmark: its Markdown tables, the MFU accounting against the quoted plain figures,
and a profile of a step's device time by part of the step (loss kernels, norms, attention, GEMMs, optimizer,
elementwise)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import torch

from amtheory.diffusion.model import DiTConfig
from amtheory.studies.benchmarks.flops import FLOP_COUNTS, step_flops
from amtheory.studies.benchmarks.measure import synchronize
from amtheory.studies.benchmarks.training_step import GPU_BATCH, GPU_L, GPU_V, H100_BF16_DENSE, QUOTED_PLAIN


def accounting_from(path: str) -> list[dict[str, Any]]:
    """The MFU accounting table of a run recorded with ``--json`` (FLOPs from the configs)."""
    with open(path) as f:
        rec = json.load(f)
    V, L = GPU_V, GPU_L
    rows = [dict(r) for r in rec["train"]]
    print(f"recorded run: {path} ({rec['device']}; measured bf16 rate {rec['matmul_flops'] / 1e12:.0f} TFLOP/s)")
    print_accounting(rows, rec["matmul_flops"], V, L, GPU_BATCH)
    return rows


def profile_step(fn: Callable[[int], Any], device: torch.device, label: str, first: int, n: int = 3) -> None:
    """Print where ``n`` steps of ``fn`` spend their device time (top kernels), after the timed steps."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts, record_shapes=True) as prof:
        for i in range(n):
            fn(first + i)
        synchronize(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"--- profile: {label}, {n} steps, sorted by {key}")
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=70))
    if device.type == "cuda":
        _print_kernel_split(prof.events(), n)
        print("  eager kernels by the operator that launched them, its input shapes and what ran it (ms per step):")
        for where, ms in kernels_by_operator(prof.events(), n)[:20]:
            print(f"    {ms:6.2f}  {where[:170]}")


#: Kernel-name fragments of each part of a training step (first match wins; the rest is "other"). Inductor's
#: generated kernels (names starting "triton_") count as fused elementwise whatever ops their names list.
INDUCTOR = "fused elementwise (inductor)"
KERNEL_CATEGORIES = (
    ("loss kernels (Triton)", ("_row_stats_kernel", "_row_grad_kernel")),
    ("residual and norm kernels (Triton)", ("_add_norm_fwd_kernel", "_add_norm_bwd_kernel")),
    ("attention", ("flash", "fmha", "attention", "cudnn", "_attn_fwd_kernel", "_attn_bwd_kernel")),
    ("GEMM", ("nvjet", "gemm", "cutlass", "sm90_xmma", "splitk")),
    ("optimizer and EMA", ("multi_tensor", "adam", "foreach", "lerp")),
    ("eager elementwise and reductions", ("elementwise", "reduce", "vectorized", "unrolled", "copy", "fill")),
)


def kernel_category(name: str) -> str:
    """The part of a training step a CUDA kernel belongs to, from its name (:data:`KERNEL_CATEGORIES`)."""
    low = name.lower()
    if low.startswith("triton_"):
        return INDUCTOR
    for cat, frags in KERNEL_CATEGORIES:
        if any(f.lower() in low for f in frags):
            return cat
    return "other"


def _print_kernel_split(events: Any, n: int) -> None:
    """Device time per step by part of the step (kernel events only: no operator is counted twice)."""
    from torch.autograd import DeviceType

    per: dict[str, float] = {}
    top: dict[str, dict[str, float]] = {}
    for e in events:
        if e.device_type != DeviceType.CUDA:
            continue
        us = e.time_range.elapsed_us()
        cat = kernel_category(e.name)
        per[cat] = per.get(cat, 0.0) + us
        top.setdefault(cat, {})[e.name] = top.get(cat, {}).get(e.name, 0.0) + us
    total = sum(per.values())
    print(f"device time per step by part: {total / n / 1e3:.1f} ms in kernels")
    for cat, us in sorted(per.items(), key=lambda kv: -kv[1]):
        names = sorted(top[cat].items(), key=lambda kv: -kv[1])[:4]
        heads = "; ".join(f"{k[:60]} {v / n / 1e3:.2f}" for k, v in names)
        print(f"  {cat:34s} {us / n / 1e3:7.2f} ms ({100 * us / total:4.1f}%)  top: {heads}")
    every = sorted(top.get(INDUCTOR, {}).items(), key=lambda kv: -kv[1])
    if every:
        print(f"  {INDUCTOR}, every kernel (ms per step):")
        for k, v in every:
            print(f"    {v / n / 1e3:6.2f}  {k[:150]}")


def kernels_by_operator(
    events: Any, n: int, parts: tuple[str, ...] = ("eager elementwise and reductions", "other")
) -> list[tuple[str, float]]:
    """Device milliseconds a step of the kernels of ``parts`` (:func:`kernel_category`), by the operator that
    launched them with its input shapes, and the nearest enclosing event that is no ATen operator (the autograd
    node, custom function or compiled graph running it; "top level" where there is none), largest first."""
    out: dict[str, float] = {}
    for e in events:
        kernels = [k for k in getattr(e, "kernels", ()) if kernel_category(k.name) in parts]
        if not kernels:
            continue
        ctx = e.cpu_parent
        while ctx is not None and ctx.name.startswith("aten::"):
            ctx = ctx.cpu_parent
        shapes = ", ".join(str(list(s)) for s in (e.input_shapes or []) if s)
        key = f"{'top level' if ctx is None else ctx.name} > {e.name}({shapes})"
        out[key] = out.get(key, 0.0) + sum(k.duration for k in kernels) / n / 1e3
    return sorted(out.items(), key=lambda kv: -kv[1])


def _fastest_optimised(rows: list[dict[str, Any]], cname: str) -> dict[str, Any] | None:
    """The timed optimised row of config ``cname`` with the fewest ms per step (None if there is none)."""
    opts = [r for r in rows if r["config"] == cname and r["variant"] != "plain" and "ms_step" in r]
    return min(opts, key=lambda r: r["ms_step"]) if opts else None


def print_accounting(rows: list[dict[str, Any]], rate: float, V: int, L: int, batch: int) -> None:
    """MFU of the quoted plain figures (:data:`QUOTED_PLAIN`) and of this run's fastest optimised step, under each
    parameter count of :data:`FLOP_COUNTS` and against both peak rates: which accounting reproduces the quoted
    MFU from the quoted time, and what the same accounting gives the optimised step."""
    best = {c: r for c in QUOTED_PLAIN if (r := _fastest_optimised(rows, c)) is not None}
    if not best:
        return
    names = list(best)
    print()
    quoted = [
        f"{c} {QUOTED_PLAIN[c]['ms']:.0f} ms/step at batch {QUOTED_PLAIN[c]['batch']}, {QUOTED_PLAIN[c]['mfu']:.0%}"
        for c in names
    ]
    print(f"MFU accounting: the quoted plain figures ({'; '.join(quoted)}) and this run's fastest optimised steps")
    print()
    head = " | ".join(f"plain {c} (quoted {QUOTED_PLAIN[c]['mfu']:.0%}) | optimised {c}" for c in names)
    print(f"| parameters counted | peak rate | {head} |")
    print("|---|---|" + "---|---|" * len(names))
    for count in FLOP_COUNTS:
        for peak_name, peak in ((f"measured {rate / 1e12:.0f} TF/s", rate), ("nominal 989 TF/s", H100_BF16_DENSE)):
            cells = []
            for c in names:
                cfg, q = DiTConfig.preset(c, V, L), QUOTED_PLAIN[c]
                plain = step_flops(cfg, q["batch"], count=count) / (q["ms"] / 1e3) / peak
                opt = step_flops(cfg, batch, count=count) / (best[c]["ms_step"] / 1e3) / peak
                cells.append(f"{plain:.1%} | {opt:.1%}")
            print(f"| {count} | {peak_name} | " + " | ".join(cells) + " |")


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def print_tables(rows, evals, rate, device, batch, L) -> None:
    print()
    print(f"Training step, batch {batch} x {L}; MFU = (6 x non-embedding parameters x tokens + attention) against the")
    print(f"measured {rate / 1e12:.3g} TFLOP/s and against 989; 'with head' adds the output head's 6 V D per token.")
    print()
    print(
        "| config | variant | accum | ms/step | tokens/s | MFU (measured) | MFU (989 TF) | MFU with head (measured) "
        "| MFU with head (989 TF) | peak GiB | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['variant']} | {r['accum']} | {_fmt(r.get('ms_step'), '.1f')} | "
            f"{_fmt(r.get('tokens_s'), ',.0f')} | {_fmt(r.get('mfu'), '.1%')} | {_fmt(r.get('mfu_nominal'), '.1%')} | "
            f"{_fmt(r.get('mfu_head'), '.1%')} | {_fmt(r.get('mfu_head_nominal'), '.1%')} | "
            f"{_fmt(r.get('peak_gb'), '.2f')} | {r.get('error', '')} |"
        )
    print()
    print("| config | speed-up (plain ms / best optimised ms) | peak memory ratio (plain / optimised) |")
    print("|---|---|---|")
    for cname in dict.fromkeys(r["config"] for r in rows):
        plain = next((r for r in rows if r["config"] == cname and r["variant"] == "plain" and "ms_step" in r), None)
        best = _fastest_optimised(rows, cname)
        if plain is None or best is None:
            print(f"| {cname} | n/a | n/a |")
            continue
        mem = plain["peak_gb"] / best["peak_gb"] if plain.get("peak_gb") and best.get("peak_gb") else None
        mem_s = f"{mem:.2f}x" if mem is not None else "n/a"
        print(
            f"| {cname} | {plain['ms_step'] / best['ms_step']:.2f}x ({best['variant']}, accum {best['accum']}) "
            f"| {mem_s} |"
        )
    if not evals:
        return
    print()
    print(
        f"Retrieval evaluation at batch {batch}, sequences x reverse steps per second: one denoiser call (bf16 forward "
        "+ softmax), and whole reverse chains (UniformDiffusionLM, float64 posterior steps)"
    )
    print()
    print("| config | denoiser call | reverse chain, ancestral | reverse chain, argmax | note |")
    print("|---|---|---|---|---|")
    for e in evals:
        print(
            f"| {e['config']} | {_fmt(e.get('seq_steps_per_s'), ',.0f')} | "
            f"{_fmt(e.get('reverse_ancestral_seq_steps_per_s'), ',.0f')} | "
            f"{_fmt(e.get('reverse_argmax_seq_steps_per_s'), ',.0f')} | {e.get('error', '')} |"
        )
