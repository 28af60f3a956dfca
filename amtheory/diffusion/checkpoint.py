"""UDDM checkpoints: safetensors weights and JSON, each file under a recorded sha256, and nothing that can run code.

A checkpoint is a folder:

- ``model.safetensors`` — the trained weights; ``ema.safetensors`` — their exponential moving average;
- ``config.json`` — format tag, model config, train config, step and ``meta`` (tokenizer/vocabulary sha256,
  training-data description, seeds...);
- ``optimizer.safetensors`` — the optimizer's per-parameter tensors (AdamW's ``exp_avg``, ``exp_avg_sq``, ``step``)
  under the keys ``state.<parameter index>.<name>``;
- ``train_state.json`` — the step, the trainer's extra state (EMA update count, skipped steps) and the optimizer's
  ``param_groups`` and non-tensor per-parameter values, for resumption only;
- ``checksums.json`` — ``{"format", "files": {name: {"bytes", "sha256"}}, "sha256"}``: the size and sha256 of every
  other file, and the sha256 of the ``files`` record itself (``json.dumps(files, sort_keys=True,
  separators=(",", ":"))``), so damage to any file, this one included, is found and named.

Readers check every file they read against ``checksums.json`` and refuse a folder holding anything else: a pickle
(such as the ``train_state.pt`` of format 1) is reported and never unpickled. A damaged file raises
:class:`DamagedCheckpointError`, a :class:`CheckpointError`. A checkpoint is written into a temporary sibling folder
``.<name>.tmp-XXXXXXXX`` and renamed into place (a folder it replaces is first renamed ``.<name>.old-XXXXXXXX``), so
a reader never sees half a checkpoint; :func:`clear_interrupted_writes` removes what a killed write leaves. A
training run keeps its checkpoints in ``<run>/checkpoints/step-XXXXXXXX`` and names the newest in
``<run>/checkpoints/LATEST`` (replaced atomically), which may only name a folder directly inside that folder;
:func:`resolve_checkpoint` follows it, and :func:`load_resumable` finds the newest intact checkpoint of a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amtheory.diffusion.model import DiT, DiTConfig

__all__ = [
    "FORMAT",
    "CheckpointError",
    "DamagedCheckpointError",
    "check_compatible",
    "clear_interrupted_writes",
    "corpus_vocab_sha256",
    "latest_checkpoint",
    "load_model",
    "load_resumable",
    "load_train_state",
    "mark_latest",
    "resolve_checkpoint",
    "save_checkpoint",
    "step_checkpoints",
    "unwrap",
]

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


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # OptimizedModule from torch.compile(module)
            model = model._orig_mod
        else:
            return model


def _as_dict(cfg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    if isinstance(cfg, dict):
        return dict(cfg)
    raise TypeError(f"expected a dataclass instance or a dict, got {type(cfg).__name__}")


def _cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


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


def _split_optimizer_state(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer ``state_dict`` as (tensors under ``state.<index>.<name>``, everything else as JSON).

    Tuples in the parameter groups (AdamW's ``betas``) are stored as lists and their keys listed, so they come back
    as tuples."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in sd["state"].items():
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise TypeError(f"optimizer: expected int parameter indices in its state, got {idx!r}")
        for name, v in per_param.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = v.detach().to("cpu", copy=True).contiguous()
            else:
                _check_json(f"optimizer: state[{idx}][{name!r}]", v)
                scalars.setdefault(str(idx), {})[name] = v
    groups, tuples = [], []
    for i, g in enumerate(sd["param_groups"]):
        group = {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
        _check_json(f"optimizer: param_groups[{i}]", group)
        groups.append(group)
        tuples.append(sorted(k for k, v in g.items() if isinstance(v, tuple)))
    return tensors, {"param_groups": groups, "param_group_tuples": tuples, "state": scalars}


def _join_optimizer_state(
    where: Path, described: Any, tensors: dict[str, torch.Tensor], device: torch.device | str
) -> dict[str, Any]:
    """The optimizer ``state_dict`` from ``train_state.json``'s description and ``optimizer.safetensors``."""
    ok = (
        isinstance(described, dict)
        and isinstance(described.get("param_groups"), list)
        and all(isinstance(g, dict) for g in described["param_groups"])
        and isinstance(described.get("param_group_tuples"), list)
        and len(described["param_group_tuples"]) == len(described["param_groups"])
        and isinstance(described.get("state"), dict)
        and all(k.isdigit() and isinstance(v, dict) for k, v in described["state"].items())
    )
    if not ok:
        raise CheckpointError(
            f"{where}: expected an optimizer description with param_groups, param_group_tuples and state"
        )
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in described["state"].items()}
    for key, t in tensors.items():
        parts = key.split(".", 2)
        if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit() or not parts[2]:
            raise CheckpointError(f"{where.with_name('optimizer.safetensors')}: unexpected tensor key {key!r}")
        state.setdefault(int(parts[1]), {})[parts[2]] = t.to(device)
    groups = []
    for g, keys in zip(described["param_groups"], described["param_group_tuples"]):
        g = dict(g)
        for k in keys:
            if not isinstance(g.get(k), list):
                raise CheckpointError(f"{where}: param group entry {k!r} is recorded as a tuple but holds {g.get(k)!r}")
            g[k] = tuple(g[k])
        groups.append(g)
    return {"state": dict(sorted(state.items())), "param_groups": groups}


