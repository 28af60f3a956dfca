"""The memorization study end to end: training, the diffusion measurements and the Hopfield family, as sweeps."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from amtheory.studies.memorization.analysis import _read
from amtheory.studies.memorization.budgets import shared_budgets
from amtheory.studies.memorization.cells import MEASURES, EvalCell, HopfieldCell, Preset, TrainCell
from amtheory.studies.memorization.data import save_vocabulary
from amtheory.studies.memorization.run_record import PLAN_FILE
from amtheory.studies.memorization.training import checkpoint_dir, train_cell, train_cell_shared, train_cells_in_groups


def _stage(name: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"[memorization] {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def _trained_or_train(
    cell, generator, device, *, rows: dict, root: str, checkpoint_every: int, shares: dict | None = None
) -> pd.DataFrame:
    """The row of ``cell`` trained (or made) before the sweep reached it, else :func:`train_cell`; with ``shares``
    (shorter cell: longer, :func:`~amtheory.studies.memorization.budgets.shared_budgets`) through
    :func:`train_cell_shared`, keeping in ``rows`` the rows of the shorter cells it makes on the way."""
    row = rows.pop(cell, None)
    if row is not None:
        return row
    if not shares:
        return train_cell(cell, generator, device, root=root, checkpoint_every=checkpoint_every)
    made = train_cell_shared(cell, shares, device, root=root, checkpoint_every=checkpoint_every)
    row = made.pop(cell)
    rows.update(made)
    return row


def model_units(p: Preset) -> list[tuple[TrainCell, bool]]:
    """The models of ``p`` in order, each with whether the Hopfield-family cells of its training size go with it
    (with the first model of each size): the unit of work of one device, of one worker or of one array job."""
    seen: set[int] = set()
    units = []
    for tc in p.train_cells():
        units.append((tc, tc.n_train not in seen))
        seen.add(tc.n_train)
    return units


def model_cells(p: Preset, tc: TrainCell, hopfield: bool) -> dict[str, list[Any]]:
    """The cells of one model of ``p`` by the folder their tables go to: its training, its measurements and, with
    ``hopfield``, the Hopfield-family cells of its training size."""
    cells: dict[str, list[Any]] = {"train": [tc]}
    mine, family = p.measures_of(tc), family_cells(p, tc.n_train) if hopfield else {}
    for m in p.measured():
        cells[m] = ([EvalCell(tc, m, p.settings)] if m in mine else []) + family.get(m, [])
    return {folder: c for folder, c in cells.items() if c}


def family_sizes(p: Preset) -> list[int]:
    """The training sizes of ``p`` whose Hopfield-family cells go with no model (:func:`model_units`): every size
    of a preset without models, each then a unit of work of its own (:func:`run_family`)."""
    carried = {tc.n_train for tc, with_hopfield in model_units(p) if with_hopfield}
    return [n for n in p.sizes if n not in carried and family_cells(p, n)]


def run_family(p: Preset, n_train: int, out_dir: str | Path, *, device: str = "cpu") -> None:
    """Measure the Hopfield-family memories of ``p`` at the training size ``n_train``, each stage through the sweep
    runner into its folder of ``out_dir`` (finished cells skipped); prints each stage's wall time."""
    from amtheory.core.sweep import run_sweep
    from amtheory.studies.memorization import evaluation as ev

    eval_fn = functools.partial(ev.evaluate_cell, root=str(out_dir))
    for folder, cells in family_cells(p, n_train).items():
        _stage(f"{folder} the Hopfield family on {n_train} blocks", run_sweep, cells, eval_fn, Path(out_dir, folder),
               device=device, progress=False)  # fmt: skip


def family_cells(p: Preset, n_train: int) -> dict[str, list[HopfieldCell]]:
    """The Hopfield-family cells of ``p`` at the training size ``n_train`` by the folder their tables go to (those
    of its measurements the family has: recovery and basins)."""
    return {m: [c for c in p.hopfield_cells(m) if c.n_stored == n_train]
            for m in p.measured() if m in ("recovery", "basins") and p.backends}  # fmt: skip


def _forget_training_without_checkpoint(p: Preset, tc: TrainCell, out: Path) -> None:
    """Remove the training table of a model trained on another machine whose checkpoints did not come along while
    its measurements are pending, so that it is trained again to be measured."""
    from amtheory.core.sweep import pending_cells, result_path
    from amtheory.diffusion.checkpoint import latest_checkpoint

    trained = result_path(out / "train", tc)
    unmeasured = any(pending_cells([EvalCell(tc, m, p.settings)], out / m) for m in p.measures_of(tc))
    if trained.exists() and unmeasured and latest_checkpoint(checkpoint_dir(out, tc) / "checkpoints") is None:
        print(f"[memorization] {tc.arch.name} on {tc.n_train} blocks: no checkpoint here for pending "
              "measurements; training again")  # fmt: skip
        trained.unlink()


