"""Finding checkpoints in a run's checkpoint folder: the ``step-XXXXXXXX`` folders and what ``LATEST`` names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from amtheory.diffusion.checkpoint.files import (
    _MAX_LATEST_BYTES,
    _STEP_NAME,
    CHECKSUMS,
    LATEST,
    CheckpointError,
    DamagedCheckpointError,
    _check_folder_name,
    _inspect,
    _read_checked,
)


def _latest_name(root: Path) -> str:
    """The folder name in ``root/LATEST``, checked to lie directly inside ``root`` (a link leading out of it is
    refused). An empty or unreadable file raises :class:`DamagedCheckpointError`."""
    f = root / LATEST
    try:
        with open(f, "rb") as fh:
            raw = fh.read(_MAX_LATEST_BYTES + 1)
    except OSError as e:
        raise DamagedCheckpointError(f"{f}: unreadable ({e})") from e
    if len(raw) > _MAX_LATEST_BYTES:
        raise CheckpointError(f"{f}: expected one folder name, got more than {_MAX_LATEST_BYTES} bytes")
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise DamagedCheckpointError(f"{f}: expected a folder name in UTF-8, got undecodable bytes ({e})") from e
    if not name:
        raise DamagedCheckpointError(f"{f}: empty; expected the name of a checkpoint folder in {root}")
    _check_folder_name(str(f), name)
    target = (root / name).resolve()
    if target.parent != root.resolve():
        raise CheckpointError(f"{f}: names {name!r}, a link leading out of {root} (to {target})")
    return name


def step_checkpoints(run_checkpoints: str | os.PathLike) -> list[tuple[int, Path]]:
    """The ``step-N`` folders of a run's checkpoints folder as ``(N, path)``, oldest first; symbolic links and
    files are left out."""
    root = Path(run_checkpoints)
    if not root.is_dir():
        return []
    out = []
    for entry in root.iterdir():
        m = _STEP_NAME.fullmatch(entry.name)
        if m is not None and entry.is_dir() and not entry.is_symlink():
            out.append((int(m.group(1)), entry))
    return sorted(out)


def latest_checkpoint(run_checkpoints: str | os.PathLike) -> Path | None:
    """The checkpoint folder named in ``<run_checkpoints>/LATEST``, or None when there is no ``LATEST``.

    ``LATEST`` may only name a folder directly inside ``run_checkpoints``; the folder must be a checkpoint whose
    files are all present at their recorded sizes (their sha256 is checked when they are read)."""
    root = Path(run_checkpoints)
    f = root / LATEST
    if not f.exists() and not f.is_symlink():
        return None
    path = root / _latest_name(root)
    if not path.is_dir():
        raise CheckpointError(f"{f}: names {path.name}, which is not a checkpoint folder")
    _inspect(path)
    return path


def _resolve(path: str | os.PathLike) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The checkpoint folder :func:`resolve_checkpoint` finds and its checksum record (sizes checked, not sha256)."""
    p = Path(path)
    if (p / "config.json").exists() or (p / CHECKSUMS).exists():
        return p, _inspect(p)
    for root in (p, p / "checkpoints"):
        if (root / LATEST).exists() or (root / LATEST).is_symlink():
            found = root / _latest_name(root)
            if not found.is_dir():
                raise CheckpointError(f"{root / LATEST}: names {found.name}, which is not a checkpoint folder")
        elif steps := step_checkpoints(root):
            found = steps[-1][1]
        else:
            continue
        return found, _inspect(found)
    raise CheckpointError(f"path: expected a checkpoint folder (with config.json) or a training run, got {p}")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from itself, a run's ``checkpoints`` folder, or a run folder: the one ``LATEST`` names,
    or without ``LATEST`` the ``step-N`` folder of the largest N. Every file is checked against ``checksums.json``
    (size and sha256); a damaged one raises :class:`DamagedCheckpointError` naming it."""
    ckpt, files = _resolve(path)
    for name in files:
        _read_checked(ckpt, files, name)
    return ckpt
