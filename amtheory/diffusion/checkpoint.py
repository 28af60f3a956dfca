"""UDDM checkpoints: safetensors weights, a JSON description, and the state needed to resume training.

A checkpoint is a folder:

- ``model.safetensors`` — the trained weights; ``ema.safetensors`` — their exponential moving average;
- ``config.json`` — format tag, model config, train config, step and ``meta`` (tokenizer/vocabulary sha256,
  training-data description, seeds...);
- ``train_state.pt`` — optimizer state and any extra trainer state, for resumption only.

It is written into a temporary sibling folder and renamed into place, so a reader never sees half a checkpoint.
A training run keeps its checkpoints in ``<run>/checkpoints/step-XXXXXXXX`` and names the newest in
``<run>/checkpoints/LATEST`` (replaced atomically); :func:`resolve_checkpoint` follows it.
"""

from __future__ import annotations

import dataclasses
import json
import os
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
    "check_compatible",
    "latest_checkpoint",
    "load_model",
    "load_train_state",
    "mark_latest",
    "resolve_checkpoint",
    "save_checkpoint",
    "unwrap",
]

FORMAT = "amtheory-uddm-checkpoint/1"
LATEST = "LATEST"


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not fit what the caller expects."""


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
    """Write a checkpoint folder ``dir`` atomically (temporary sibling, then rename); replaces an old one."""
    from safetensors.torch import save_file  # optional dependency, imported only when saving

    if not isinstance(model_config, DiTConfig):
        raise TypeError(f"model_config: expected a DiTConfig, got {type(model_config).__name__}")
    if not isinstance(meta, dict):
        raise TypeError(f"meta: expected a dict, got {type(meta).__name__}")
    dest = Path(dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(_cpu_tensors(unwrap(model).state_dict()), str(tmp / "model.safetensors"))
        if ema_state is not None:
            save_file(_cpu_tensors(ema_state), str(tmp / "ema.safetensors"))
        doc = {
            "format": FORMAT,
            "step": int(step),
            "model_config": model_config.to_dict(),
            "train_config": _as_dict(train_config) if train_config is not None else None,
            "meta": meta,
        }
        (tmp / "config.json").write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
        state = {"step": int(step), "extra": extra_state or {}}
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        torch.save(state, tmp / "train_state.pt")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
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


def mark_latest(run_checkpoints: str | os.PathLike, name: str) -> None:
    """Point ``<run_checkpoints>/LATEST`` at checkpoint ``name`` (atomic replace)."""
    root = Path(run_checkpoints)
    tmp = root / f".{LATEST}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(name + "\n")
    os.replace(tmp, root / LATEST)


def latest_checkpoint(run_checkpoints: str | os.PathLike) -> Path | None:
    """The checkpoint folder named in ``<run_checkpoints>/LATEST``, or None when there is none yet."""
    root = Path(run_checkpoints)
    f = root / LATEST
    if not f.is_file():
        return None
    path = root / f.read_text().strip()
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{f}: names {path.name}, which is not a complete checkpoint")
    return path


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from itself, a run's ``checkpoints`` folder, or a run folder (newest checkpoint)."""
    p = Path(path)
    if (p / "config.json").is_file():
        return p
    for root in (p, p / "checkpoints"):
        found = latest_checkpoint(root) if (root / LATEST).is_file() else None
        if found is not None:
            return found
    raise CheckpointError(f"path: expected a checkpoint folder (with config.json) or a training run, got {p}")


def _read_config(ckpt: Path) -> dict[str, Any]:
    try:
        doc = json.loads((ckpt / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{ckpt}: unreadable config.json ({e})") from e
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt}: expected format {FORMAT!r}, got {doc.get('format')!r}")
    return doc


def load_model(
    dir: str | os.PathLike, *, ema: bool = True, device: torch.device | str = "cpu"
) -> tuple[DiT, DiTConfig, dict[str, Any]]:
    """Build the :class:`DiT` of a checkpoint (or of a run's newest one) in eval mode.

    ``ema=True`` loads the EMA weights when the checkpoint has them, else the trained ones. The returned meta is
    the stored ``meta`` plus ``model_config``, ``train_config``, ``step``, ``path`` and ``weights_loaded``
    ("ema" or "model").
    """
    from safetensors.torch import load_file

    ckpt = resolve_checkpoint(dir)
    doc = _read_config(ckpt)
    cfg = DiTConfig.from_dict(doc["model_config"])
    which = "ema" if ema and (ckpt / "ema.safetensors").is_file() else "model"
    state = load_file(str(ckpt / f"{which}.safetensors"))
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
    """Everything needed to resume: config.json's content, weights, EMA and ``train_state.pt``."""
    from safetensors.torch import load_file

    ckpt = resolve_checkpoint(dir)
    doc = _read_config(ckpt)
    out = dict(doc)
    out["path"] = str(ckpt)
    out["model_state"] = load_file(str(ckpt / "model.safetensors"), device=str(device))
    ema_file = ckpt / "ema.safetensors"
    out["ema_state"] = load_file(str(ema_file), device=str(device)) if ema_file.is_file() else None
    out["train_state"] = torch.load(ckpt / "train_state.pt", map_location=device, weights_only=False)
    return out


def check_compatible(
    meta: dict[str, Any],
    expected_vocab_sha: str | None = None,
    expected_config: DiTConfig | dict[str, Any] | None = None,
) -> None:
    """Raise :class:`CheckpointError` (a ValueError) when a checkpoint's tokenizer or model config differs.

    ``meta`` is what :func:`load_model` returns. The vocabulary is compared by ``meta["vocab_sha256"]`` (the
    trainer's CLI stores ``"<vocab sha256>+<mapping sha256>"`` there for a compacted vocabulary), the config
    field by field.
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
