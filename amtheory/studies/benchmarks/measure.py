"""Measurement helpers shared by the benchmarks: device synchronisation and memory, CUDA-event milliseconds, the
median time and peak memory of one call, error text for a failed variant, and the records (JSON, and a text table
beside it)."""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from amtheory.core.benchmarking import timed


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for off CUDA)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    """Collect garbage and, on CUDA, return cached blocks and reset the peak-memory counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak memory PyTorch allocated on ``device`` since the last reset, in GiB (None off CUDA)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def device_label(device: torch.device, cpu: str = "cpu") -> str:
    """The GPU's name, or ``cpu`` for a CPU."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu


def cuda_ms(fn: Callable[[], object], *, repeats: int, warmup: int) -> float:
    """Milliseconds per call of ``fn`` on the current CUDA device, ``repeats`` calls after ``warmup`` calls."""
    return timed(fn, "cuda", repeats=repeats, warmup=warmup) * 1e3


def median_time_and_peak(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> tuple[float, float]:
    """Median seconds per call and the peak bytes one call allocates above what was allocated before it (NaN off
    CUDA)."""
    for _ in range(warmup):
        fn()
    peak = float("nan")
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), peak


def picked(ap: argparse.ArgumentParser, flag: str, names: str, choices) -> tuple[str, ...]:
    """The comma list ``names`` in its order, each one of ``choices``; an empty or unknown name is the parser's
    error for ``flag``."""
    wanted = tuple(names.split(","))
    unknown = sorted(set(wanted) - set(choices))
    if unknown:
        ap.error(f"{flag}: expected names among {sorted(choices)}, got {unknown}")
    return wanted


def pick_shapes(ap: argparse.ArgumentParser, shapes: dict[str, Any], names: str | None) -> dict[str, Any]:
    """``shapes`` cut to the comma list ``names`` in its order (all of them when None); an unknown name is the
    parser's error for ``--shapes``."""
    if not names:
        return shapes
    return {n: shapes[n] for n in picked(ap, "--shapes", names, shapes)}


def command_line(script: str, argv: list[str] | None) -> str:
    """``python experiments/<script>.py`` with ``argv`` quoted for a shell (the process's own arguments when None):
    the command a benchmark's record names."""
    return f"python experiments/{script}.py {shlex.join(sys.argv[1:] if argv is None else argv)}"


def command_log(script: str, argv: list[str] | None) -> tuple[Callable[[str], None], list[str], str]:
    """``(log, lines, command)`` for a benchmark's record: ``log`` prints a line and keeps it in ``lines``, and
    ``command`` (:func:`command_line`) is logged as the first line."""
    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    command = command_line(script, argv)
    log(f"# command: {command}")
    return log, lines, command


def error_text(e: BaseException, limit: int = 120) -> str:
    """``Type: first line of the message`` (cut to ``limit`` characters), for a variant that failed."""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:limit] if str(e) else ''}"


def write_json(path: str, record: Any, indent: int = 1) -> None:
    """Write ``record`` as JSON (objects JSON lacks as their text)."""
    with open(path, "w") as f:
        json.dump(record, f, indent=indent, default=str)


def write_record(out: str | Path, name: str, lines: list[str], record: Any) -> None:
    """Write a benchmark's record into the folder ``out`` (made if missing): ``name.txt`` (the lines) and
    ``name.json`` (``record``)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (folder / f"{name}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
