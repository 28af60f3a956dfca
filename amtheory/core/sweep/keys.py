"""Cell identity: the canonical JSON and key of a cell, the seeds and generators derived from it, and the columns
that tag each result row with its cell."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import torch

#: Columns the runner adds to every table besides the cell's fields.
KEY_COLUMN = "cell_key"


SEED_COLUMN = "seed"


ROOT_SEED_COLUMN = "root_seed"


DEVICE_COLUMN = "device"


#: The JSON list of the columns that hold the cell's fields: what tells readers a setting from a measured number.
FIELDS_COLUMN = "cell_fields"


#: Where a table records its own identity (``DataFrame.attrs``, stored in the parquet file's metadata).
IDENTITY_ATTR = "amtheory.core.sweep"


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
