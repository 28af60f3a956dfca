"""A resumable sweep runner: one tidy table per cell of an experiment grid, written atomically.

An experiment is a list of *cells*, small frozen dataclasses whose fields are ints, floats, strs, bools, None,
tuples of these or nested dataclasses. Each cell gets

* a key, ``cell_key(cell) = sha256(canonical JSON of {type name, fields})``, stable across processes, machines and
  Python versions, and sensitive to every field (and to the field's type: ``1`` and ``1.0`` differ);
* a seed, ``derive_seed(root_seed, cell)``, from the same hash, so a cell's random stream does not depend on the
  order of the sweep, on which worker runs it, or on which other cells exist.

``run_sweep(cells, fn, out_dir)`` calls ``fn(cell, generator, device) -> pandas.DataFrame`` for every cell whose
``out_dir/<key>.parquet`` is missing, adds the cell's fields, key, seed and device as columns and writes the table
to a temporary file in ``out_dir`` that is then renamed over the final name (``os.replace`` is atomic on one file
system), so a killed sweep leaves only finished tables and is resumed by running it again. Several worker
processes (one per GPU with ``workers="auto"``) split the cell list in a strided partition; each writes its own
cells. ``submit_slurm`` does the same over a Slurm job array through submitit, imported only when used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

CellFn = Callable[[Any, torch.Generator, str], pd.DataFrame]

#: Columns the runner adds to every table besides the cell's fields.
KEY_COLUMN = "cell_key"
SEED_COLUMN = "seed"
DEVICE_COLUMN = "device"


# ---- keys and seeds --------------------------------------------------------------------------------------------
def _canonical(value: Any, where: str) -> Any:
    """A JSON-ready form of a cell field; rejects types whose text form is not stable."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__type__": type(value).__qualname__,
            "fields": {
                f.name: _canonical(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)
            },
        }
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: expected a finite float in a cell, got {value}")
        # Tag floats so that 1 and 1.0 give different keys (they are different configurations to a cell fn).
        return {"__float__": repr(value)}
    if isinstance(value, tuple):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where}: expected a cell field of type int, float, str, bool, None, tuple or dataclass, "
        f"got {type(value).__name__}"
    )


def _check_cell(cell: Any, name: str = "cell") -> None:
    if not dataclasses.is_dataclass(cell) or isinstance(cell, type):
        raise TypeError(f"{name}: expected a dataclass instance, got {type(cell).__name__}")
    params = getattr(type(cell), "__dataclass_params__", None)
    if params is not None and not params.frozen:
        raise TypeError(f"{name}: expected a frozen dataclass (@dataclass(frozen=True)), got {type(cell).__name__}")


def canonical_json(cell: Any) -> str:
    """The canonical JSON text a cell's key is hashed from (sorted keys, no whitespace)."""
    _check_cell(cell)
    return json.dumps(_canonical(cell, type(cell).__qualname__), sort_keys=True, separators=(",", ":"))


def cell_key(cell: Any) -> str:
    """Stable key of a cell: ``sha256(canonical_json(cell))`` as 64 hex digits."""
    return hashlib.sha256(canonical_json(cell).encode("utf-8")).hexdigest()


def derive_seed(root_seed: int, cell: Any) -> int:
    """Seed of a cell's generator: the first 63 bits of ``sha256(f"{root_seed}:{cell_key(cell)}")``.

    Depends only on the root seed and the cell, so it is the same whatever the order, worker or device.
    """
    if isinstance(root_seed, bool) or not isinstance(root_seed, int):
        raise TypeError(f"root_seed: expected an int, got {type(root_seed).__name__} {root_seed!r}")
    digest = hashlib.sha256(f"{root_seed}:{cell_key(cell)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def text_generator(text: str, *, byteorder: str = "big") -> torch.Generator:
    """A CPU generator seeded from the sha256 of ``text`` (its first 8 bytes read in ``byteorder``, 63 bits kept):
    random streams named by what they are for, the same in every process and on every machine."""
    digest = hashlib.sha256(text.encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], byteorder) & ((1 << 63) - 1))


