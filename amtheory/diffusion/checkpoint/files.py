"""The checkpoint folder format: its file names, errors, and the checks of every file against ``checksums.json``."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

FORMAT = "amtheory-uddm-checkpoint/2"


LATEST = "LATEST"


CHECKSUMS = "checksums.json"


#: Every file a checkpoint folder may hold besides ``checksums.json``; anything else is refused.
FILES = ("config.json", "model.safetensors", "ema.safetensors", "optimizer.safetensors", "train_state.json")


_REQUIRED = ("config.json", "model.safetensors")


_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".tar", ".joblib")


_STEP_NAME = re.compile(r"step-([0-9]+)")


#: What an interrupted save_checkpoint or mark_latest leaves: ``.<name>.tmp-<8 hex>`` and ``.<name>.old-<8 hex>``.
_DEBRIS_NAME = re.compile(r"\..+\.(?:tmp|old)-[0-9a-f]{8}")


_SHA256 = re.compile(r"[0-9a-f]{64}")


_MAX_LATEST_BYTES = 4096


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not fit what the caller expects."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file is missing, truncated or altered since it was written (its size or sha256 differs from
    the record in ``checksums.json``), or that record itself is damaged."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------- JSON and optimizer
def _check_json(what: str, value: Any) -> None:
    """Raise TypeError unless ``value`` is plain JSON (so that it reads back exactly as it was written)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(f"{what}[{i}]", v)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{what}: expected str keys (JSON), got the {type(k).__name__} key {k!r}")
            _check_json(f"{what}[{k!r}]", v)
        return
    raise TypeError(
        f"{what}: expected JSON values (None, bool, int, float, str, list, dict), got {type(value).__name__}"
    )


# ----------------------------------------------------------------------------------------------- writing
def _checksums_bytes(files: dict[str, dict[str, Any]]) -> bytes:
    body = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    doc = {"format": FORMAT, "files": files, "sha256": hashlib.sha256(body).hexdigest()}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


# ----------------------------------------------------------------------------------------------- LATEST and runs
def _check_folder_name(what: str, name: str) -> None:
    """Raise unless ``name`` names an entry directly inside a folder (no separator, not ``.`` or ``..``)."""
    bad = (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\\0\n\r")
        or name != name.strip()
        or Path(name).is_absolute()
    )
    if bad:
        raise CheckpointError(f"{what}: names {name!r}; expected the name of a folder directly inside it")


# ----------------------------------------------------------------------------------------------- reading
def _looks_pickled(path: Path) -> bool:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(4)
    # Pickle protocols 2+ open with 0x80; torch.save writes a zip archive of pickles.
    return head[:1] == b"\x80" or head == b"PK\x03\x04"


def _foreign(path: Path) -> str:
    if path.name == "train_state.pt":
        return (
            f"{path}: a pickle file, the training state of checkpoint format amtheory-uddm-checkpoint/1; it is not "
            f"read, because unpickling a file can run any code in it, and checkpoints of that format cannot be read "
            f"safely: remove the checkpoint folder {path.parent} (or the run) to train again"
        )
    if _looks_pickled(path):
        return (
            f"{path}: a pickle file; checkpoints of format {FORMAT} hold none, and it is not read, because unpickling "
            "a file can run any code in it; remove it to use this checkpoint"
        )
    return f"{path}: not a file a checkpoint holds (expected only {CHECKSUMS} and {', '.join(FILES)})"