def run_model(
    p: Preset, tc: TrainCell, out_dir: str | Path, *, device: str = "cpu", hopfield: bool = True,
    trained_rows: dict | None = None, shares: dict | None = None,
) -> None:  # fmt: skip
    """Train one model of ``p`` (unless its table exists) and then measure it, and with ``hopfield`` the
    Hopfield-family memories of its training size, each stage through the sweep runner into its folder of
    ``out_dir`` (finished cells skipped); prints each stage's wall time. ``trained_rows``: training rows of models
    already trained in a group, taken instead of training. ``shares``: the step budgets read off one run (shorter
    cell: longer, :func:`~amtheory.studies.memorization.budgets.shared_budgets`), for a caller that runs the models
    one after another in one process (two processes must not train one run)."""
    from amtheory.core.sweep import run_sweep
    from amtheory.studies.memorization import evaluation as ev

    out = Path(out_dir)
    _forget_training_without_checkpoint(p, tc, out)
    rows = {} if trained_rows is None else trained_rows
    train_fn = functools.partial(_trained_or_train, rows=rows, root=str(out), checkpoint_every=p.checkpoint_every,
                                 shares=shares)  # fmt: skip
    eval_fn = functools.partial(ev.evaluate_cell, root=str(out))
    label = f"{tc.arch.name} on {tc.n_train} blocks" + (f", seed {tc.seed}" if len(p.seeds) > 1 else "")
    for folder, cells in model_cells(p, tc, hopfield).items():
        fn = train_fn if folder == "train" else eval_fn
        name = f"train {label}" if folder == "train" else f"{folder} {label}"
        _stage(name, run_sweep, cells, fn, out / folder, device=device, progress=False)


@contextlib.contextmanager
def _measuring_lock(path: str | Path | None, device: str) -> Iterator[None]:
    """The lock a run holds while it measures (none without a path), saying how long it waited. On a CUDA device
    the blocks the measurements cached go back to the card before the lock is let go, for the next holder."""
    if path is None:
        yield
        return
    from amtheory.core.sweep.lock import exclusive_lock

    with exclusive_lock(path, waiting=lambda m: print(f"[memorization] {m}", flush=True)) as waited:
        if waited >= 1.0:
            print(f"[memorization] measuring lock {path} taken after {waited:.1f} s", flush=True)
        try:
            yield
        finally:
            if str(device).startswith("cuda"):
                import torch

                torch.cuda.empty_cache()


def write_plan(p: Preset, out: Path) -> None:
    """Record in ``out/PLAN_FILE`` which measurements the models of ``p`` get: ``measures`` (at the longest step
    budget), ``short_budget_measures`` (at the shorter ones) and ``longest_steps``, so that a results page can tell a
    measurement left out by design from one a run did not reach."""
    import json

    plan = {"measures": p.measured(), "longest_steps": p.steps * max(p.budgets),
            "short_budget_measures": None if p.short_budget_measures is None else [
                m for m in p.measured() if m in p.short_budget_measures]}  # fmt: skip
    (out / PLAN_FILE).write_text(json.dumps(plan, indent=1) + "\n")


