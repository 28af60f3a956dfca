"""The memorization study end to end: training, the diffusion measurements and the Hopfield family, as sweeps."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import pandas as pd

from amtheory.studies.memorization.analysis import _read
from amtheory.studies.memorization.cells import MEASURES, EvalCell, HopfieldCell, Preset
from amtheory.studies.memorization.data import save_vocabulary
from amtheory.studies.memorization.training import checkpoint_dir, train_cell, train_cells_in_groups


def _stage(name: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"[memorization] {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def _trained_or_train(cell, generator, device, *, rows: dict, root: str, checkpoint_every: int) -> pd.DataFrame:
    """The row of ``cell`` trained in a group before the sweep reached it, else :func:`train_cell`."""
    row = rows.pop(cell, None)
    if row is not None:
        return row
    return train_cell(cell, generator, device, root=root, checkpoint_every=checkpoint_every)


def run_experiment(
    p: Preset, out_dir: str | Path, *, device: str = "cpu", progress: bool = True, workers: int | str | None = None,
    train_group: int | None = None,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Run every stage of preset ``p`` into ``out_dir`` (training, the UDDM measurements, the Hopfield family),
    skipping finished cells; prints each stage's wall time. Returns the tables by name.

    ``train_group`` (default ``p.train_group``): on one device (one worker), the pending models of one shape train
    in groups of up to this many (:func:`~amtheory.studies.memorization.training.train_cells_in_groups`) before
    the first is measured; 1 trains each just before its measurements."""
    from amtheory.core.sweep import run_sweep
    from amtheory.studies.memorization import evaluation as ev

    if not isinstance(p, Preset):
        raise TypeError(f"p: expected a Preset (see amtheory.studies.memorization.presets), got {type(p).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = p.workers if workers is None else workers
    save_vocabulary(p.data, out)
    group = p.train_group if train_group is None else train_group
    grouped: dict = {}
    train_fn = functools.partial(_trained_or_train, rows=grouped, root=str(out), checkpoint_every=p.checkpoint_every)
    eval_fn = functools.partial(ev.evaluate_cell, root=str(out))
    train_cells = p.train_cells()
    if workers is not None and workers != 1:
        # Several workers: each stage over all models at once, one process per GPU.
        _stage("train", run_sweep, train_cells, train_fn, out / "train", device=device, progress=progress,
               workers=workers)  # fmt: skip
        for m in MEASURES:
            cells: list[Any] = p.eval_cells(m) + (p.hopfield_cells(m) if m in ("recovery", "basins") else [])
            _stage(m, run_sweep, cells, eval_fn, out / m, device=device, progress=progress, workers=workers)
    else:
        # One device: each model is trained and then measured before the next starts, so that a run cut short
        # leaves complete results for the models it reached (checkpoints need not outlive the run).
        done_sizes: set[int] = set()
        from amtheory.core.sweep import pending_cells, result_path
        from amtheory.diffusion.checkpoint import latest_checkpoint

        for tc in train_cells:
            trained = result_path(out / "train", tc)
            unmeasured = any(pending_cells([EvalCell(tc, m, p.settings)], out / m) for m in MEASURES)
            if trained.exists() and unmeasured and latest_checkpoint(checkpoint_dir(out, tc) / "checkpoints") is None:
                # Trained on another machine whose checkpoints did not come along: train again to measure it.
                print(f"[memorization] {tc.arch.name} on {tc.n_train} blocks: no checkpoint here for pending "
                      "measurements; training again")  # fmt: skip
                trained.unlink()
        if group > 1:
            todo = pending_cells(train_cells, out / "train")
            grouped.update(_stage(f"train {len(todo)} models in groups of up to {group}", train_cells_in_groups,
                                  todo, device, root=str(out), group_size=group,
                                  checkpoint_every=p.checkpoint_every))  # fmt: skip
        for tc in train_cells:
            label = f"{tc.arch.name} on {tc.n_train} blocks"
            _stage(f"train {label}", run_sweep, [tc], train_fn, out / "train", device=device, progress=False)
            for m in MEASURES:
                cells = [EvalCell(tc, m, p.settings)]
                if m in ("recovery", "basins") and tc.n_train not in done_sizes:
                    cells += [HopfieldCell(b, p.data, tc.n_train, m, p.settings) for b in p.backends]
                _stage(f"{m} {label}", run_sweep, cells, eval_fn, out / m, device=device, progress=False)
            done_sizes.add(tc.n_train)
    return {name: _read(out / name) for name in ("train", *MEASURES)}
