"""Training cells of the memorization study: one diffusion LM per (model size, training size, seed), trained alone
(:func:`train_cell`) or with the other cells of its shape as one group (:func:`train_cells_in_groups`, the same
checkpoints and table rows)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from amtheory.core.sweep import cell_key
from amtheory.studies.memorization.cells import TrainCell
from amtheory.studies.memorization.data import load_data


def checkpoint_dir(root: str | Path, cell: TrainCell) -> Path:
    """Where ``cell``'s training run lives: ``root/checkpoints/<cell key>/`` (its checkpoints in ``checkpoints/``)."""
    return Path(root) / "checkpoints" / cell_key(cell)


def train_cell(
    cell: TrainCell,
    generator: torch.Generator,
    device: str,
    *,
    root: str,
    checkpoint_every: int = 500,
    progress: bool = False,
) -> pd.DataFrame:
    """Train (or finish training) one UDDM; one row: final loss, the run's training time over every call that trained
    it, ms per step of this call, parameters, checkpoint.

    The trainer resumes from the run's newest checkpoint, so a killed sweep loses at most ``checkpoint_every``
    steps. Its seed is the cell's ``seed`` (the sweep's generator is not used: the training stream is the
    trainer's own pure function of (seed, step)).
    """
    from amtheory.diffusion.train import train

    del generator
    corpus, data, cfg, tc, meta = _setup(cell, checkpoint_every)
    with _tf32(device):
        summary = train(cfg, tc, data, checkpoint_dir(root, cell), device=device, resume=True, progress=progress,
                        meta=meta)  # fmt: skip
    return _row(cell, corpus.vocab_size, cfg, summary)


def _setup(cell: TrainCell, checkpoint_every: int):
    """The corpus, training blocks, model config, train config and checkpoint meta of ``cell``'s run."""
    from amtheory.diffusion.checkpoint import corpus_vocab_sha256
    from amtheory.diffusion.train import TrainConfig

    corpus = load_data(cell.data)
    data = corpus.blocks("train", cell.n_train, cell.data.length)
    cfg = cell.arch.config(corpus.vocab_size, cell.data.length)
    tc = TrainConfig(
        steps=cell.steps,
        batch_size=cell.batch_size,
        lr=cell.lr,
        warmup=cell.warmup,
        ema=cell.ema,
        seed=cell.seed,
        bf16=cell.bf16,
        compile=cell.compile,
        chunk_rows=cell.chunk_rows,
        checkpoint_every=min(checkpoint_every, cell.steps),
        log_every=max(1, min(100, cell.steps // 4)),
    )
    meta = {"vocab_sha256": corpus_vocab_sha256(corpus.manifest), "data": {"source": cell.data.source}}
    return corpus, data, cfg, tc, meta


def _row(cell: TrainCell, vocab_size: int, cfg, summary: dict[str, Any]) -> pd.DataFrame:
    trained = summary["steps"] - summary["start_step"]
    n_params = sum(p.numel() for p in _param_shapes(cfg))
    return pd.DataFrame(
        {
            "backend": ["uddm"],
            "model_size": [cell.arch.name],
            "train_size": [cell.n_train],
            "final_loss": [summary["final_loss"]],
            "skipped_steps": [summary["skipped_steps"]],
            "steps_run": [trained],
            # The run's training seconds over every call that trained it (its checkpoints carry them; NaN for
            # checkpoints written before they did), not this call's, which may only have loaded it.
            "wall_s": [summary["train_wall_s"]],
            "ms_per_step": [1e3 * summary["wall_s"] / trained if trained else float("nan")],
            "n_params": [n_params],
            "vocab_size": [vocab_size],
            "checkpoint": [str(summary["checkpoint"])],
            # The members of a training group share its wall time (wall_s) and this size.
            "group_size": [int(summary.get("group_size", 1))],
        }
    )


def _resume_step(root: str | Path, cell: TrainCell) -> int:
    from amtheory.diffusion.checkpoint import step_checkpoints

    steps = [n for n, _ in step_checkpoints(checkpoint_dir(root, cell) / "checkpoints")]
    return max(steps, default=0)


def train_cells_in_groups(
    cells: list[TrainCell], device: str, *, root: str, group_size: int, checkpoint_every: int = 500,
    on_group: Callable[[dict[TrainCell, pd.DataFrame]], None] | None = None,
) -> dict[TrainCell, pd.DataFrame]:  # fmt: skip
    """Train ``cells`` in groups of at most ``group_size`` (:func:`amtheory.diffusion.group_run.train_group`):
    cells that differ only in training size and seed and stand at the same checkpoint step form a group. Each cell's
    run folder, checkpoints and row are those :func:`train_cell` gives (``wall_s`` and ``ms_per_step`` are its
    group's). Cells of models with dropout, and groups of one, are trained alone. Returns each cell's row;
    ``on_group`` receives the rows of each group as it finishes (so that a job cut during a later group can keep
    them as they trained)."""
    from amtheory.core._checks import check_int
    from amtheory.diffusion.group_run import train_group

    check_int("group_size", group_size, minimum=1)
    groups: dict[Any, list[TrainCell]] = {}
    for c in cells:
        if not isinstance(c, TrainCell):
            raise TypeError(f"cells: expected TrainCell items, got {type(c).__name__}")
        groups.setdefault((dataclasses.replace(c, n_train=1, seed=0), _resume_step(root, c)), []).append(c)
    rows: dict[TrainCell, pd.DataFrame] = {}
    for members in groups.values():
        for i in range(0, len(members), group_size):
            part = members[i : i + group_size]
            if len(part) == 1 or part[0].arch.dropout != 0.0:
                for c in part:
                    rows[c] = train_cell(c, None, device, root=root, checkpoint_every=checkpoint_every)
                if on_group is not None:
                    on_group({c: rows[c] for c in part})
                continue
            setups = [_setup(c, checkpoint_every) for c in part]
            t0 = time.perf_counter()
            with _tf32(device):
                summaries = train_group(
                    setups[0][2], [s[3] for s in setups], [s[1] for s in setups],
                    [checkpoint_dir(root, c) for c in part], device=device, resume=True, metas=[s[4] for s in setups],
                )  # fmt: skip
            wall = time.perf_counter() - t0
            # One line per group, so that a long training stage shows how far it got.
            trained = sum(x["steps"] - x["start_step"] for x in summaries) * part[0].batch_size * part[0].data.length
            what = f"{len(part)} {part[0].arch.name} models to {part[0].steps} steps"
            if trained:
                print(f"[memorization] trained {what} in one group: {wall:.1f} s, {trained / max(wall, 1e-9):,.0f} "
                      "tokens/s", flush=True)  # fmt: skip
            else:
                print(f"[memorization] found {what} trained already (loaded in {wall:.1f} s)", flush=True)
            for c, s, summary in zip(part, setups, summaries):
                rows[c] = _row(c, s[0].vocab_size, s[2], summary)
            if on_group is not None:
                on_group({c: rows[c] for c in part})
    return rows


@contextlib.contextmanager
def _tf32(device: str):
    """TF32 tensor cores for float32 matmuls while a model trains on CUDA (restored afterwards)."""
    if not str(device).startswith("cuda"):
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _param_shapes(cfg) -> list[torch.Tensor]:
    from amtheory.diffusion.model import DiT

    with torch.device("meta"):
        return list(DiT(cfg).parameters())