def sub_generator(generator: torch.Generator, label: str) -> torch.Generator:
    """A CPU generator derived from ``generator``'s seed and a label: independent streams for parts of a cell
    (for example one per backend) that do not shift when another part draws more numbers."""
    return text_generator(f"{generator.initial_seed()}:{label}")


def cell_columns(cell: Any) -> dict[str, Any]:
    """The cell's fields as flat table columns: nested dataclasses become ``outer.inner``, tuples become their
    canonical JSON text (so that columns stay scalar and can be grouped on)."""
    _check_cell(cell)
    out: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            name = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                walk(v, f"{name}.")
            elif isinstance(v, tuple):
                out[name] = json.dumps(_canonical(v, name), sort_keys=True, separators=(",", ":"))
            else:
                _canonical(v, name)
                out[name] = v

    walk(cell, "")
    return out


# ---- files -----------------------------------------------------------------------------------------------------
def result_path(out_dir: str | os.PathLike, cell: Any) -> Path:
    """Where a cell's table lives: ``out_dir/<cell_key>.parquet``."""
    return Path(out_dir) / f"{cell_key(cell)}.parquet"


def write_atomic(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as parquet to ``path`` through a temporary file in the same folder and ``os.replace``: a reader
    (or a crash) sees either no file or the whole table."""
    path = Path(path)
    # The temporary name starts with "." and ends in ".tmp" so that it never matches "*.parquet".
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def pending_cells(cells: Sequence[Any], out_dir: str | os.PathLike) -> list[Any]:
    """The cells whose table does not exist yet, in order."""
    return [c for c in cells if not result_path(out_dir, c).exists()]


def load_results(out_dir: str | os.PathLike, cells: Iterable[Any] | None = None) -> pd.DataFrame:
    """Concatenate the tables in ``out_dir`` (all of them, or those of ``cells``; a missing one raises
    ``FileNotFoundError``). An empty folder gives an empty DataFrame."""
    out_dir = Path(out_dir)
    if cells is None:
        paths = sorted(out_dir.glob("*.parquet")) if out_dir.is_dir() else []
    else:
        paths = [result_path(out_dir, c) for c in cells]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"cells: expected a finished table for every cell in {out_dir}, {len(missing)} of {len(paths)} "
                f"are missing (first: {missing[0].name}); run the sweep first"
            )
    frames = [pd.read_parquet(p) for p in paths]
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


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
    extra = {**cell_columns(cell), KEY_COLUMN: cell_key(cell), SEED_COLUMN: seed, DEVICE_COLUMN: str(device)}
    clash = sorted(set(extra) & set(df.columns))
    if clash:
        raise ValueError(
            f"fn: its table has columns {clash} that the runner adds from the cell (fields, key, seed, device); "
            "rename them or leave them out"
        )
    for name, value in extra.items():
        df[name] = pd.Series([value] * len(df), dtype=object if value is None else None, index=df.index)
    path = result_path(out_dir, cell)
    write_atomic(df, path)
    return path


def _run_serial(
    cells: Sequence[Any], fn: CellFn, out_dir: Path, root_seed: int, device: str, progress: bool, desc: str
) -> None:
    from tqdm.auto import tqdm

    todo = pending_cells(cells, out_dir)
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), disable=not progress, desc=desc, unit="cell")
    try:
        for cell in todo:
            # Checked again right before running: another worker or a concurrent run may have written it.
            if not result_path(out_dir, cell).exists():
                run_cell(cell, fn, out_dir, root_seed=root_seed, device=device)
            bar.update(1)
    finally:
        bar.close()


def _worker_main(
    rank: int, cells: list[Any], fn: CellFn, out_dir: str, root_seed: int, device: str, threads: int | None
) -> None:
    """Entry point of a spawned worker: runs its share of the cells, without a progress bar of its own."""
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
    """Run ``fn(cell, generator, device) -> DataFrame`` for every cell without a table in ``out_dir``, then load
    and concatenate the tables of all ``cells``.

    ``generator`` is a CPU ``torch.Generator`` seeded with ``derive_seed(root_seed, cell)``. ``workers``: None or 1
    runs in this process; ``"auto"`` spawns one process per GPU when ``device`` is CUDA and more than one GPU is
    visible (else runs here); an int ``n >= 2`` spawns ``n`` processes (on ``device``, or spread over the GPUs when
    ``device == "cuda"``). Workers take a strided share ``cells[rank::n]`` and each writes its own tables; ``fn``
    must then be picklable (a module-level function).
    """
    cells = list(cells)
    for i, c in enumerate(cells):
        _check_cell(c, f"cells[{i}]")
    if not callable(fn):
        raise TypeError(f"fn: expected a callable fn(cell, generator, device) -> DataFrame, got {type(fn).__name__}")
    if isinstance(root_seed, bool) or not isinstance(root_seed, int):
        raise TypeError(f"root_seed: expected an int, got {type(root_seed).__name__} {root_seed!r}")
    keys = [cell_key(c) for c in cells]
    if len(set(keys)) != len(keys):
        dup = next(c for c, k in zip(cells, keys) if keys.count(k) > 1)
        raise ValueError(f"cells: expected distinct cells, got a repeated one: {dup!r}")
    device = str(device)
    devices = _worker_devices(workers, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not devices:
        _run_serial(cells, fn, out, root_seed, device, progress, out.name)
    else:
        _run_spawned(cells, fn, out, root_seed, devices, progress)
    return load_results(out, cells)


def _run_spawned(cells: list[Any], fn: CellFn, out: Path, root_seed: int, devices: list[str], progress: bool) -> None:
    import torch.multiprocessing as mp
    from tqdm.auto import tqdm

    n = len(devices)
    # CPU workers share the cores; GPU workers need few CPU threads each.
    threads = max(1, torch.get_num_threads() // n) if devices[0] == "cpu" else 1
    ctx = mp.get_context("spawn")
    procs = []
    for rank, dev in enumerate(devices):
        share = cells[rank::n]
        p = ctx.Process(target=_worker_main, args=(rank, share, fn, str(out), root_seed, dev, threads), daemon=False)
        p.start()
        procs.append(p)
    # The parent only watches the folder fill up.
    bar = tqdm(total=len(cells), disable=not progress, desc=f"{out.name} ({n} workers)", unit="cell")
    try:
        while True:
            done = len(cells) - len(pending_cells(cells, out))
            bar.update(done - bar.n)
            if not any(p.is_alive() for p in procs):
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            p.join()
        bar.close()
    failed = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"workers {failed} (rank, exit code) failed; their finished cells are kept in {out}, "
            "run the sweep again to resume"
        )


# ---- Slurm (optional) -------------------------------------------------------------------------------------------
def _run_chunk(cells: list[Any], fn: CellFn, out_dir: str, root_seed: int, device: str) -> int:
    _run_serial(cells, fn, Path(out_dir), root_seed, device, False, "slurm")
    return len(cells)


def submit_slurm(
    cells: Sequence[Any],
    fn: CellFn,
    out_dir: str | os.PathLike,
    executor: Any,
    *,
    n_jobs: int,
    root_seed: int = 0,
    device: str = "cuda",
) -> list[Any]:
    """Submit the pending cells as a Slurm job array through a configured ``submitit.AutoExecutor`` (``n_jobs``
    array tasks over a strided partition); returns the submitit jobs. Collect with ``load_results`` once they are
    done. submitit is needed only here and is imported lazily; ``executor`` is made by the caller, e.g.
    ``ex = submitit.AutoExecutor(folder="logs"); ex.update_parameters(gpus_per_node=1, timeout_min=60)``.
    """
    try:
        import submitit  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("submit_slurm needs the optional package submitit (pip install submitit)") from exc
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs: expected an int >= 1, got {n_jobs!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = pending_cells(list(cells), out)
    chunks = [todo[r::n_jobs] for r in range(min(n_jobs, len(todo)))]
    if not chunks:
        return []
    n = len(chunks)
    return executor.map_array(_run_chunk, chunks, [fn] * n, [str(out)] * n, [root_seed] * n, [device] * n)
