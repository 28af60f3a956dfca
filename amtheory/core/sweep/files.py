"""Result tables on disk: one parquet file per cell and root seed, written atomically under a sha256 record, read
back only when intact, and set aside into ``damaged/`` when not."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from amtheory.core.sweep.keys import IDENTITY_ATTR, KEY_COLUMN, ROOT_SEED_COLUMN, _result_key_of, cell_key, result_key

#: Suffix of a table's checksum file, which sits beside it: ``<result key>.sha256.json``.
CHECKSUM_SUFFIX = ".sha256.json"


#: Subfolder that damaged tables are moved into (never read by ``load_results``, which reads ``out_dir/*.parquet``).
DAMAGED_DIR = "damaged"


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


def checked_pending_cells(cells: Sequence[Any], out_dir: str | os.PathLike, root_seed: int = 0) -> list[Any]:
    """The cells still to compute, as ``run_sweep`` finds them before it runs: every existing table is checked
    first and a damaged one (or one of the runner's older format) is moved into ``out_dir/damaged/``, so that its
    cell is pending again; then ``pending_cells``."""
    _set_aside_unusable(cells, Path(out_dir), root_seed)
    return pending_cells(cells, out_dir, root_seed)


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
