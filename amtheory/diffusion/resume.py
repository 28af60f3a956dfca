"""What a resumed training run checks and repairs: the hashes of weights and data, the settings that must match the
checkpoint's, and the log records past the step it resumes from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import torch

from amtheory.diffusion.checkpoint import CheckpointError
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train_config import RESUMABLE_CHANGES, TrainConfig

__all__ = ["LOG", "check_resume", "data_sha256", "drop_log_after", "weights_sha256"]


def weights_sha256(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def data_sha256(data: torch.Tensor) -> str:
    return hashlib.sha256(data.cpu().contiguous().numpy().tobytes()).hexdigest()


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    return "; ".join(f"{k}: checkpoint {old.get(k)!r}, now {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k))  # fmt: skip


def check_resume(stored: dict[str, Any], model_config: DiTConfig, cfg: TrainConfig, meta: dict[str, Any]) -> None:
    """Refuse to continue a checkpoint with a model, an optimisation, data or a vocabulary other than its own, or
    to a step count below its step; only the settings in RESUMABLE_CHANGES may differ."""
    where = stored["path"]
    if stored["model_config"] != model_config.to_dict():
        diff = _differences(stored["model_config"], model_config.to_dict())
        raise CheckpointError(f"{where}: cannot resume: model config differs in {diff}")
    old = stored.get("train_config") or {}
    # A field added after the checkpoint was written counts as its default value there.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    now = {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES}
    diff = _differences({k: old.get(k, defaults.get(k)) for k in now}, now)
    if diff:
        raise CheckpointError(f"{where}: cannot resume: train config differs in {diff}")
    stored_meta = stored.get("meta") or {}
    have = (stored_meta.get("data") or {}).get("sha256")
    if have != meta["data"]["sha256"]:
        raise CheckpointError(
            f"{where}: cannot resume: trained on other data (sha256 {have}, now {meta['data']['sha256']})"
        )
    if stored_meta.get("vocab_sha256") != meta.get("vocab_sha256"):
        raise CheckpointError(
            f"{where}: cannot resume: trained with another vocabulary: vocab_sha256 checkpoint "
            f"{stored_meta.get('vocab_sha256')!r}, now {meta.get('vocab_sha256')!r}"
        )
    if cfg.steps < stored["step"]:
        raise CheckpointError(
            f"{where}: cannot resume: steps {cfg.steps} is below the checkpoint's step {stored['step']}; expected "
            f"steps >= {stored['step']}"
        )


#: The run's log of training records, one JSON object per line.
LOG = "log.jsonl"
_LOG_TMP = re.compile(r"\.log\.jsonl\.tmp-[0-9a-f]{8}")


def drop_log_after(out: Path, step: int) -> int:
    """Rewrite ``out/log.jsonl`` (atomically) without the records past ``step`` and without a last record cut short
    by a kill, so a resumed run logs each step once; clears temporary files of an earlier rewrite. Returns the
    number of lines dropped."""
    for entry in out.glob(".log.jsonl.tmp-*"):
        if _LOG_TMP.fullmatch(entry.name) and not entry.is_dir():
            entry.unlink()
    path = out / LOG
    if not path.is_file():
        return 0
    lines = path.read_bytes().split(b"\n")
    # The element after the last newline is empty unless a kill cut the last record short.
    complete, tail = lines[:-1], lines[-1]
    keep, dropped = [], 0
    for i, line in enumerate(complete + ([tail] if tail else [])):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        past = isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step
        if past or (i == len(complete) and record is None):
            dropped += 1
        else:
            keep.append(line)
    if not dropped and not tail:
        return 0
    tmp = out / f".{LOG}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as fh:
        fh.write(b"".join(line + b"\n" for line in keep))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return dropped


def last_logged_loss(out: Path) -> float | None:
    """The loss of the newest record in ``out/log.jsonl`` (None without one): the final loss of a run that a later
    call finds finished and trains no further."""
    path = Path(out) / LOG
    if not path.is_file():
        return None
    for line in reversed(path.read_bytes().split(b"\n")):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("loss"), (int, float)):
            return float(record["loss"])
    return None
