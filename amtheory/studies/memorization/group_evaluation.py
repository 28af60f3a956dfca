"""Measuring the memorization study's trained models in groups: the models of one shape (one architecture on one
data spec; any training size, seed and step budget) are measured together by
:func:`amtheory.diffusion.lockstep.run_in_lockstep`, so every measurement of
:mod:`amtheory.studies.memorization.evaluation` runs for all of them with shared forward passes. Each member's
tables are the ones :func:`~amtheory.studies.memorization.evaluation.evaluate_cell` writes for it alone (same
generators, same code; its logits up to float rounding of the batched products), written cell by cell as each
finishes, so a run cut short keeps the finished cells."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from amtheory.core._checks import check_int
from amtheory.studies.memorization.cells import MEASURES, EvalCell, EvalSettings, TrainCell
from amtheory.studies.memorization.training import checkpoint_dir

__all__ = ["evaluate_models_in_groups"]


def _pending(tc: TrainCell, settings: EvalSettings, out: Path) -> list[EvalCell]:
    from amtheory.core.sweep import pending_cells

    return [c for m in MEASURES for c in pending_cells([EvalCell(tc, m, settings)], out / m)]


def _member_task(cells: list[EvalCell], meta: dict, out: Path, device: str):
    """The work of one member: its pending cells, in ``MEASURES`` order, each written by the sweep runner."""
    from amtheory.core.sweep import run_cell
    from amtheory.diffusion.backend import UniformDiffusionLM
    from amtheory.studies.memorization.data import load_data
    from amtheory.studies.memorization.evaluation import evaluate_cell

    def task(network) -> int:
        tc = cells[0].train
        corpus = load_data(tc.data)
        uddm = UniformDiffusionLM(network, vocab_size=corpus.vocab_size, use_ema=True,
                                  batch_size=cells[0].settings.batch_size)  # fmt: skip
        uddm.record_checkpoint(meta, checkpoint_dir(out, tc)).store(corpus.blocks("train", tc.n_train, tc.data.length))
        for cell in cells:
            fn = functools.partial(evaluate_cell, root=str(out), uddm=uddm)
            run_cell(cell, fn, out / cell.measure, device=device)
        return len(cells)

    return task


def evaluate_models_in_groups(
    train_cells: list[TrainCell], settings: EvalSettings, out_dir: str | Path, device: str, *, group_size: int
) -> dict[str, Any]:
    """Write every pending measurement (``MEASURES``) of the trained models ``train_cells`` into ``out_dir``, the
    models of one shape in groups of at most ``group_size`` measured in lockstep (see the module docstring).
    Returns ``models``, ``cells`` and ``rounds`` (the shared forward passes)."""
    import torch

    from amtheory.diffusion.checkpoint import load_model
    from amtheory.diffusion.group_eval import GroupDenoiser
    from amtheory.diffusion.lockstep import run_in_lockstep

    check_int("group_size", group_size, minimum=1)
    if not isinstance(settings, EvalSettings):
        raise TypeError(f"settings: expected an EvalSettings, got {type(settings).__name__}")
    out = Path(out_dir)
    shapes: dict[Any, list[tuple[TrainCell, list[EvalCell]]]] = {}
    for tc in train_cells:
        if not isinstance(tc, TrainCell):
            raise TypeError(f"train_cells: expected TrainCell items, got {type(tc).__name__}")
        todo = _pending(tc, settings, out)
        if todo:
            shapes.setdefault((tc.arch, tc.data), []).append((tc, todo))
    for m in MEASURES:
        (out / m).mkdir(parents=True, exist_ok=True)
    amp = torch.bfloat16 if str(device).startswith("cuda") else None
    done = {"models": 0, "cells": 0, "rounds": 0}
    for members in shapes.values():
        for i in range(0, len(members), group_size):
            part = members[i : i + group_size]
            loaded = [load_model(checkpoint_dir(out, tc), ema=True, device="cpu") for tc, _ in part]
            denoiser = GroupDenoiser.from_states(
                loaded[0][1], [m.state_dict() for m, _, _ in loaded], device=device, autocast_dtype=amp
            )
            tasks = [_member_task(cells, meta, out, device) for (_, cells), (_, _, meta) in zip(part, loaded)]
            stats: dict = {}
            counts = run_in_lockstep(denoiser, tasks, stats=stats)
            done["models"] += len(part)
            done["cells"] += sum(counts)
            done["rounds"] += stats["rounds"]
            del denoiser
    return done
