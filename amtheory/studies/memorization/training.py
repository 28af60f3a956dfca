"""Training cells of the memorization study: one diffusion LM per (model size, training size, seed), trained alone
(:func:`train_cell`) or with the other cells of its shape as one group (:func:`train_cells_in_groups`, the same
checkpoints and table rows). The step budgets of one model train as one run, the shorter ones read off the longest
(:mod:`amtheory.studies.memorization.budgets`; :func:`train_cells_in_groups`, :func:`train_cell_shared`)."""

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
    trainer's own pure function of (seed, step)). It trains ``cell`` on its own; :func:`train_cell_shared` and
    :func:`train_cells_in_groups` read shorter step budgets off longer runs.
    """
    del generator
    setup = _setup(cell, checkpoint_every)
    (summary,) = _train_part([cell], [setup], device, root, cell.steps, progress=progress)
    return _row(cell, setup[0].vocab_size, setup[2], summary)


def _train_config(cell: TrainCell, checkpoint_every: int):
    from amtheory.diffusion.train import TrainConfig
    from amtheory.studies.memorization.budgets import log_every

    return TrainConfig(
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
        log_every=log_every(cell.steps),
    )


def _setup(cell: TrainCell, checkpoint_every: int):
    """The corpus, training blocks, model config, train config and checkpoint meta of ``cell``'s run."""
    from amtheory.diffusion.checkpoint import corpus_vocab_sha256

    corpus = load_data(cell.data)
    data = corpus.blocks("train", cell.n_train, cell.data.length)
    cfg = cell.arch.config(corpus.vocab_size, cell.data.length)
    tc = _train_config(cell, checkpoint_every)
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
            # checkpoints written before they did), not this call's, which may only have loaded it. A run read off a
            # longer one (amtheory.studies.memorization.budgets) has that run's seconds up to its step.
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


