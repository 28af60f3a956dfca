"""A resumable sweep runner: one tidy table per cell of an experiment grid, written atomically and checksummed.

An experiment is a list of *cells*, small frozen dataclasses whose fields are ints, floats, strs, bools, None,
tuples of these or nested dataclasses. Each cell gets

* a key, ``cell_key(cell) = sha256(canonical JSON of {type name, fields})``, stable across processes, machines and
  Python versions, and sensitive to every field (and to the field's type: ``1`` and ``1.0`` differ);
* a seed, ``derive_seed(root_seed, cell)``, from the same hash, so a cell's random stream does not depend on the
  order of the sweep, on which worker runs it, or on which other cells exist;
* a result key, ``result_key(cell, root_seed)``, the sha256 of the cell key and the root seed: the name of its
  table, so that runs with different root seeds never take each other's tables.

``run_sweep(cells, fn, out_dir, root_seed=...)`` calls ``fn(cell, generator, device) -> pandas.DataFrame`` for
every cell whose ``out_dir/<result key>.parquet`` is missing, adds the cell's fields, key, seed, root seed, device
and the names of the field columns as columns, and writes the table to a temporary file in ``out_dir`` that is
then renamed over the final name (``os.replace`` is atomic on one file system), so a killed sweep leaves only
finished tables and is resumed by running it again. Before the rename, ``<result key>.sha256.json`` records the
size and sha256 of the table file, and the file itself carries its cell key, root seed and result key. Every read
(``load_results``, ``read_table``) checks both, so a truncated, bit-flipped or misnamed table raises
``DamagedTableError`` naming the file; ``run_sweep`` moves such a table into ``out_dir/damaged/`` (never deleting
it) and computes the cell again. Several worker processes (one per GPU with ``workers="auto"``) split the cell
list in a strided partition; each writes its own cells and ends when its launcher ends, however that ends.
``submit_slurm`` does the same over a Slurm job array through submitit, imported only when used.

Readers that average tables call ``check_single_setting`` (or split them with ``setting_groups``): a folder may
hold tables of different settings (another root seed, another update rule), which must never be averaged together.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import json
import math
import os
import signal
import sys
import tempfile
import threading
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
ROOT_SEED_COLUMN = "root_seed"
DEVICE_COLUMN = "device"
#: The JSON list of the columns that hold the cell's fields: what tells readers a setting from a measured number.
FIELDS_COLUMN = "cell_fields"
#: Where a table records its own identity (``DataFrame.attrs``, stored in the parquet file's metadata).
IDENTITY_ATTR = "amtheory.core.sweep"
#: Suffix of a table's checksum file, which sits beside it: ``<result key>.sha256.json``.
CHECKSUM_SUFFIX = ".sha256.json"
#: Subfolder that damaged tables are moved into (never read by ``load_results``, which reads ``out_dir/*.parquet``).
DAMAGED_DIR = "damaged"


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
    _check_root_seed(root_seed)
    digest = hashlib.sha256(f"{root_seed}:{cell_key(cell)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def _check_root_seed(root_seed: Any) -> None:
    if isinstance(root_seed, bool) or not isinstance(root_seed, int):
        raise TypeError(f"root_seed: expected an int, got {type(root_seed).__name__} {root_seed!r}")


def _result_key_of(key: str, root_seed: int) -> str:
    text = json.dumps({"cell_key": key, "root_seed": root_seed}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def result_key(cell: Any, root_seed: int) -> str:
    """Name of a cell's table for one root seed: the sha256 of the canonical JSON of ``{"cell_key": cell_key(cell),
    "root_seed": root_seed}``, 64 hex digits. A table's own ``cell_key`` and ``root_seed`` give it back."""
    _check_root_seed(root_seed)
    return _result_key_of(cell_key(cell), root_seed)


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
class DamagedTableError(ValueError):
    """A result table that cannot be trusted: truncated, altered, without its checksum file, or stored under a name
    that is not its own. ``path`` is the table file, ``reason`` what is wrong with it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: damaged table ({reason})")


def result_path(out_dir: str | os.PathLike, cell: Any, root_seed: int = 0) -> Path:
    """Where a cell's table for ``root_seed`` lives: ``out_dir/<result_key(cell, root_seed)>.parquet``."""
    return Path(out_dir) / f"{result_key(cell, root_seed)}.parquet"


def checksum_path(path: str | os.PathLike) -> Path:
    """The checksum file of the table at ``path``: ``<stem>.sha256.json`` in the same folder."""
    path = Path(path)
    return path.with_name(path.stem + CHECKSUM_SUFFIX)


