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
:func:`copy_checkpoint` copies one into another run's folder, checked, with that run's train config.
"""

from __future__ import annotations

from amtheory.diffusion.checkpoint.files import FORMAT, CheckpointError, DamagedCheckpointError
from amtheory.diffusion.checkpoint.folders import latest_checkpoint, resolve_checkpoint, step_checkpoints
from amtheory.diffusion.checkpoint.read import (
    check_compatible,
    corpus_vocab_sha256,
    load_model,
    load_resumable,
    load_train_state,
)
from amtheory.diffusion.checkpoint.write import (
    clear_interrupted_writes,
    copy_checkpoint,
    mark_latest,
    save_checkpoint,
    unwrap,
)

__all__ = [
    "FORMAT",
    "CheckpointError",
    "DamagedCheckpointError",
    "check_compatible",
    "clear_interrupted_writes",
    "copy_checkpoint",
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
