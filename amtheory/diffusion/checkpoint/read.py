"""Reading a checkpoint back: the model, the training state, the newest intact checkpoint of a run to resume from,
and the compatibility checks against a corpus."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from amtheory.diffusion.checkpoint.files import (
    _STEP_NAME,
    LATEST,
    CheckpointError,
    DamagedCheckpointError,
    _read_config,
    _read_json,
    _read_tensors,
)
from amtheory.diffusion.checkpoint.folders import _latest_name, _resolve, step_checkpoints
from amtheory.diffusion.model import DiT, DiTConfig


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