def _format_of(config: Path) -> Any:
    try:
        return json.loads(config.read_bytes()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def _inspect(ckpt: Path) -> dict[str, dict[str, Any]]:
    """The checksum record of checkpoint folder ``ckpt``, after refusing anything the folder should not hold and
    checking that every recorded file is there at its recorded size."""
    if not ckpt.is_dir():
        raise CheckpointError(f"{ckpt}: expected a checkpoint folder, got {'a file' if ckpt.exists() else 'nothing'}")
    names = sorted(os.listdir(ckpt))
    for name in names:
        if name not in FILES and name != CHECKSUMS:
            raise CheckpointError(_foreign(ckpt / name))
    sums = ckpt / CHECKSUMS
    if CHECKSUMS not in names:
        fmt = _format_of(ckpt / "config.json")
        if fmt is not None and fmt != FORMAT:
            raise CheckpointError(f"{ckpt}: expected format {FORMAT!r}, got {fmt!r}")
        raise DamagedCheckpointError(f"{sums}: missing, so nothing in {ckpt} can be checked")
    try:
        doc = json.loads(sums.read_bytes())
    except (OSError, ValueError) as e:
        raise DamagedCheckpointError(f"{sums}: unreadable ({e})") from e
    files = doc.get("files") if isinstance(doc, dict) else None
    well_formed = isinstance(files, dict) and all(
        isinstance(r, dict)
        and isinstance(r.get("bytes"), int)
        and isinstance(r.get("sha256"), str)
        and _SHA256.fullmatch(r["sha256"])
        for r in files.values()
    )
    if not well_formed or not isinstance(doc.get("sha256"), str):
        raise DamagedCheckpointError(
            f"{sums}: expected {{'format', 'files': {{name: {{'bytes', 'sha256'}}}}, 'sha256'}}"
        )
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt}: expected format {FORMAT!r}, got {doc.get('format')!r}")
    body = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    if hashlib.sha256(body).hexdigest() != doc["sha256"]:
        raise DamagedCheckpointError(f"{sums}: its record of the files does not match its own sha256 (damaged)")
    for name in files:
        if name not in FILES:
            raise CheckpointError(f"{sums}: lists {name!r}, not a file a checkpoint holds")
    for name in _REQUIRED:
        if name not in files:
            raise CheckpointError(f"{sums}: records no {name}; expected every checkpoint to hold one")
    for name in FILES:
        path = ckpt / name
        if name not in files:
            if name in names:
                raise CheckpointError(f"{path}: not recorded in {CHECKSUMS}, so it cannot be checked")
            continue
        if name not in names:
            raise DamagedCheckpointError(f"{path}: missing ({CHECKSUMS} records it)")
        if path.is_symlink() or not path.is_file():
            raise CheckpointError(f"{path}: expected a regular file, got a link or a folder")
        size = path.stat().st_size
        if size != files[name]["bytes"]:
            raise DamagedCheckpointError(
                f"{path}: {size} bytes, {CHECKSUMS} records {files[name]['bytes']} (truncated or damaged)"
            )
    return files


def _read_checked(ckpt: Path, files: dict[str, dict[str, Any]], name: str) -> bytes:
    """The bytes of ``ckpt/name`` after checking them against their recorded size and sha256."""
    path = ckpt / name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DamagedCheckpointError(f"{path}: unreadable ({e})") from e
    want = files[name]
    got = hashlib.sha256(data).hexdigest()
    if len(data) != want["bytes"] or got != want["sha256"]:
        raise DamagedCheckpointError(
            f"{path}: sha256 {got} over {len(data)} bytes, {CHECKSUMS} records {want['sha256']} over "
            f"{want['bytes']} bytes (damaged or truncated)"
        )
    return data


def _read_json(ckpt: Path, files: dict[str, dict[str, Any]], name: str) -> Any:
    data = _read_checked(ckpt, files, name)
    try:
        return json.loads(data)
    except ValueError as e:
        raise CheckpointError(f"{ckpt / name}: not valid JSON ({e})") from e


def _read_tensors(
    ckpt: Path, files: dict[str, dict[str, Any]], name: str, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    data = _read_checked(ckpt, files, name)
    try:
        tensors = safetensors_load(data)
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"{ckpt / name}: not a valid safetensors file ({e})") from e
    return {k: v.to(device) for k, v in tensors.items()}


def _read_config(ckpt: Path, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    doc = _read_json(ckpt, files, "config.json")
    if not isinstance(doc, dict):
        raise CheckpointError(f"{ckpt / 'config.json'}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt}: expected format {FORMAT!r}, got {doc.get('format')!r}")
    if not isinstance(doc.get("step"), int) or not isinstance(doc.get("model_config"), dict):
        raise CheckpointError(f"{ckpt / 'config.json'}: expected an int step and a model_config object")
    return doc