def _train_part(part: list[TrainCell], setups: list, device: str, root: str | Path, until: int, *,
                progress: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Train the runs of ``part`` up to step ``until`` (at most their ``steps``): one cell, or cells of one shape
    without dropout standing at one step as one group; each one's trainer summary."""
    from amtheory.diffusion.group_run import train_group
    from amtheory.diffusion.train import train

    tcs = [dataclasses.replace(s[3], steps=until) for s in setups]
    if len(part) == 1:
        with _tf32(device):
            summary = train(setups[0][2], tcs[0], setups[0][1], checkpoint_dir(root, part[0]), device=device,
                            resume=True, progress=progress, meta=setups[0][4])  # fmt: skip
        return [summary]
    t0 = time.perf_counter()
    with _tf32(device):
        summaries = train_group(
            setups[0][2], tcs, [s[1] for s in setups], [checkpoint_dir(root, c) for c in part], device=device,
            resume=True, metas=[s[4] for s in setups],
        )  # fmt: skip
    wall = time.perf_counter() - t0
    # One line per group, so that a long training stage shows how far it got.
    trained = sum(x["steps"] - x["start_step"] for x in summaries) * part[0].batch_size * part[0].data.length
    what = f"{len(part)} {part[0].arch.name} models to {until}" + (f" of {part[0].steps}" if until < part[0].steps
                                                                   else "") + " steps"  # fmt: skip
    if trained:
        print(f"[memorization] trained {what} in one group: {wall:.1f} s, {trained / max(wall, 1e-9):,.0f} "
              "tokens/s", flush=True)  # fmt: skip
    else:
        print(f"[memorization] found {what} trained already (loaded in {wall:.1f} s)", flush=True)
    return summaries


def _train_with_shorter(
    part: list[TrainCell], shorter_of: dict[TrainCell, list[TrainCell]], device: str, *, root: str,
    checkpoint_every: int, final: bool = True, on_rows: Callable[[dict[TrainCell, pd.DataFrame]], None] | None = None,
) -> dict[TrainCell, pd.DataFrame]:  # fmt: skip
    """Train ``part`` (:func:`_train_part`) and make the run folder of each shorter cell ``shorter_of[c]`` of a
    member ``c`` from ``c``'s run at its step (:func:`~amtheory.studies.memorization.budgets.make_run_at`): the run
    stops there, the folder is made, the run goes on. ``final``: train ``part`` to its own steps after the last
    shorter cell (else stop there). Returns the rows made (the shorter cells' as a run of theirs in this call would
    give them), passing each batch to ``on_rows`` as soon as it is made, so that a job cut later keeps them."""
    from amtheory.studies.memorization.budgets import make_run_at, merge_summaries

    rows: dict[TrainCell, pd.DataFrame] = {}

    def emit(new: dict[TrainCell, pd.DataFrame]) -> None:
        rows.update(new)
        if new and on_rows is not None:
            on_rows(new)

    start = _resume_step(root, part[0])
    shorter = {c: sorted(shorter_of.get(c, ()), key=lambda s: s.steps) for c in part}
    # Shorter cells at or before the step the run stands at (a job cut after the run reached them): made from its
    # checkpoints there; the row is that of their own run found trained.
    emit({s: _made_or_alone(c, s, device, root, checkpoint_every) for c in part for s in shorter[c]
          if s.steps <= start})  # fmt: skip
    stops = sorted({s.steps for c in part for s in shorter[c] if s.steps > start})
    if final:
        stops.append(part[0].steps)
    setups = [_setup(c, checkpoint_every) for c in part]
    merged: list[dict[str, Any]] = []
    for stop in stops:
        summaries = _train_part(part, setups, device, root, stop)
        merged = [merge_summaries(a, b) for a, b in zip(merged, summaries)] if merged else summaries
        made = {}
        for c, setup, summary in zip(part, setups, merged):
            for s in shorter[c]:
                if s.steps == stop:
                    path = make_run_at(checkpoint_dir(root, c), checkpoint_dir(root, s), stop,
                                       _train_config(s, checkpoint_every))  # fmt: skip
                    made[s] = _row(s, setup[0].vocab_size, setup[2], {**summary, "checkpoint": str(path)})
        emit(made)
    if final:
        emit({c: _row(c, s[0].vocab_size, s[2], summary) for c, s, summary in zip(part, setups, merged)})
    return rows


def _made_or_alone(longer: TrainCell, cell: TrainCell, device: str, root: str, checkpoint_every: int) -> pd.DataFrame:
    """The row of ``cell`` from its run folder made from ``longer``'s checkpoint at its step, or, where that
    checkpoint is damaged, of its run trained on its own."""
    from amtheory.diffusion.checkpoint import CheckpointError
    from amtheory.studies.memorization.budgets import make_run_at

    try:
        make_run_at(checkpoint_dir(root, longer), checkpoint_dir(root, cell), cell.steps,
                    _train_config(cell, checkpoint_every))  # fmt: skip
    except CheckpointError as e:
        print(f"[memorization] {cell.arch.name} on {cell.n_train} blocks to {cell.steps} steps: trained on its own, "
              f"as the longer run's checkpoint cannot be read ({e})", flush=True)  # fmt: skip
    return train_cell(cell, None, device, root=root, checkpoint_every=checkpoint_every)


def train_cell_shared(
    cell: TrainCell, shares: dict[TrainCell, TrainCell], device: str, *, root: str, checkpoint_every: int = 500
) -> dict[TrainCell, pd.DataFrame]:
    """Train ``cell`` alone, as :func:`train_cell` does, with step budgets read off one run: ``shares`` (shorter
    cell: longer, from :func:`~amtheory.studies.memorization.budgets.shared_budgets` over the sweep's cells). A
    shorter ``cell`` whose folder can be made from its longer one's run has that run trained up to its step and its
    folder made from there (the longer cell resumes later from that step); a longer ``cell`` stops at each of its
    shorter cells' steps whose folders can still be made and makes them. Returns the rows of ``cell`` and of the
    shorter cells made on the way."""
    from amtheory.studies.memorization.budgets import can_make_run_at

    if not isinstance(cell, TrainCell):
        raise TypeError(f"cell: expected a TrainCell, got {type(cell).__name__}")
    if not isinstance(shares, dict):
        raise TypeError(f"shares: expected a dict of shorter to longer TrainCell, got {type(shares).__name__}")

    def can(longer: TrainCell, shorter: TrainCell) -> bool:
        return can_make_run_at(checkpoint_dir(root, longer), checkpoint_dir(root, shorter), shorter.steps)

    kw = {"root": root, "checkpoint_every": checkpoint_every}
    longer = shares.get(cell)
    if longer is not None and can(longer, cell):
        return _train_with_shorter([longer], {longer: [cell]}, device, final=False, **kw)
    shorter = [s for s, c in shares.items() if c == cell and can(cell, s)]
    return _train_with_shorter([cell], {cell: shorter}, device, **kw)


def train_cells_in_groups(
    cells: list[TrainCell], device: str, *, root: str, group_size: int, checkpoint_every: int = 500,
    on_group: Callable[[dict[TrainCell, pd.DataFrame]], None] | None = None, share: bool = True,
) -> dict[TrainCell, pd.DataFrame]:  # fmt: skip
    """Train ``cells`` in groups of at most ``group_size`` (:func:`amtheory.diffusion.group_run.train_group`):
    cells that differ only in training size and seed and stand at the same checkpoint step form a group. Each cell's
    run folder, checkpoints and row are those :func:`train_cell` gives (``wall_s`` and ``ms_per_step`` are its
    group's). Cells of models with dropout, and groups of one, are trained alone.

    With ``share``, cells that differ only in ``steps`` train once
    (:mod:`amtheory.studies.memorization.budgets`): only the longest of them is trained, stopping at each shorter
    one's step to make that one's run folder, unless the two runs would log unlike or the shorter one's folder
    already holds a checkpoint (trained on its own before) or the longer run went past its step without keeping
    that checkpoint; then the shorter one trains on its own. Returns each cell's row; ``on_group`` receives the rows
    of each group as it finishes, and those of shorter cells as they are made (so that a job cut later keeps them
    as they trained)."""
    from amtheory.core._checks import check_int
    from amtheory.studies.memorization.budgets import can_make_run_at, shared_budgets

    check_int("group_size", group_size, minimum=1)
    if not isinstance(share, bool):
        raise TypeError(f"share: expected a bool, got {type(share).__name__}")
    for c in cells:
        if not isinstance(c, TrainCell):
            raise TypeError(f"cells: expected TrainCell items, got {type(c).__name__}")
    made = {s: c for s, c in (shared_budgets(list(cells)) if share else {}).items()
            if can_make_run_at(checkpoint_dir(root, c), checkpoint_dir(root, s), s.steps)}  # fmt: skip
    shorter_of: dict[TrainCell, list[TrainCell]] = {}
    for s, c in made.items():
        shorter_of.setdefault(c, []).append(s)
    groups: dict[Any, list[TrainCell]] = {}
    for c in cells:
        if c not in made:
            groups.setdefault((dataclasses.replace(c, n_train=1, seed=0), _resume_step(root, c)), []).append(c)
    rows: dict[TrainCell, pd.DataFrame] = {}
    for members in groups.values():
        for i in range(0, len(members), group_size):
            part = members[i : i + group_size]
            alone = len(part) == 1 or part[0].arch.dropout != 0.0
            for unit in [[c] for c in part] if alone else [part]:
                rows.update(_train_with_shorter(unit, shorter_of, device, root=root,
                                                checkpoint_every=checkpoint_every, on_rows=on_group))  # fmt: skip
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