def run_experiment(
    p: Preset, out_dir: str | Path, *, device: str = "cpu", progress: bool = True, workers: int | str | None = None,
    train_group: int | None = None, eval_group: int | None = None, measure_lock: str | Path | None = None,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Run every stage of preset ``p`` into ``out_dir`` (training, the UDDM measurements, the Hopfield family),
    skipping finished cells; prints each stage's wall time. Returns the tables by name.

    ``train_group`` (default ``p.train_group``): on one device (one worker), the pending models of one shape train
    in groups of up to this many (:func:`~amtheory.studies.memorization.training.train_cells_in_groups`) before
    the first is measured; 1 trains each just before its measurements (or all first, where they are measured in
    groups). On one device the step budgets of one model train once, the shorter ones read off the longest run
    (:mod:`amtheory.studies.memorization.budgets`); several workers train every cell on its own, as two processes
    must not train one run. ``eval_group`` (default ``p.eval_group``):
    on one device, the trained models of one shape are measured in lockstep groups of up to this many
    (:func:`~amtheory.studies.memorization.group_evaluation.evaluate_models_in_groups`) before the Hopfield family;
    1 measures each model alone. ``measure_lock``: a file (``amtheory.core.sweep.lock``) held, where the models
    train first (in groups), from the first measurement to the last (the groups, then the Hopfield family), so
    that runs sharing one GPU measure one at a time while another trains beside (two measuring groups of 30, and
    the family beside a measuring group, ran an 80 GB card out of memory), and by a preset without models (the
    Hopfield family alone, a part of a sweep that needs no trained model) from its start; None measures without
    one."""
    from amtheory.core.sweep import run_sweep
    from amtheory.studies.memorization import evaluation as ev

    if not isinstance(p, Preset):
        raise TypeError(f"p: expected a Preset (see amtheory.studies.memorization.presets), got {type(p).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = p.workers if workers is None else workers
    save_vocabulary(p.data, out)
    write_plan(p, out)
    group = p.train_group if train_group is None else train_group
    evaluate_group = p.eval_group if eval_group is None else eval_group
    grouped: dict = {}
    train_fn = functools.partial(_trained_or_train, rows=grouped, root=str(out), checkpoint_every=p.checkpoint_every)
    eval_fn = functools.partial(ev.evaluate_cell, root=str(out))
    train_cells = p.train_cells()
    if workers is not None and workers != 1:
        # Several workers: each stage over all models at once, one process per GPU.
        _stage("train", run_sweep, train_cells, train_fn, out / "train", device=device, progress=progress,
               workers=workers)  # fmt: skip
        for m in p.measured():
            cells: list[Any] = p.eval_cells(m) + (p.hopfield_cells(m) if m in ("recovery", "basins") else [])
            _stage(m, run_sweep, cells, eval_fn, out / m, device=device, progress=progress, workers=workers)
    else:
        # One device: each model is trained and then measured before the next starts, so that a run cut short
        # leaves complete results for the models it reached (checkpoints need not outlive the run).
        from amtheory.core.sweep import pending_cells

        # Models trained in groups, or measured in groups (a model measured in a group must be trained first), all
        # train before the first is measured.
        trained_first = group > 1 or evaluate_group > 1
        if trained_first:
            for tc in train_cells:
                _forget_training_without_checkpoint(p, tc, out)
        # Rows of models trained in groups go to the training tables as each group finishes, so that a job cut
        # later (in a later group, or while measuring) keeps them as the training wrote them.
        record = functools.partial(run_sweep, fn=train_fn, out_dir=out / "train", device=device, progress=False)

        def keep(rows: dict) -> None:
            grouped.update(rows)
            record(list(rows))

        if trained_first:
            todo = pending_cells(train_cells, out / "train")
            how = f"in groups of up to {group}" if group > 1 else "one at a time"
            _stage(f"train {len(todo)} models {how}", train_cells_in_groups, todo, device, root=str(out),
                   group_size=group, checkpoint_every=p.checkpoint_every, on_group=keep)  # fmt: skip
        if group > 1 and str(device).startswith("cuda"):
            import torch

            # The training groups' cached blocks go back to the card before measuring, for the other parts of a
            # run that share it (benchmarks/h100_memorization_gpu.log).
            torch.cuda.empty_cache()
        # Where every model trained first, what follows only measures: the groups, then model by model the
        # Hopfield family (and any model a group left), all under the lock. The family beside another part's
        # measuring group ran an H100 out of memory (benchmarks/h100_memorization_gpu.log).
        # A run without models (the family alone) trains nothing beside its measuring: it takes the lock as well.
        with _measuring_lock(measure_lock if trained_first or not train_cells else None, device):
            if evaluate_group > 1:
                from amtheory.studies.memorization.group_evaluation import evaluate_models_in_groups

                done = _stage(f"measure the models in groups of up to {evaluate_group}", evaluate_models_in_groups,
                              train_cells, p.settings, out, device, group_size=evaluate_group,
                              measures=p.measures_of, compile=p.compile)  # fmt: skip
                if done["seconds"]:
                    split = ", ".join(f"{k} {v:.1f}" for k, v in done["seconds"].items())
                    print(f"[memorization] the groups' measurements by stage (s): {split}", flush=True)
            # Models still to train go one by one, the shorter step budgets read off the longer runs.
            shares = shared_budgets(pending_cells(train_cells, out / "train"))
            units = model_units(p)
            for tc, with_hopfield in units:
                run_model(p, tc, out, device=device, hopfield=with_hopfield, trained_rows=grouped, shares=shares)
            # The family at the training sizes no model carries: every size where the preset has no models (the
            # family's own part of a sweep, which needs no trained model and so measures while the others train).
            for n in family_sizes(p):
                run_family(p, n, out, device=device)
    return {name: _read(out / name) for name in ("train", *MEASURES)}