def _replace_via_temp(data: bytes, path: Path) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``."""
    # The temporary name starts with "." and ends in ".tmp" so that it never matches "*.parquet".
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as parquet to ``path`` through a temporary file in the same folder and ``os.replace``: a reader
    (or a crash) sees either no file or the whole table. The size and sha256 of the file are written to
    ``checksum_path(path)`` before the rename, so a table is never in place without its checksum."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        data = Path(tmp).read_bytes()
        record = {"file": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        _replace_via_temp(json.dumps(record, sort_keys=True).encode("utf-8"), checksum_path(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _verified_bytes(path: Path) -> bytes:
    """The bytes of the table at ``path``, checked against its checksum file."""
    data = path.read_bytes()
    side = checksum_path(path)
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedTableError(
            path, f"no checksum file {side.name}: written by an older version of the runner, or the file was lost"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedTableError(path, f"unreadable checksum file {side.name}: {exc}") from None
    if not isinstance(record, dict) or not {"file", "bytes", "sha256"} <= set(record):
        raise DamagedTableError(path, f"checksum file {side.name} lacks 'file', 'bytes' or 'sha256'")
    if record["file"] != path.name:
        raise DamagedTableError(path, f"checksum file {side.name} is that of {record['file']!r}")
    if len(data) != record["bytes"]:
        raise DamagedTableError(path, f"expected {record['bytes']} bytes, found {len(data)} (truncated or extended)")
    digest = hashlib.sha256(data).hexdigest()
    if digest != record["sha256"]:
        raise DamagedTableError(path, f"sha256 {digest} differs from the recorded {record['sha256']} (altered)")
    return data


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read one result table after checking it: its size and sha256 against its checksum file, and its identity
    (cell key, root seed, result key, stored in the file) against its name and its rows. Raises
    ``DamagedTableError`` naming the file when any check fails; ``FileNotFoundError`` when there is no table."""
    path = Path(path)
    data = _verified_bytes(path)
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # its checksum matched: the file was written that way
        raise DamagedTableError(path, f"not a readable parquet table: {exc}") from None
    ident = df.attrs.get(IDENTITY_ATTR)
    if not isinstance(ident, dict) or not {"cell_key", "root_seed", "result_key"} <= set(ident):
        raise DamagedTableError(path, "the table does not record its cell key, root seed and result key")
    df.attrs = {}
    if ident["result_key"] != path.stem or _result_key_of(ident["cell_key"], ident["root_seed"]) != path.stem:
        raise DamagedTableError(
            path,
            f"it holds the table of result key {ident['result_key']} (cell {ident['cell_key']}, root seed "
            f"{ident['root_seed']}), stored under another cell's name",
        )
    for column, want in ((KEY_COLUMN, ident["cell_key"]), (ROOT_SEED_COLUMN, ident["root_seed"])):
        if column not in df.columns or (len(df) and not (df[column] == want).all()):
            raise DamagedTableError(path, f"its column {column!r} does not hold its recorded value {want!r}")
    return df


def _move_aside(path: Path, reason: str) -> Path:
    """Move a table that cannot be used (and its checksum file) into ``<folder>/damaged/`` under a name that no
    reader globs, ``<name>.damaged-<n>``; returns the table's new path."""
    folder = path.parent / DAMAGED_DIR
    folder.mkdir(exist_ok=True)
    n = 0
    while True:
        dest = folder / f"{path.name}.damaged-{n}"
        try:
            # A hard link fails where the name is taken, so two runs moving tables aside keep every copy.
            os.link(path, dest)
        except FileExistsError:
            n += 1
            continue
        except FileNotFoundError:  # another run moved it aside first
            return dest
        except OSError:  # a file system without hard links
            if dest.exists():
                n += 1
                continue
            os.replace(path, dest)
            break
        os.unlink(path)
        break
    side = checksum_path(path)
    if side.exists():
        os.replace(side, folder / f"{side.name}.damaged-{n}")
    print(f"[sweep] {path}: {reason}; moved to {dest}, computing the cell again", file=sys.stderr, flush=True)
    return dest


def _set_aside_unusable(cells: Sequence[Any], out_dir: Path, root_seed: int) -> None:
    """Check the existing table of every cell and move the damaged ones aside (they are then pending), as well as
    tables the runner wrote before tables were named by root seed (``<cell key>.parquet``, no checksum)."""
    for cell in cells:
        path = result_path(out_dir, cell, root_seed)
        if path.exists():
            try:
                read_table(path)
            except DamagedTableError as exc:
                _move_aside(path, f"damaged table ({exc.reason})")
        older = out_dir / f"{cell_key(cell)}.parquet"
        if older.exists() and not checksum_path(older).exists():
            _move_aside(older, "table of an older format (named by the cell alone, for any root seed, no checksum)")


def pending_cells(cells: Sequence[Any], out_dir: str | os.PathLike, root_seed: int = 0) -> list[Any]:
    """The cells whose table for ``root_seed`` does not exist yet, in order."""
    return [c for c in cells if not result_path(out_dir, c, root_seed).exists()]


