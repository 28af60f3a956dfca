"""Shared command line of the experiment scripts: ``--preset tiny|full --out DIR [--device cpu|cuda]``.

Every script builds a list of cells for a preset and hands it to ``amtheory.core.sweep.run_sweep``; this module parses
the arguments, picks the device, keeps CPU runs to the requested threads, and reports the wall time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

PRESETS = ("tiny", "full")


def pick_device(device: str | None) -> str:
    """``cuda`` when asked for or (``device=None``) when available, else ``cpu``; asking for CUDA without one
    raises ``ValueError``."""
    from amtheory.core._checks import resolve_device

    return resolve_device("--device", device)


def parser(description: str, default_out: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--preset", choices=PRESETS, default="tiny", help="grid size (tiny: ~1 min on 2 CPU cores)")
    p.add_argument("--out", default=default_out, help="folder of per-cell parquet tables (resumable)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="root seed of the sweep (part of every table's name)")
    p.add_argument("--workers", default=None, help="None, 'auto' (one process per GPU) or an int")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_workers(v: str | None) -> int | str | None:
    if v is None or v == "auto":
        return v
    try:
        return int(v)
    except ValueError as exc:
        raise ValueError(f"--workers: expected 'auto' or an int, got {v!r}") from exc


def run_main(
    args: argparse.Namespace,
    build_cells: Callable[[str, argparse.Namespace], Sequence[Any]],
    fn: Callable,
) -> pd.DataFrame:
    """Build the preset's cells, run the sweep, print a one-line summary with the wall time."""
    from amtheory.core.sweep import run_sweep

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cells = build_cells(args.preset, args)
    t0 = time.perf_counter()
    df = run_sweep(
        cells,
        fn,
        args.out,
        root_seed=args.seed,
        device=device,
        progress=not args.no_progress,
        workers=parse_workers(args.workers),
    )
    dt = time.perf_counter() - t0
    print(f"{len(cells)} cells, {len(df)} rows in {os.path.abspath(args.out)} ({dt:.1f} s on {device})")
    return df


def chunked(n: int, size: int) -> list[slice]:
    """Slices that cover ``range(n)`` in pieces of at most ``size``."""
    size = max(1, int(size))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]
