"""Running a sweep: each pending cell computed once, serially or in worker processes (one per device); a Slurm job
array is ``amtheory.core.sweep.slurm``."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from amtheory.core.sweep.files import _set_aside_unusable, load_results, pending_cells, result_path, write_atomic
from amtheory.core.sweep.keys import (
    DEVICE_COLUMN,
    FIELDS_COLUMN,
    IDENTITY_ATTR,
    KEY_COLUMN,
    ROOT_SEED_COLUMN,
    SEED_COLUMN,
    _check_cell,
    _check_root_seed,
    cell_columns,
    cell_key,
    derive_seed,
)

CellFn = Callable[[Any, torch.Generator, str], pd.DataFrame]


# ---- running ---------------------------------------------------------------------------------------------------
def run_cell(cell: Any, fn: CellFn, out_dir: str | os.PathLike, *, root_seed: int = 0, device: str = "cpu") -> Path:
    """Run one cell (whether or not its table exists) and write its table atomically; returns the path."""
    seed = derive_seed(root_seed, cell)
    # A CPU generator: the same cell draws the same numbers on every device.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    df = fn(cell, generator, device)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"fn: expected a pandas.DataFrame from fn(cell, generator, device), got {type(df).__name__}")
    df = df.reset_index(drop=True).copy()
    key = cell_key(cell)
    runner = {KEY_COLUMN: key, SEED_COLUMN: seed, ROOT_SEED_COLUMN: root_seed, DEVICE_COLUMN: str(device)}
    fields = cell_columns(cell)
    # A field named like a runner column (a cell's own "seed") is shadowed by it, as it always has been: only the
    # fields whose values are in the table are named as settings.
    runner[FIELDS_COLUMN] = json.dumps([name for name in fields if name not in runner])
    extra = {**fields, **runner}
    clash = sorted(set(extra) & set(df.columns))
    if clash:
        raise ValueError(
            f"fn: its table has columns {clash} that the runner adds from the cell (fields, key, seeds, device, "
            "field names); rename them or leave them out"
        )
    for name, value in extra.items():
        df[name] = pd.Series([value] * len(df), dtype=object if value is None else None, index=df.index)
    path = result_path(out_dir, cell, root_seed)
    df.attrs = {IDENTITY_ATTR: {"cell_key": key, "root_seed": root_seed, "result_key": path.stem}}
    write_atomic(df, path)
    return path


def _run_serial(
    cells: Sequence[Any], fn: CellFn, out_dir: Path, root_seed: int, device: str, progress: bool, desc: str
) -> None:
    from tqdm.auto import tqdm

    todo = pending_cells(cells, out_dir, root_seed)
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), disable=not progress, desc=desc, unit="cell")
    try:
        for cell in todo:
            # Checked again right before running: another worker or a concurrent run may have written it.
            if not result_path(out_dir, cell, root_seed).exists():
                run_cell(cell, fn, out_dir, root_seed=root_seed, device=device)
            bar.update(1)
    finally:
        bar.close()


def _exit_with_parent(parent_pid: int, poll_s: float = 0.25) -> None:
    """Start a daemon thread that ends this worker process as soon as its launcher (``parent_pid``) is gone.

    The launcher ends its workers when it is interrupted or terminated; this covers the ways it can end without
    running any code (SIGKILL, a crash, the out-of-memory killer). The end of the launcher is seen through the pipe
    that multiprocessing keeps from it to each spawned child (it reaches end-of-file when the launcher dies) and,
    as a fallback, through the parent process id changing once the worker is re-parented."""
    import multiprocessing

    parent = multiprocessing.parent_process()

    def watch() -> None:
        while True:
            if parent is not None:
                parent.join(timeout=poll_s)
                gone = not parent.is_alive()
            else:
                time.sleep(poll_s)
                gone = False
            if gone or os.getppid() != parent_pid:
                # os._exit: the main thread may be deep in a computation; nothing of it is worth finishing, and a
                # table being written stays a hidden temporary file that no reader takes for a result.
                os._exit(1)

    threading.Thread(target=watch, name="amtheory-sweep-parent-watch", daemon=True).start()


def _worker_main(
    rank: int,
    cells: list[Any],
    fn: CellFn,
    out_dir: str,
    root_seed: int,
    device: str,
    threads: int | None,
    parent_pid: int | None = None,
) -> None:
    """Entry point of a spawned worker: runs its share of the cells, without a progress bar of its own, and ends
    with its launcher (``parent_pid``)."""
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    if threads is not None:
        torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    try:
        _run_serial(cells, fn, Path(out_dir), root_seed, device, False, f"worker {rank}")
    except BaseException:
        traceback.print_exc()
        raise


def _worker_devices(workers: int | str | None, device: str) -> list[str]:
    """The device of each worker process (an empty list: run in this process)."""
    if workers is None:
        return []
    if workers == "auto":
        n_gpu = torch.cuda.device_count() if str(device).startswith("cuda") else 0
        return [f"cuda:{i}" for i in range(n_gpu)] if n_gpu > 1 else []
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers: expected None, 'auto' or an int >= 1, got {type(workers).__name__} {workers!r}")
    if workers < 1:
        raise ValueError(f"workers: expected None, 'auto' or an int >= 1, got {workers}")
    if workers == 1:
        return []
    if device == "cuda" and torch.cuda.device_count() > 1:
        n_gpu = torch.cuda.device_count()
        return [f"cuda:{i % n_gpu}" for i in range(workers)]
    return [str(device)] * workers


def run_sweep(
    cells: Sequence[Any],
    fn: CellFn,
    out_dir: str | os.PathLike,
    *,
    root_seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    workers: int | str | None = None,
) -> pd.DataFrame:
    """Run ``fn(cell, generator, device) -> DataFrame`` for every cell without a table for ``root_seed`` in
    ``out_dir``, then load and concatenate the tables of all ``cells``.

    A cell's existing table is checked first: a damaged one (see ``read_table``) is moved into ``out_dir/damaged/``
    with a message on stderr and the cell is computed again, as is a cell whose table is in the runner's older
    format (named by the cell alone).

    ``generator`` is a CPU ``torch.Generator`` seeded with ``derive_seed(root_seed, cell)``. ``workers``: None or 1
    runs in this process; ``"auto"`` spawns one process per GPU when ``device`` is CUDA and more than one GPU is
    visible (else runs here); an int ``n >= 2`` spawns ``n`` processes (on ``device``, or spread over the GPUs when
    ``device == "cuda"``). Workers take a strided share ``cells[rank::n]`` and each writes its own tables; ``fn``
    must then be picklable (a module-level function). Workers end when the launcher is interrupted, terminated or
    killed.
    """
    cells = list(cells)
    for i, c in enumerate(cells):
        _check_cell(c, f"cells[{i}]")
    if not callable(fn):
        raise TypeError(f"fn: expected a callable fn(cell, generator, device) -> DataFrame, got {type(fn).__name__}")
    _check_root_seed(root_seed)
    keys = [cell_key(c) for c in cells]
    if len(set(keys)) != len(keys):
        dup = next(c for c, k in zip(cells, keys) if keys.count(k) > 1)
        raise ValueError(f"cells: expected distinct cells, got a repeated one: {dup!r}")
    device = str(device)
    devices = _worker_devices(workers, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _set_aside_unusable(cells, out, root_seed)
    if not devices:
        _run_serial(cells, fn, out, root_seed, device, progress, out.name)
    else:
        _run_spawned(cells, fn, out, root_seed, devices, progress)
    return load_results(out, cells, root_seed=root_seed)


class _Terminated(BaseException):
    """Raised in the launcher by SIGTERM or SIGHUP, so that it ends its workers before it exits."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    raise _Terminated(signum)


