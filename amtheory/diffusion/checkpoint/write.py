"""Writing a checkpoint atomically into its folder, clearing interrupted writes, and naming the newest in ``LATEST``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amtheory.diffusion.checkpoint.files import (
    _DEBRIS_NAME,
    CHECKSUMS,
    FILES,
    FORMAT,
    LATEST,
    CheckpointError,
    _check_folder_name,
    _check_json,
    _checksums_bytes,
    _fsync_dir,
    _inspect,
    _read_checked,
)
from amtheory.diffusion.model import DiTConfig


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
    named = {"model.safetensors": safetensors_bytes(_cpu_tensors(unwrap(model).state_dict()))}
    if ema_state is not None:
        named["ema.safetensors"] = safetensors_bytes(_cpu_tensors(ema_state))
    doc = {
        "format": FORMAT,
        "step": int(step),
        "model_config": model_config.to_dict(),
        "train_config": _as_dict(train_config) if train_config is not None else None,
        "meta": meta,
    }
    named["config.json"] = _config_bytes(doc)
    if opt_tensors is not None:
        named["optimizer.safetensors"] = safetensors_bytes(opt_tensors)
    state = {"step": int(step), "extra": extra, "optimizer": opt_doc}
    named["train_state.json"] = json.dumps(state, indent=2, sort_keys=True).encode()
    return _write_folder(Path(dir), named)


def _config_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode()


def _write_folder(dest: Path, named: dict[str, bytes]) -> Path:
    """Write the files ``named`` (name: bytes) and their ``checksums.json`` into a temporary sibling of ``dest``,
    then rename it into place (a folder already at ``dest`` is replaced)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    files: dict[str, dict[str, Any]] = {}
    try:
        for name, data in named.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
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


def copy_checkpoint(src: str | os.PathLike, dest: str | os.PathLike, *, train_config: Any = None) -> Path:
    """Copy the checkpoint folder ``src`` to ``dest`` atomically (as :func:`save_checkpoint` writes one), every file
    checked against ``src``'s ``checksums.json`` on the way. With ``train_config`` (a dataclass or dict) the copy's
    ``config.json`` records it instead of the source's; every other file is copied byte for byte."""
    src_path, dest_path = Path(src), Path(dest)
    if dest_path.resolve() == src_path.resolve():
        raise ValueError(f"dest: expected a folder other than src, got {dest_path}")
    files = _inspect(src_path)
    named = {name: _read_checked(src_path, files, name) for name in FILES if name in files}
    if train_config is not None:
        try:
            doc = json.loads(named["config.json"])
        except ValueError as e:
            raise CheckpointError(f"{src_path / 'config.json'}: not valid JSON ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CheckpointError(f"{src_path}: expected a config.json object of format {FORMAT!r}")
        doc["train_config"] = _as_dict(train_config)
        named["config.json"] = _config_bytes(doc)
    return _write_folder(dest_path, named)


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
