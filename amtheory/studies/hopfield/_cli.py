"""Shared command line of the experiment scripts: ``--preset tiny|full --out DIR [--device cpu|cuda]``.

Every script builds a list of cells for a preset and hands it to ``amtheory.core.sweep.run_sweep``; this module parses
the arguments, picks the device, keeps CPU runs to the requested threads, and reports the wall time. The options are
the fields of :class:`SweepOptions` (help and defaults from the dataclass); ``--config FILE`` (YAML or JSON) sets any
of them, later options override it, and options may be spelled with ``-`` or ``_`` (``--no-progress``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import torch
from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

from amtheory.core.cli_args import normalise_flags

PRESETS = ("tiny", "full")


def pick_device(device: str | None) -> str:
    """``cuda`` when asked for or (``device=None``) when available, else ``cpu``; asking for CUDA without one
    raises ``ValueError``."""
    from amtheory.core._checks import resolve_device

    return resolve_device("--device", device)


@dataclass(frozen=True)
class SweepOptions:
    """Sweep options."""

    preset: Literal["tiny", "full"] = "tiny"
    """Grid size (tiny: about a minute on 2 CPU cores)."""
    out: str = "results"
    """Folder of per-cell parquet tables (resumable); each study sets its own default."""
    device: str | None = None
    """cpu or cuda (null: cuda when available)."""
    seed: int = 0
    """Root seed of the sweep (part of every table's name)."""
    workers: int | Literal["auto"] | None = None
    """null (this process), auto (one process per GPU) or a number of processes."""
    threads: int | None = None
    """torch CPU threads (null: torch's own)."""
    progress: bool = True
    """Show a progress bar (--no-progress: none)."""


_BOOLS = [f.name for f in dataclasses.fields(SweepOptions) if f.type in (bool, "bool")]


class _SweepParser(ArgumentParser):
    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None, **kw: Any) -> Any:  # type: ignore[override]
        argv = sys.argv[1:] if args is None else args
        ns = super().parse_args(normalise_flags(argv, _BOOLS), namespace, **kw)
        # A plain namespace: jsonargparse's own shadows an option named like one of its methods (``--update``).
        return argparse.Namespace(**ns.as_dict())


def parser(
    description: str, default_out: str, *, prog: str | None = None, exit_on_error: bool = True
) -> ArgumentParser:
    """A parser of the :class:`SweepOptions` fields (``--out`` defaulting to ``default_out``) and ``--config``; a
    study adds its own options to it. ``prog`` names the command in its usage line; with ``exit_on_error=False`` a
    bad argument raises ``argparse.ArgumentError`` instead of printing the usage and exiting."""
    # The fields' help texts are their attribute docstrings above.
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    p = _SweepParser(description=description, prog=prog, exit_on_error=exit_on_error)
    p.add_argument(
        "--config",
        action=ActionConfigFile,
        help="YAML or JSON file of options, later options override it (default: none)",
    )
    p.add_class_arguments(SweepOptions, None, sub_configs=False)
    p.set_defaults(out=default_out)
    return p


def parse_workers(v: int | str | None) -> int | str | None:
    if v is None or v == "auto":
        return v
    try:
        return int(v)
    except ValueError as exc:
        raise ValueError(f"--workers: expected 'auto' or an int, got {v!r}") from exc


def run_main(
    args: argparse.Namespace | Any,
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
        progress=args.progress,
        workers=parse_workers(args.workers),
    )
    dt = time.perf_counter() - t0
    print(f"{len(cells)} cells, {len(df)} rows in {os.path.abspath(args.out)} ({dt:.1f} s on {device})")
    return df


def chunked(n: int, size: int) -> list[slice]:
    """Slices that cover ``range(n)`` in pieces of at most ``size``."""
    size = max(1, int(size))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]
