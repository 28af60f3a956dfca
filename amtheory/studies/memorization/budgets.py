"""Step budgets that share one training run (``Preset.budgets``): a model trained for ``S`` steps is read off the
run of the same model trained for ``L > S`` steps, so that each (model size, training size, seed) trains once.

A run of ``S`` steps is the first ``S`` steps of a run of ``L`` steps of the same cell: the learning rate is a
linear warm-up then constant (:meth:`amtheory.diffusion.train_config.TrainConfig.lr_at` does not read ``steps``),
the EMA's decay depends on the count of updates taken, and every random draw (the batches, times and noise; the
dropout masks) is a pure function of (seed, rank, step). What else depends on the step count changes no weight:
the checkpoint interval (``min(checkpoint_every, steps)``), which checkpoints are kept, and the log interval
(:func:`log_every`), which sets the steps each ``log.jsonl`` record, and so a row's ``final_loss``, averages. So a
shorter cell is read off the longer run only where the two runs log alike (:func:`shared_budgets`): the same log
interval, the shorter step a multiple of it. Below 400 steps the interval depends on the step count, and such cells
train on their own.

The longer run stops at each shorter cell's step (a run writes a checkpoint at its last step), the shorter cell's
run folder is made from that checkpoint (:func:`make_run_at`), and the longer run then resumes from it (on CPU bit
for bit as if it had not stopped; :mod:`amtheory.studies.memorization.training` drives this). The folder made holds
what the shorter cell's own run leaves in the places every reader looks: its last checkpoint (the longer run's, with
the shorter cell's train config in ``config.json``, every other file byte for byte, the training seconds up to that
step among them) named in ``LATEST``, and ``log.jsonl`` with the longer run's records up to that step (the same
records, as the runs log alike). It lacks only the earlier checkpoints its own run would have kept.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

from amtheory.studies.memorization.cells import TrainCell

__all__ = ["can_make_run_at", "log_every", "make_run_at", "merge_summaries", "shared_budgets"]


def log_every(steps: int) -> int:
    """The log interval of a study run of ``steps`` steps: a quarter of the run up to 100 steps (at least 1)."""
    return max(1, min(100, steps // 4))


def shared_budgets(cells: list[TrainCell]) -> dict[TrainCell, TrainCell]:
    """Which of ``cells`` are read off another: each cell whose longest sibling in ``cells`` (equal in every field
    but ``steps``) trains for more steps and logs alike (the same :func:`log_every`, the shorter step a multiple of
    it), mapped to that sibling. Cells absent from the result train on their own."""
    if isinstance(cells, TrainCell) or not isinstance(cells, (list, tuple)):
        raise TypeError(f"cells: expected a list of TrainCell, got {type(cells).__name__}")
    families: dict[TrainCell, list[TrainCell]] = {}
    for c in cells:
        if not isinstance(c, TrainCell):
            raise TypeError(f"cells: expected TrainCell items, got {type(c).__name__}")
        families.setdefault(dataclasses.replace(c, steps=1), []).append(c)
    shared: dict[TrainCell, TrainCell] = {}
    for members in families.values():
        longest = max(members, key=lambda c: c.steps)
        every = log_every(longest.steps)
        for c in members:
            if c.steps < longest.steps and log_every(c.steps) == every and c.steps % every == 0:
                shared[c] = longest
    return shared


def _step_name(step: int) -> str:
    return f"step-{step:08d}"


def can_make_run_at(long_run: str | Path, short_run: str | Path, step: int) -> bool:
    """Whether :func:`make_run_at` can (or, once the longer run has trained to ``step``, will be able to) make
    ``short_run`` from ``long_run``: ``short_run`` holds no checkpoint (a run trained on its own, even in part,
    keeps training on its own), and ``long_run`` stands at or before ``step`` or still holds its checkpoint there."""
    from amtheory.diffusion.checkpoint import step_checkpoints

    short_ckpts = Path(short_run) / "checkpoints"
    if step_checkpoints(short_ckpts) or (short_ckpts / "LATEST").exists():
        return False
    have = [n for n, _ in step_checkpoints(Path(long_run) / "checkpoints")]
    return max(have, default=0) <= step or step in have


def make_run_at(long_run: str | Path, short_run: str | Path, step: int, train_config: Any) -> Path:
    """Make the run folder ``short_run`` of the shorter cell (train config ``train_config``, of ``step`` steps) from
    the longer run ``long_run``'s checkpoint at ``step``: its ``log.jsonl`` (the longer run's records up to
    ``step``), then its checkpoint ``checkpoints/step-N`` (checked on the way; ``config.json`` records
    ``train_config``) and ``LATEST``. Returns the checkpoint's path. A kill before the checkpoint lands leaves no
    checkpoint in ``short_run``, so a later call makes it again."""
    from amtheory.core._checks import check_int
    from amtheory.diffusion.checkpoint import CheckpointError, copy_checkpoint, mark_latest
    from amtheory.diffusion.resume import LOG, drop_log_after

    check_int("step", step, minimum=1)
    if getattr(train_config, "steps", step) != step:
        raise ValueError(f"train_config: expected the config of a {step}-step run, got steps {train_config.steps}")
    src = Path(long_run) / "checkpoints" / _step_name(step)
    if not src.is_dir():
        raise CheckpointError(f"{src}: expected the longer run's checkpoint at step {step}, got nothing")
    out = Path(short_run)
    out.mkdir(parents=True, exist_ok=True)
    if (Path(long_run) / LOG).is_file():
        shutil.copyfile(Path(long_run) / LOG, out / LOG)
        drop_log_after(out, step)
    dest = copy_checkpoint(src, out / "checkpoints" / _step_name(step), train_config=train_config)
    mark_latest(out / "checkpoints", dest.name)
    return dest


def merge_summaries(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """The summary of one call of a trainer that ran as two (``first``, then ``then`` resuming where it stopped):
    ``then``'s with ``first``'s start, resume point and notes, both calls' losses and training seconds, and the
    tokens a second over both."""
    out = dict(then)
    wall = first["wall_s"] + then["wall_s"]
    tokens = sum((s["tokens_per_s"] or 0.0) * s["wall_s"] for s in (first, then))
    peaks = [s["peak_memory_gib"] for s in (first, then) if s.get("peak_memory_gib") is not None]
    out.update(
        start_step=first["start_step"],
        resumed_from=first["resumed_from"],
        losses=list(first["losses"]) + list(then["losses"]),
        wall_s=wall,
        tokens_per_s=tokens / wall if tokens and wall > 0 and math.isfinite(tokens) else None,
        resume_notes=list(first["resume_notes"]) + list(then["resume_notes"]),
        peak_memory_gib=max(peaks) if peaks else None,
    )
    return out
