"""The memorization study as a Slurm job array (through submitit): one array element per model still to do.

An element trains its model (resuming from the model's newest checkpoint) and then measures it, with the
Hopfield-family cells of its training size when it is the first model of that size: the unit of work that a run on
one device goes through model by model (:func:`~amtheory.studies.memorization.run.run_model`). Every table is
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
from amtheory.studies.memorization.run import model_cells, model_units, run_model, write_plan

__all__ = ["command_parser", "main", "pending_models", "submit_experiment"]


def pending_models(p: Preset, out_dir: str | Path) -> list[tuple[TrainCell, bool]]:
    """The models of ``p`` (with whether the Hopfield-family cells of their size go with them) of which some table
    is missing in ``out_dir``, after moving damaged tables aside."""
    out = Path(out_dir)
    return [
        (tc, hopfield)
        for tc, hopfield in model_units(p)
        if any(checked_pending_cells(cells, out / folder) for folder, cells in model_cells(p, tc, hopfield).items())
    ]


def _run_model_job(unit: tuple[TrainCell, bool], *, p: Preset, out_dir: str, device: str, threads: int | None) -> str:
    """One array element: train and measure one model."""
    tc, hopfield = unit
    if threads is not None:
        torch.set_num_threads(threads)
    run_model(p, tc, out_dir, device=device, hopfield=hopfield)
    return f"{tc.arch.name} on {tc.n_train} blocks, seed {tc.seed}"


def submit_experiment(
    p: Preset, out_dir: str | Path, executor: Any, *, device: str = "cuda", threads: int | None = None
) -> list[Any]:
    """Submit the models of ``p`` still to do in ``out_dir`` as one job array of ``executor`` (e.g. from
    ``amtheory.core.sweep.slurm_executor``), each element on ``device`` with ``threads`` torch CPU threads (None:
    torch's own); returns the submitit jobs (none when everything is done)."""
    if not isinstance(p, Preset):
        raise TypeError(f"p: expected a Preset (see amtheory.studies.memorization.presets), got {type(p).__name__}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: expected None or an int >= 1, got {threads!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_vocabulary(p.data, out)
    write_plan(p, out)
    task = functools.partial(_run_model_job, p=p, out_dir=str(out), device=str(device), threads=threads)
    return submit_array(executor, task, pending_models(p, out))


def command_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of the job-array command, each with its help and default."""
    a = argparse.ArgumentParser(
        prog=prog,
        description="The memorization study as a Slurm job array: one element per model still to train and measure.",
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
    print(f"[memorization] preset {p.name}: {len(jobs)} of {len(p.train_cells())} models submitted to "
          f"{args.cluster} ({', '.join(ids) or 'nothing left to do'}); logs in {args.logs}", flush=True)  # fmt: skip
    if args.no_wait:
        return {"jobs": jobs, "job_ids": ids, "summary": None}
    for done in wait_for_jobs(jobs):
        print(f"[memorization] done: {done}", flush=True)
    left = pending_models(p, args.out)
    if left:
        raise RuntimeError(f"{len(left)} models still have missing tables in {args.out} after their jobs ended")
    from amtheory.studies.memorization import summarize

    summary = summarize(args.out)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(format_report(summary))
    print(f"[memorization] {time.perf_counter() - t0:.1f} s; tables in {Path(args.out).resolve()}", flush=True)
    return {"jobs": jobs, "job_ids": ids, "summary": summary}