def _stop_workers(procs: list[Any], grace_s: float = 5.0) -> None:
    """Terminate the live workers, and kill those still alive after ``grace_s`` seconds."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _run_spawned(cells: list[Any], fn: CellFn, out: Path, root_seed: int, devices: list[str], progress: bool) -> None:
    import torch.multiprocessing as mp
    from tqdm.auto import tqdm

    n = len(devices)
    # CPU workers share the cores; GPU workers need few CPU threads each.
    threads = max(1, torch.get_num_threads() // n) if devices[0] == "cpu" else 1
    ctx = mp.get_context("spawn")
    # SIGTERM and SIGHUP would end the launcher without unwinding; as exceptions they reach the clean-up below,
    # which ends the workers (SIGINT already arrives as KeyboardInterrupt). Handlers can only be set from the main
    # thread; elsewhere the workers still end through their watch on the launcher.
    handled = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, _raise_terminated) for s in handled}
    procs = []
    bar = None
    try:
        for rank, dev in enumerate(devices):
            share = cells[rank::n]
            p = ctx.Process(
                target=_worker_main,
                args=(rank, share, fn, str(out), root_seed, dev, threads, os.getpid()),
                daemon=False,
            )
            p.start()
            procs.append(p)
        # The parent only watches the folder fill up.
        bar = tqdm(total=len(cells), disable=not progress, desc=f"{out.name} ({n} workers)", unit="cell")
        while True:
            done = len(cells) - len(pending_cells(cells, out, root_seed))
            bar.update(done - bar.n)
            if not any(p.is_alive() for p in procs):
                break
            time.sleep(0.5)
    except _Terminated as exc:
        _stop_workers(procs)
        raise SystemExit(128 + exc.signum) from None
    except BaseException:
        _stop_workers(procs)
        raise
    finally:
        for p in procs:
            p.join()
        if bar is not None:
            bar.close()
        for s, h in previous.items():
            signal.signal(s, h)
    failed = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"workers {failed} (rank, exit code) failed; their finished cells are kept in {out}, "
            "run the sweep again to resume"
        )
