"""Throughput of group training (:class:`~amtheory.diffusion.group_train.GroupTrainer`) against today's loop that
trains one model at a time, in one run on one device.

For each model shape: (a) the single-model trainer's step (:func:`amtheory.diffusion.train_step.optimizer_step` on
a batch from :func:`~amtheory.diffusion.train_step.sample_batch`, as :func:`amtheory.diffusion.train.train` runs
it; compiled blocks when ``compile``), then (b) one group step for each group size G, members with training sets of
different sizes. Each is timed over ``steps`` steps after ``warmup`` steps. Reported: aggregate tokens/s (G x batch x
length per step), the speed-up over (a), and MFU = FLOPs per token x tokens/s over the bf16 matrix-product rate
measured in the same run and over the H100's nominal 989 TFLOP/s, with FLOPs per token those the step performs
(:func:`amtheory.studies.benchmarks.flops.flops_per_token`, count "performed"); beside it MFU under the 6 N count
with the output head ("with_head": 6 x every parameter but the token embedding, plus attention), which also counts
the conditioning maps, applied once a sequence, as if applied to every token.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch

from amtheory.core.benchmarking import bf16_matmul_rate
from amtheory.diffusion.group_train import GroupTrainer
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train_config import TrainConfig
from amtheory.diffusion.train_step import (
    EMA,
    NELBOObjective,
    _seed_for,
    compile_model,
    initial_model,
    make_optimizer,
    optimizer_step,
    sample_batch,
    step_generator,
)
from amtheory.studies.benchmarks.flops import flops_per_token
from amtheory.studies.benchmarks.measure import command_log, pick_shapes, synchronize, write_record
from amtheory.studies.benchmarks.training_report import profile_step
from amtheory.studies.memorization.presets import preset

__all__ = [
    "H100_BF16_DENSE", "bench_group_train", "format_table", "main", "mfu_fields", "picked_shapes", "preset_shapes",
    "print_restated", "restated",
]  # fmt: skip

#: The H100 SXM's nominal dense bf16 rate, FLOP/s.
H100_BF16_DENSE = 989e12


def _timed_steps(step_fn, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per step of ``step_fn(i)`` over ``steps`` steps after ``warmup`` (wall clock, device synced)."""
    for i in range(warmup):
        step_fn(i)
    synchronize(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step_fn(i)
    synchronize(device)
    return (time.perf_counter() - t0) / steps


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _single_step(cfg: DiTConfig, tc: TrainConfig, data: torch.Tensor, device: torch.device):
    """Today's loop: one model, the single trainer's step."""
    model = initial_model(cfg, tc.seed)
    model.to(device)
    ema = EMA(model, tc.ema, tc.ema_warmup)
    optimizer = make_optimizer(model, tc, device)
    if tc.compile:
        compile_model(model)
    kernels = Kernels(tc.loss_kernel, tc.attention, tc.norm).resolved(device, compile=tc.compile)
    model.kernels = kernels
    objective = NELBOObjective(model, tc.chunk_rows, kernels.loss)
    amp = torch.bfloat16 if (tc.bf16 and device.type == "cuda") else None
    gen = torch.Generator(device=device)

    def step(i: int) -> None:
        for g in optimizer.param_groups:
            g["lr"] = tc.lr_at(i)
        batch = sample_batch(data, tc.batch_size, cfg.vocab_size, step_generator(tc.seed, 0, i, device, gen))
        optimizer_step(objective, optimizer, batch, grad_accum=1, clip=tc.clip, autocast_dtype=amp,
                       dropout_seed=_seed_for(tc.seed, 0, i, "dropout"), ema=ema)  # fmt: skip

    return step


def bench_group_train(
    shapes: dict[str, DiTConfig],
    group_sizes: tuple[int, ...],
    *,
    device: torch.device | str,
    batch_size: int,
    data_sizes: tuple[int, ...],
    bf16: bool,
    compile: bool,
    chunk_rows: int,
    group_chunk_rows: int,
    steps: int,
    warmup: int,
    matmul_n: int = 8192,
    budget_s: float | None = None,
    profile: bool = False,
    log=print,
) -> dict[str, Any]:
    """Time (a) one model at a time and (b) groups of ``group_sizes`` members for each shape of ``shapes``;
    returns the record (device, measured bf16 rate, one row per measurement). Members' training sets cycle through
    ``data_sizes`` (random tokens). A measurement that fails (e.g. out of memory) is recorded with its error; one
    that would start after ``budget_s`` seconds is skipped. With ``profile``, three more steps of each group are
    profiled after its timing and their top kernels printed, by part of the step on CUDA
    (:func:`~amtheory.studies.benchmarks.training_report.profile_step`)."""
    device = torch.device(device)
    t_start = time.perf_counter()
    rate = bf16_matmul_rate(device, matmul_n)
    log(f"measured bf16 matmul rate ({matmul_n}^3): {rate / 1e12:.1f} TFLOP/s")
    rows: list[dict[str, Any]] = []
    for name, cfg in shapes.items():
        gen = torch.Generator().manual_seed(0)
        pool = torch.randint(0, cfg.vocab_size, (max(data_sizes), cfg.length), generator=gen)
        base = TrainConfig(steps=warmup + steps, batch_size=batch_size, lr=5e-4, warmup=100, ema=0.999, bf16=bf16,
                           compile=compile, chunk_rows=chunk_rows)  # fmt: skip
        single_tps = None
        for G in (0, *group_sizes):  # 0: one model at a time
            label = "one-at-a-time" if G == 0 else f"group of {G}"
            row: dict[str, Any] = {"shape": name, "d_model": cfg.d_model, "n_blocks": cfg.n_blocks,
                                   "mode": "single" if G == 0 else "group", "group_size": max(G, 1)}  # fmt: skip
            if budget_s is not None and time.perf_counter() - t_start > budget_s:
                row["error"] = f"skipped: past the {budget_s:.0f} s budget"
                rows.append(row)
                log(f"{name} {label}: {row['error']}")
                continue
            _free(device)
            t0 = time.perf_counter()
            try:
                if G == 0:
                    step_fn = _single_step(cfg, base, pool[: data_sizes[0]].to(device), device)
                else:
                    configs = [dataclasses.replace(base, seed=g, chunk_rows=group_chunk_rows) for g in range(G)]
                    data = [pool[: data_sizes[g % len(data_sizes)]] for g in range(G)]
                    step_fn = GroupTrainer(cfg, configs, data, device=device).step
                sec = _timed_steps(step_fn, warmup, steps, device)
                if profile and G > 0:
                    try:  # a profiler failure leaves the timing standing
                        profile_step(step_fn, device, f"{name} {label}", warmup + steps)
                    except RuntimeError as e:
                        log(f"{name} {label}: profile failed, {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            except (RuntimeError, torch.OutOfMemoryError) as e:  # recorded, and the run goes on
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                rows.append(row)
                log(f"{name} {label}: {row['error']}")
                continue
            finally:
                step_fn = None
            tokens_s = max(G, 1) * batch_size * cfg.length / sec
            if G == 0:
                single_tps = tokens_s
            row.update(
                ms_step=1e3 * sec,
                tokens_s=tokens_s,
                speedup=tokens_s / single_tps if single_tps else None,
                **mfu_fields(cfg, tokens_s, rate),
                peak_gb=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
                wall_s=time.perf_counter() - t0,
            )
            rows.append(row)
            log(
                f"{name} {label}: {row['ms_step']:.2f} ms/step, {tokens_s:,.0f} tokens/s, speed-up "
                f"{_fmt(row['speedup'], '.2f')}x, MFU {100 * row['mfu']:.1f}% of measured, "
                f"{100 * row['mfu_989']:.1f}% of 989 TFLOP/s ({100 * row['mfu_with_head']:.1f}% of measured, 6 N with "
                f"the head)"
            )
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "host": platform.node(),
        "matmul_flops": rate,
        "nominal_flops": H100_BF16_DENSE,
        "batch_size": batch_size,
        "data_sizes": list(data_sizes),
        "bf16": bf16,
        "compile": compile,
        "chunk_rows": chunk_rows,
        "group_chunk_rows": group_chunk_rows,
        "steps": steps,
        "warmup": warmup,
        "shapes": {n: c.to_dict() for n, c in shapes.items()},
        "rows": rows,
    }


def mfu_fields(cfg: DiTConfig, tokens_s: float, rate: float) -> dict[str, float]:
    """A row's FLOPs per token and MFU at ``tokens_s`` against the measured ``rate`` and the nominal 989 TFLOP/s,
    under the performed count (``flops_per_token``, ``mfu``, ``mfu_989``) and the 6 N count with the head (the same
    with ``_with_head``)."""
    out = {}
    for count, suffix in (("performed", ""), ("with_head", "_with_head")):
        fpt = flops_per_token(cfg, count)
        out |= {f"flops_per_token{suffix}": fpt, f"mfu{suffix}": fpt * tokens_s / rate,
                f"mfu_989{suffix}": fpt * tokens_s / H100_BF16_DENSE}  # fmt: skip
    return out


def restated(record: dict[str, Any]) -> dict[str, Any]:
    """A recorded run with every row's MFU recomputed from its shapes, tokens/s and measured rate
    (:func:`mfu_fields`): runs recorded before the performed count carry the 6 N count with the head as ``mfu``."""
    shapes = {n: DiTConfig.from_dict(d) for n, d in record["shapes"].items()}
    rows = [
        r | mfu_fields(shapes[r["shape"]], r["tokens_s"], record["matmul_flops"]) if "tokens_s" in r else dict(r)
        for r in record["rows"]
    ]
    return record | {"rows": rows}


def print_restated(path: str | Path) -> dict[str, dict[str, Any]]:
    """Print the tables of a recorded run (a record, or records by title as ``benchmarks/h100_bench_group_train.json``
    keeps them) with MFU under both counts (:func:`restated`); returns the restated records by title."""
    with open(path) as f:
        recorded = json.load(f)
    sections = {str(path): recorded} if "rows" in recorded else recorded
    out = {}
    for title, record in sections.items():
        out[title] = restated(record)
        print(f"{title}: {record['device']}, measured bf16 rate {record['matmul_flops'] / 1e12:.1f} TFLOP/s")
        print(format_table(out[title]))
        print()
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def format_table(record: dict[str, Any]) -> str:
    """The record's rows as a markdown table."""
    lines = [
        "| shape | mode | G | ms/step | tokens/s | speed-up | MFU (measured bf16) | MFU (989 TFLOP/s) "
        "| MFU, 6 N with head (measured bf16) | peak GiB | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        mfu, mfu989, mfu_head = (None if r.get(k) is None else 100 * r[k] for k in ("mfu", "mfu_989", "mfu_with_head"))
        lines.append(
            f"| {r['shape']} ({r['d_model']} x {r['n_blocks']}) | {r['mode']} | {r['group_size']} | "
            f"{_fmt(r.get('ms_step'), '.2f')} | {_fmt(r.get('tokens_s'), ',.0f')} | "
            f"{_fmt(r.get('speedup'), '.2f')} | {_fmt(mfu, '.1f')}% | {_fmt(mfu989, '.1f')}% | "
            f"{_fmt(mfu_head, '.1f')}% | {_fmt(r.get('peak_gb'), '.1f')} | {r.get('error', '')} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- command line


def preset_shapes(tiny: bool) -> tuple[dict[str, DiTConfig], int]:
    """The gpu preset's model shapes by name and its batch size; with ``tiny``, two tiny shapes ("tiny-a",
    "tiny-b") and batch 4, which check the code path on a CPU."""
    if tiny:
        kw = {"vocab_size": 64, "length": 16, "n_heads": 2, "cond_dim": 16, "dropout": 0.0}
        return {"tiny-a": DiTConfig(d_model=16, n_blocks=1, **kw), "tiny-b": DiTConfig(d_model=32, n_blocks=2, **kw)}, 4
    p = preset("gpu")
    shapes = {a.name: a.config(p.data.vocab, p.data.length) for a in p.archs}
    return shapes, p.batch_size


def picked_shapes(ap: argparse.ArgumentParser, a: argparse.Namespace) -> tuple[dict[str, DiTConfig], int]:
    """:func:`preset_shapes` of ``a.tiny`` cut to ``a.shapes`` (``--shapes``, an unknown name the parser's error),
    and the batch size."""
    shapes, batch = preset_shapes(a.tiny)
    return pick_shapes(ap, shapes, a.shapes), batch


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python experiments/bench_group_train.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, batch 4, groups 1-3 (checks the code path)")
    ap.add_argument("--group-sizes", default=None, help="comma list (default 1,4,8,16,32; --tiny: 1,3)")
    ap.add_argument("--shapes", default=None, help="comma list of shape names to run (default: all)")
    ap.add_argument(
        "--precision", choices=("bf16", "fp32"), default="bf16",
        help="bf16 autocast (default) or float32 (TF32 matmuls on CUDA, as the gpu preset trains)",
    )  # fmt: skip
    ap.add_argument("--no-compile", action="store_true", help="eager blocks (default on CUDA: compiled)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20; --tiny: 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; --tiny: 1)")
    ap.add_argument("--group-chunk-rows", type=int, default=65536, help="rows of logits per loss chunk, all members")
    ap.add_argument("--budget-s", type=float, default=240.0, help="skip measurements that would start after this")
    ap.add_argument("--profile", action="store_true", help="profile 3 more steps of each group (top kernels)")
    ap.add_argument("--out", help="folder for bench_group_train.json and .txt")
    ap.add_argument("--accounting-from", metavar="JSON", help="print a recorded run's tables, MFU under both counts")
    a = ap.parse_args(argv)
    if a.accounting_from:
        return print_restated(a.accounting_from)
    if a.out is None:
        ap.error("--out: expected a folder for the record, got none")

    device = torch.device(a.device)
    shapes, batch = picked_shapes(ap, a)
    sizes = tuple(int(s) for s in (a.group_sizes or ("1,3" if a.tiny else "1,4,8,16,32")).split(","))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    bf16 = a.precision == "bf16" and device.type == "cuda"  # a CPU run stays float32
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log, lines, command = command_log("bench_group_train", argv)
    record = bench_group_train(
        shapes, sizes, device=device, batch_size=batch,
        data_sizes=(8, 32, 64) if a.tiny else (32, 256, 2048, 16384, 53167),
        bf16=bf16, compile=device.type == "cuda" and not a.no_compile,
        chunk_rows=64 if a.tiny else 16384, group_chunk_rows=a.group_chunk_rows,
        steps=a.steps or (2 if a.tiny else 20), warmup=a.warmup or (1 if a.tiny else 5),
        matmul_n=256 if a.tiny else 8192, budget_s=a.budget_s, profile=a.profile, log=log,
    )  # fmt: skip
    record["command"] = command
    precision = "bf16 autocast" if bf16 else "float32"
    log(f"device: {record['device']}; torch {record['torch']}; host {record['host']}; batch {batch}; {precision}")
    table = format_table(record)
    log(table)
    write_record(out, "bench_group_train", lines, record)
    return record