# ----------------------------------------------------------------------------------------------- writing
def _checksums_bytes(files: dict[str, dict[str, Any]]) -> bytes:
    body = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    doc = {"format": FORMAT, "files": files, "sha256": hashlib.sha256(body).hexdigest()}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def save_checkpoint(
    dir: str | os.PathLike,
    *,
    model: nn.Module,
    ema_state: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    model_config: DiTConfig,
    train_config: Any,
    meta: dict[str, Any],
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder ``dir`` atomically (temporary sibling, then rename); replaces an old one.

    ``extra_state`` must be plain JSON (it goes into ``train_state.json``); the optimizer's tensors go into
    ``optimizer.safetensors``, its other values into ``train_state.json``. Every file's size and sha256 go into
    ``checksums.json``.
    """
    from safetensors.torch import save as safetensors_bytes  # optional dependency, imported only when saving

    if not isinstance(model_config, DiTConfig):
        raise TypeError(f"model_config: expected a DiTConfig, got {type(model_config).__name__}")
    if not isinstance(meta, dict):
        raise TypeError(f"meta: expected a dict, got {type(meta).__name__}")
    if extra_state is not None and not isinstance(extra_state, dict):
        raise TypeError(f"extra_state: expected a dict or None, got {type(extra_state).__name__}")
    extra = dict(extra_state or {})
    _check_json("extra_state", extra)
    opt_tensors = opt_doc = None
    if optimizer is not None:
        opt_tensors, opt_doc = _split_optimizer_state(optimizer.state_dict())
    dest = Path(dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    files: dict[str, dict[str, Any]] = {}

    def put(name: str, data: bytes) -> None:
        with open(tmp / name, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    try:
        put("model.safetensors", safetensors_bytes(_cpu_tensors(unwrap(model).state_dict())))
        if ema_state is not None:
            put("ema.safetensors", safetensors_bytes(_cpu_tensors(ema_state)))
        doc = {
            "format": FORMAT,
            "step": int(step),
            "model_config": model_config.to_dict(),
            "train_config": _as_dict(train_config) if train_config is not None else None,
            "meta": meta,
        }
        put("config.json", json.dumps(doc, indent=2, sort_keys=True, default=str).encode())
        if opt_tensors is not None:
            put("optimizer.safetensors", safetensors_bytes(opt_tensors))
        state = {"step": int(step), "extra": extra, "optimizer": opt_doc}
        put("train_state.json", json.dumps(state, indent=2, sort_keys=True).encode())
        with open(tmp / CHECKSUMS, "wb") as fh:
            fh.write(_checksums_bytes(files))
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def clear_interrupted_writes(run_checkpoints: str | os.PathLike) -> list[str]:
    """Remove what killed writes left in ``run_checkpoints``: temporary checkpoint folders ``.<name>.tmp-XXXXXXXX``,
    replaced ones ``.<name>.old-XXXXXXXX`` and ``.LATEST.tmp-XXXXXXXX``. Returns the names removed.

    Only call it while nothing else writes into that folder (at the start of a run, on its writing rank)."""
    root = Path(run_checkpoints)
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        if not _DEBRIS_NAME.fullmatch(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


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


def mark_latest(run_checkpoints: str | os.PathLike, name: str) -> None:
    """Point ``<run_checkpoints>/LATEST`` at checkpoint ``name``, a folder directly inside it (atomic replace)."""
    root = Path(run_checkpoints)
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    _check_folder_name(f"name (for {root / LATEST})", name)
    tmp = root / f".{LATEST}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / LATEST)
    _fsync_dir(root)


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


def load_model(
    dir: str | os.PathLike, *, ema: bool = True, device: torch.device | str = "cpu"
) -> tuple[DiT, DiTConfig, dict[str, Any]]:
    """Build the :class:`DiT` of a checkpoint (or of a run's newest one) in eval mode.

    ``ema=True`` loads the EMA weights when the checkpoint has them, else the trained ones. The returned meta is
    the stored ``meta`` plus ``model_config``, ``train_config``, ``step``, ``path`` and ``weights_loaded``
    ("ema" or "model"). The files read are checked against ``checksums.json``; a damaged one raises
    :class:`DamagedCheckpointError` naming it.
    """
    ckpt, files = _resolve(dir)
    doc = _read_config(ckpt, files)
    cfg = DiTConfig.from_dict(doc["model_config"])
    which = "ema" if ema and "ema.safetensors" in files else "model"
    state = _read_tensors(ckpt, files, f"{which}.safetensors")
    model = DiT(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt}: the {which} weights do not fit the stored config ({e})") from e
    model.to(device).eval()
    meta = dict(doc.get("meta") or {})
    meta.update(
        model_config=doc["model_config"],
        train_config=doc.get("train_config"),
        step=doc["step"],
        path=str(ckpt),
        weights_loaded=which,
    )
    return model, cfg, meta


def load_train_state(dir: str | os.PathLike, *, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Everything needed to resume: config.json's content plus ``path``, ``model_state``, ``ema_state`` (None when
    absent) and ``train_state`` (``step``, ``extra`` and the optimizer's ``state_dict`` as ``optimizer``, None when
    the checkpoint holds none). Every file is checked against ``checksums.json``; nothing is unpickled."""
    ckpt, files = _resolve(dir)
    if "train_state.json" not in files:
        raise CheckpointError(f"{ckpt}: holds no train_state.json (saved without training state); cannot resume")
    doc = _read_config(ckpt, files)
    out = dict(doc)
    out["path"] = str(ckpt)
    out["model_state"] = _read_tensors(ckpt, files, "model.safetensors", device)
    out["ema_state"] = _read_tensors(ckpt, files, "ema.safetensors", device) if "ema.safetensors" in files else None
    where = ckpt / "train_state.json"
    ts = _read_json(ckpt, files, "train_state.json")
    if not (isinstance(ts, dict) and isinstance(ts.get("extra"), dict) and "optimizer" in ts):
        raise CheckpointError(f"{where}: expected an object with step, extra and optimizer")
    if ts.get("step") != doc["step"]:
        raise CheckpointError(f"{where}: records step {ts.get('step')!r}, config.json step {doc['step']}")
    optimizer = None
    if ts["optimizer"] is not None:
        if "optimizer.safetensors" not in files:
            raise CheckpointError(
                f"{ckpt}: train_state.json describes an optimizer but there is no optimizer.safetensors"
            )
        tensors = _read_tensors(ckpt, files, "optimizer.safetensors", device)
        optimizer = _join_optimizer_state(where, ts["optimizer"], tensors, device)
    out["train_state"] = {"step": ts["step"], "extra": ts["extra"], "optimizer": optimizer}
    return out


def load_resumable(
    run_checkpoints: str | os.PathLike, *, device: torch.device | str = "cpu"
) -> tuple[dict[str, Any] | None, list[str]]:
    """The :func:`load_train_state` of the newest intact ``step-N`` checkpoint of a run, and notes on what was
    passed over on the way (damaged checkpoints, a missing or stale ``LATEST``).

    The largest N whose files all match ``checksums.json`` wins, whatever ``LATEST`` names, so a checkpoint written
    just before a kill that left ``LATEST`` behind is not lost. Returns ``(None, notes)`` when the folder holds no
    checkpoint. Raises :class:`CheckpointError` when ``LATEST`` names a folder outside the run's checkpoints folder,
    when a checkpoint holds a file it should not (a pickle, say), or when checkpoints exist and none is intact."""
    root = Path(run_checkpoints)
    notes: list[str] = []
    latest = root / LATEST
    named = None
    if latest.exists() or latest.is_symlink():
        try:
            named = _latest_name(root)
        except DamagedCheckpointError as e:
            notes.append(f"{e}; ignored")
        if named is not None and _STEP_NAME.fullmatch(named) is None:
            notes.append(f"{latest}: names {named!r}, not a step-N checkpoint of this run; ignored")
    steps = step_checkpoints(root)
    if not latest.exists() and not latest.is_symlink() and steps:
        notes.append(f"{latest}: missing; looking for the newest intact checkpoint instead")
    for n, path in reversed(steps):
        try:
            stored = load_train_state(path, device=device)
        except DamagedCheckpointError as e:
            notes.append(f"{e}; {path.name} passed over")
            continue
        if stored["step"] != n:
            raise CheckpointError(f"{path}: records step {stored['step']}, but its folder name says {n}")
        if named != path.name:
            notes.append(
                f"resuming from {path.name}, the newest intact checkpoint"
                + (f" (LATEST names {named})" if named else "")
            )
        return stored, notes
    if steps:
        raise CheckpointError(f"{root}: no intact checkpoint to resume from: " + "; ".join(notes))
    if named is not None:
        raise CheckpointError(
            f"{latest}: names {named}, but {root} holds no step-N checkpoint; remove {LATEST} to start afresh"
        )
    return None, notes


def corpus_vocab_sha256(manifest: dict[str, Any]) -> str | None:
    """The vocabulary fingerprint a checkpoint records as ``meta["vocab_sha256"]`` for data from a corpus with
    this manifest (``TokenCorpus.manifest``): the sha256 of its vocabulary file, then ``+<mapping sha256>`` when the
    corpus was remapped to a compacted vocabulary. The vocabulary hash is read from ``vocab_sha256`` or, where only
    the build config records it (the embedded corpus), ``config.vocab_sha256``. None when the manifest records no
    vocabulary hash and no mapping."""
    if not isinstance(manifest, dict):
        raise TypeError(f"manifest: expected a corpus manifest dict, got {type(manifest).__name__}")
    config = manifest.get("config")
    top, nested = manifest.get("vocab_sha256"), config.get("vocab_sha256") if isinstance(config, dict) else None
    mapping = manifest.get("mapping_sha256")
    for name, v in (("vocab_sha256", top), ("config.vocab_sha256", nested), ("mapping_sha256", mapping)):
        if v is not None and not isinstance(v, str):
            raise TypeError(f"manifest: expected {name} to be a str, got {type(v).__name__}")
    if top is not None and nested is not None and top != nested:
        raise ValueError(
            f"manifest: records two vocabulary hashes, vocab_sha256 {top} and config.vocab_sha256 {nested}"
        )
    vocab = top if top is not None else nested
    if mapping is None:
        return vocab
    if vocab is None:
        raise ValueError(
            f"manifest: records mapping_sha256 {mapping} but no vocab_sha256, so the vocabulary it compacts is unknown"
        )
    return f"{vocab}+{mapping}"


def check_compatible(
    meta: dict[str, Any],
    expected_vocab_sha: str | None = None,
    expected_config: DiTConfig | dict[str, Any] | None = None,
) -> None:
    """Raise :class:`CheckpointError` (a ValueError) when a checkpoint's tokenizer or model config differs.

    ``meta`` is what :func:`load_model` returns. The vocabulary is compared by ``meta["vocab_sha256"]``, which the
    trainer's CLI and the memorization experiment both fill with :func:`corpus_vocab_sha256` of their corpus
    (``"<vocab sha256>+<mapping sha256>"`` for a compacted vocabulary); the config field by field.
    """
    if not isinstance(meta, dict):
        raise TypeError(f"meta: expected the dict returned by load_model, got {type(meta).__name__}")
    where = meta.get("path", "checkpoint")
    if expected_vocab_sha is not None:
        got = meta.get("vocab_sha256")
        if got is None:
            raise CheckpointError(
                f"{where}: records no vocab_sha256; expected one made with vocabulary {expected_vocab_sha}"
            )
        if got != expected_vocab_sha:
            raise CheckpointError(
                f"{where}: trained with another tokenizer/vocabulary: vocab_sha256 {got}, expected {expected_vocab_sha}"
            )
    if expected_config is not None:
        want = expected_config.to_dict() if isinstance(expected_config, DiTConfig) else dict(expected_config)
        have = meta.get("model_config")
        if not isinstance(have, dict):
            raise CheckpointError(f"{where}: records no model_config")
        diff = {k: (have.get(k), want[k]) for k in want if have.get(k) != want[k]}
        if diff:
            detail = ", ".join(f"{k}: checkpoint {h!r}, expected {w!r}" for k, (h, w) in sorted(diff.items()))
            raise CheckpointError(f"{where}: model config differs ({detail})")
