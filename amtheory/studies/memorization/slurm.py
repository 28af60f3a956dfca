"""The memorization study as a Slurm job array (through submitit): one array element per unit of work still to do.

A unit is a model or, in a preset without models (the Hopfield family's own part of a sweep), a training size. A
model's element trains it (resuming from the model's newest checkpoint) and then measures it, with the
Hopfield-family cells of its training size when it is the first model of that size: the unit of work that a run on
one device goes through model by model (:func:`~amtheory.studies.memorization.run.run_model`). A size's element
measures the family there (:func:`~amtheory.studies.memorization.run.run_family`). Every table is
written by the sweep runner, so the results folder is the one a local run of the preset writes, and a submission
skips what is done: a model whose tables are all there is not submitted, and one cut short is submitted again and
computes only its missing cells. Damaged tables are moved aside first, as a local run does.

Command line: ``experiments/slurm_memorization.py`` (``--help`` for every option; ``--cluster local`` runs the
array as processes of this machine).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import torch

from amtheory.core.sweep import checked_pending_cells, slurm_executor, submit_array, wait_for_jobs
from amtheory.core.sweep.slurm import CLUSTERS
from amtheory.studies.memorization import presets
from amtheory.studies.memorization.cells import Preset, TrainCell
from amtheory.studies.memorization.command import _sizes, format_report
from amtheory.studies.memorization.data import save_vocabulary
from amtheory.studies.memorization.run import (
    family_cells,
    family_sizes,
    model_cells,
    model_units,
    run_family,
    run_model,
    write_plan,
)

__all__ = ["command_parser", "main", "pending_family_sizes", "pending_models", "pending_units", "submit_experiment"]

#: A unit of work of an array element: a model (with whether the Hopfield-family cells of its size go with it), or
#: a training size whose family cells go with no model.
Unit = tuple[TrainCell, bool] | int


def pending_models(p: Preset, out_dir: str | Path) -> list[tuple[TrainCell, bool]]:
    """The models of ``p`` (with whether the Hopfield-family cells of their size go with them) of which some table
    is missing in ``out_dir``, after moving damaged tables aside."""
    out = Path(out_dir)
    return [
        (tc, hopfield)
        for tc, hopfield in model_units(p)
        if any(checked_pending_cells(cells, out / folder) for folder, cells in model_cells(p, tc, hopfield).items())
    ]


def pending_family_sizes(p: Preset, out_dir: str | Path) -> list[int]:
    """The training sizes of ``p`` whose Hopfield-family cells go with no model (every size of a preset without
    models) and of which some table is missing in ``out_dir``, after moving damaged tables aside."""
    out = Path(out_dir)
    return [
        n
        for n in family_sizes(p)
        if any(checked_pending_cells(cells, out / folder) for folder, cells in family_cells(p, n).items())
    ]


def pending_units(p: Preset, out_dir: str | Path) -> list[Unit]:
    """Every unit of work of ``p`` still to do in ``out_dir``: :func:`pending_models`, then
    :func:`pending_family_sizes`."""
    return [*pending_models(p, out_dir), *pending_family_sizes(p, out_dir)]


def _run_unit_job(unit: Unit, *, p: Preset, out_dir: str, device: str, threads: int | None) -> str:
    """One array element: train and measure one model, or measure the Hopfield family at one training size."""
    if threads is not None:
        torch.set_num_threads(threads)
    if isinstance(unit, int):
        run_family(p, unit, out_dir, device=device)
        return f"the Hopfield family on {unit} blocks"
    tc, hopfield = unit
    run_model(p, tc, out_dir, device=device, hopfield=hopfield)
    return f"{tc.arch.name} on {tc.n_train} blocks, seed {tc.seed}"


def submit_experiment(
    p: Preset, out_dir: str | Path, executor: Any, *, device: str = "cuda", threads: int | None = None
) -> list[Any]:
    """Submit the units of work of ``p`` still to do in ``out_dir`` (:func:`pending_units`) as one job array of
    ``executor`` (e.g. from ``amtheory.core.sweep.slurm_executor``), each element on ``device`` with ``threads``
    torch CPU threads (None: torch's own); returns the submitit jobs (none when everything is done)."""
    if not isinstance(p, Preset):
        raise TypeError(f"p: expected a Preset (see amtheory.studies.memorization.presets), got {type(p).__name__}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: expected None or an int >= 1, got {threads!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_vocabulary(p.data, out)
    write_plan(p, out)
    task = functools.partial(_run_unit_job, p=p, out_dir=str(out), device=str(device), threads=threads)
    return submit_array(executor, task, pending_units(p, out))


def command_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of the job-array command, each with its help and default."""
    a = argparse.ArgumentParser(
        prog=prog,
        description="The memorization study as a Slurm job array: one element per model (or Hopfield-family size) "
        "still to do.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a.add_argument(
        "--preset", choices=presets.PRESET_NAMES, default="paper", help="the sweep (its models and settings)"
    )
    a.add_argument("--out", default="results/memorization", help="results folder, shared by every array element")
    a.add_argument("--data", default=None, help="prepared corpus folder (None: the preset's)")
    a.add_argument("--steps", type=int, default=None, help="training steps of every model (None: the preset's)")
    a.add_argument("--sizes", default=None, help="training sizes, e.g. 32,512,8192 (None: the preset's)")
    a.add_argument("--logs", default="logs/memorization/%j", help="submitit folder of logs and pickled tasks")
    a.add_argument("--cluster", choices=CLUSTERS, default="slurm", help="slurm, or local processes of this machine")
    a.add_argument("--partition", default=None, help="Slurm partition (None: the cluster's default)")
    a.add_argument("--time", type=int, default=720, help="time limit of an element, in minutes")
    a.add_argument("--gpus-per-task", type=int, default=1, help="GPUs of an element (0: the models run on CPU)")
    a.add_argument("--cpus-per-task", type=int, default=None, help="CPU cores of an element (None: the default)")
    a.add_argument("--mem-gb", type=int, default=None, help="memory of an element in GB (None: the default)")
    a.add_argument("--array-parallelism", type=int, default=None, help="elements at a time (None: no limit)")
    a.add_argument("--threads", type=int, default=None, help="torch CPU threads of an element (None: torch's own)")
    a.add_argument("--no-wait", action="store_true", help="submit and return, without waiting for the elements")
    return a


def main(argv: list[str] | None = None, preset: Preset | None = None) -> dict:
    """Submit what the options describe; unless ``--no-wait``, wait for every element, then write
    ``summary.json`` in the results folder and print the summary, as the local command does. ``preset``: a Preset
    to submit instead of the named one (``--preset``, ``--data``, ``--steps`` and ``--sizes`` then do not apply).
    Returns the jobs, their ids and the summary (None when not waited for)."""
    args = command_parser().parse_args(argv)
    sizes = _sizes(args.sizes)
    p = preset if preset is not None else presets.preset(args.preset, data=args.data, steps=args.steps, sizes=sizes)
    executor = slurm_executor(
        args.logs, cluster=args.cluster, partition=args.partition, time_min=args.time,
        gpus_per_task=args.gpus_per_task, cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
        array_parallelism=args.array_parallelism, name=f"memorization-{p.name}",
    )  # fmt: skip
    device = "cuda" if args.gpus_per_task > 0 else "cpu"
    t0 = time.perf_counter()
    jobs = submit_experiment(p, args.out, executor, device=device, threads=args.threads)
    ids = [str(j.job_id) for j in jobs]
    n_family = len(family_sizes(p))
    units = f"{len(p.train_cells())} models" + (f" and {n_family} Hopfield-family sizes" if n_family else "")
    print(f"[memorization] preset {p.name}: {len(jobs)} units of work of {units} submitted to {args.cluster} "
          f"({', '.join(ids) or 'nothing left to do'}); logs in {args.logs}", flush=True)  # fmt: skip
    if args.no_wait:
        return {"jobs": jobs, "job_ids": ids, "summary": None}
    for done in wait_for_jobs(jobs):
        print(f"[memorization] done: {done}", flush=True)
    left = pending_units(p, args.out)
    if left:
        raise RuntimeError(f"{len(left)} units of work (models, Hopfield-family sizes) still have missing tables in "
                           f"{args.out} after their jobs ended")  # fmt: skip
    from amtheory.studies.memorization import summarize

    summary = summarize(args.out)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(format_report(summary))
    print(f"[memorization] {time.perf_counter() - t0:.1f} s; tables in {Path(args.out).resolve()}", flush=True)
    return {"jobs": jobs, "job_ids": ids, "summary": summary}