def load_results(out_dir: str | os.PathLike, cells: Iterable[Any] | None = None, *, root_seed: int = 0) -> pd.DataFrame:
    """Concatenate the tables in ``out_dir``: all of them (every root seed), or those of ``cells`` for
    ``root_seed`` (a missing one raises ``FileNotFoundError``). Every table is checked as ``read_table`` does; a
    damaged one raises ``DamagedTableError`` naming it. An empty folder gives an empty DataFrame."""
    out_dir = Path(out_dir)
    if cells is None:
        paths = sorted(out_dir.glob("*.parquet")) if out_dir.is_dir() else []
    else:
        paths = [result_path(out_dir, c, root_seed) for c in cells]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"cells: expected a finished table for every cell in {out_dir} (root seed {root_seed}), "
                f"{len(missing)} of {len(paths)} are missing (first: {missing[0].name}); run the sweep first"
            )
    frames = [read_table(p) for p in paths]
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


# ---- settings: what readers may average ------------------------------------------------------------------------
def _setting_values(df: pd.DataFrame, what: str) -> dict[str, set]:
    """Each setting column (a cell field of some row's table, and the root seed) with the values it takes over
    the rows whose cell has that field."""
    if FIELDS_COLUMN not in df.columns:
        raise ValueError(
            f"{what}: expected tables written by amtheory.core.sweep (with the column {FIELDS_COLUMN!r} naming each "
            f"table's cell fields), got columns {list(df.columns)[:12]}"
        )
    if df[FIELDS_COLUMN].isna().any():
        raise ValueError(f"{what}: expected every row to name its cell fields (column {FIELDS_COLUMN!r}), some do not")
    values: dict[str, set] = {}
    for fields_json, rows in df.groupby(FIELDS_COLUMN, sort=False):
        for name in [*json.loads(fields_json), ROOT_SEED_COLUMN]:
            if name not in rows.columns:
                raise ValueError(f"{what}: the tables name {name!r} as a setting column, but there is no such column")
            col = rows[name].astype(object)
            values.setdefault(name, set()).update(col.where(col.notna(), None).unique().tolist())
    return values


def _varying(df: pd.DataFrame, vary: Sequence[str], what: str) -> dict[str, list]:
    if isinstance(vary, str):
        raise TypeError(f"vary: expected a sequence of column names or patterns, got the str {vary!r}")
    out = {}
    for name, vals in _setting_values(df, what).items():
        if len(vals) > 1 and not any(fnmatch.fnmatchcase(name, pat) for pat in vary):
            out[name] = sorted(vals, key=repr)
    return out


def setting_groups(
    df: pd.DataFrame, *, vary: Sequence[str] = (), what: str = "results"
) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Split sweep results into parts of one setting each.

    Setting columns are the cell fields that each row's table names in its ``cell_fields`` column, and
    ``root_seed``. ``vary`` lists the columns (``fnmatch`` patterns, e.g. ``"train.arch.*"``) that a reader draws
    or averages over by design, such as the grid axes and replicates. Every other setting column that takes more
    than one value splits the rows; returns ``[(values of those columns, rows)]``, a single ``({}, df)`` when the
    table holds one setting. Rows whose cell lacks a splitting field have None for it.
    """
    varying = _varying(df, vary, what)
    if not varying:
        return [({}, df)]
    names = sorted(varying)
    keys = df[names].astype(object)
    keys = keys.where(keys.notna(), None)
    return [
        (dict(zip(names, key if isinstance(key, tuple) else (key,))), df.loc[rows.index])
        for key, rows in keys.groupby(names, dropna=False, sort=False)
    ]


def check_single_setting(df: pd.DataFrame, *, vary: Sequence[str] = (), what: str = "results") -> pd.DataFrame:
    """Raise ``ValueError`` naming every setting column (see ``setting_groups``) outside ``vary`` that takes more
    than one value in ``df``, with its values: such tables are of different settings and must not be averaged.
    Returns ``df``."""
    varying = _varying(df, vary, what)
    if varying:
        listed = "; ".join(f"{name} takes {vals}" for name, vals in sorted(varying.items()))
        raise ValueError(
            f"{what}: expected tables of one setting, found several: {listed}. Keep each setting's tables in a "
            "folder of its own (or select one setting's rows) before drawing or summarizing them"
        )
    return df


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
    array tasks over a strided partition); returns the submitit jobs. Damaged tables are moved aside first, as
    ``run_sweep`` does. Collect with ``load_results(out_dir, cells, root_seed=root_seed)`` once they are done.
    submitit is needed only here and is imported lazily; ``executor`` is made by the caller, e.g.
    ``ex = submitit.AutoExecutor(folder="logs"); ex.update_parameters(gpus_per_node=1, timeout_min=60)``.
    """
    try:
        import submitit  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("submit_slurm needs the optional package submitit (pip install submitit)") from exc
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs: expected an int >= 1, got {n_jobs!r}")
    _check_root_seed(root_seed)
    cells = list(cells)
    for i, c in enumerate(cells):
        _check_cell(c, f"cells[{i}]")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _set_aside_unusable(cells, out, root_seed)
    todo = pending_cells(cells, out, root_seed)
    chunks = [todo[r::n_jobs] for r in range(min(n_jobs, len(todo)))]
    if not chunks:
        return []
    n = len(chunks)
    return executor.map_array(_run_chunk, chunks, [fn] * n, [str(out)] * n, [root_seed] * n, [device] * n)
