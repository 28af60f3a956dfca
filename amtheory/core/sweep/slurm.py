"""A sweep as a Slurm job array, through submitit (an optional package, imported only here and only when used).

``slurm_executor`` makes the executor (one task of one node per array element, with the partition, time limit,
GPUs per task and array parallelism as arguments; ``cluster="local"`` runs the same array as processes of this
machine, which is how the tests run it). ``submit_array`` submits one array element per item; ``submit_slurm``
submits a sweep's pending cells over it, each element running its share through the sweep runner, so the tables
are those of ``run_sweep`` and a second submission submits only what is still missing. ``wait_for_jobs`` waits
for every element and names the ones that failed.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from amtheory.core._checks import check_choice, check_int
from amtheory.core.sweep.files import checked_pending_cells
from amtheory.core.sweep.keys import _check_cell, _check_root_seed
from amtheory.core.sweep.runner import CellFn, _run_serial

#: Where the array runs: "slurm" (sbatch) or "local" (processes of this machine, for tests and trial runs).
CLUSTERS = ("slurm", "local")


def _submitit():
    try:
        import submitit
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "a Slurm job array needs the optional package submitit (pip install 'amtheory[slurm]')"
        ) from exc
    return submitit


def slurm_executor(
    folder: str | os.PathLike,
    *,
    cluster: str = "slurm",
    partition: str | None = None,
    time_min: int = 60,
    gpus_per_task: int = 1,
    cpus_per_task: int | None = None,
    mem_gb: int | None = None,
    array_parallelism: int | None = None,
    name: str = "amtheory",
) -> Any:
    """A ``submitit.AutoExecutor`` whose array elements are one task on one node each: ``gpus_per_task`` GPUs
    (0: none), ``cpus_per_task`` cores and ``mem_gb`` of memory (None: the partition's default), ``time_min``
    minutes, on ``partition`` (None: the default one), at most ``array_parallelism`` elements at a time (None: no
    limit). Logs and pickled tasks go to ``folder`` (submitit replaces ``%j`` with the job id)."""
    submitit = _submitit()
    check_choice("cluster", cluster, CLUSTERS)
    if partition is not None and (not isinstance(partition, str) or not partition):
        raise TypeError(f"partition: expected None or a partition name, got {type(partition).__name__} {partition!r}")
    check_int("time_min", time_min, minimum=1)
    check_int("gpus_per_task", gpus_per_task, minimum=0)
    for arg, value in (("cpus_per_task", cpus_per_task), ("mem_gb", mem_gb), ("array_parallelism", array_parallelism)):
        if value is not None:
            check_int(arg, value, minimum=1)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a job name, got {type(name).__name__} {name!r}")
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": time_min,
        "nodes": 1,
        "tasks_per_node": 1,
        "gpus_per_node": gpus_per_task,
        "cpus_per_task": cpus_per_task,
        "mem_gb": mem_gb,
        # Slurm's own options (the local executor accepts them and ignores them).
        "slurm_partition": partition,
        "slurm_array_parallelism": array_parallelism,
    }
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def submit_array(executor: Any, task: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Submit ``task(item)`` for every item as one job array of ``executor`` (a configured submitit executor, e.g.
    from :func:`slurm_executor`); returns the submitit jobs, in the order of ``items`` (none for no items).
    ``task`` and the items are pickled: a module-level function, or a ``functools.partial`` of one."""
    if not callable(getattr(executor, "map_array", None)):
        raise TypeError(f"executor: expected a submitit executor (with map_array), got {type(executor).__name__}")
    if not callable(task):
        raise TypeError(f"task: expected a callable task(item), got {type(task).__name__} {task!r}")
    items = list(items)
    if not items:
        return []
    return list(executor.map_array(task, items))


def _error_line(exc: Exception) -> str:
    """The line that names the error: the last ``SomeError: ...`` line of the job's trace (submitit puts the
    trace into the message), else the message's first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line)]
    return (named or lines or [type(exc).__name__])[-1 if named else 0]


def wait_for_jobs(jobs: Sequence[Any]) -> list[Any]:
    """Wait for every job and return their results in order; when any failed, raise ``RuntimeError`` naming each
    failed job with the first line of its error and its log, once all have ended."""
    results, failed = [], []
    for job in jobs:
        try:
            results.append(job.result())
        except Exception as exc:  # noqa: BLE001 - every failure is reported together below
            failed.append(f"job {job.job_id}: {_error_line(exc)} (log: {job.paths.stderr})")
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(jobs)} array jobs failed; the tables they finished are kept, submit again to "
            "compute the rest:\n  " + "\n  ".join(failed)
        )
    return results


# ---- a sweep's cells as a job array ------------------------------------------------------------------------------
def _run_chunk(cells: list[Any], *, fn: CellFn, out_dir: str, root_seed: int, device: str) -> int:
    _run_serial(cells, fn, Path(out_dir), root_seed, device, False, "slurm")
    return len(cells)


def submit_slurm(
    cells: Sequence[Any],
    fn: CellFn,
    out_dir: str | os.PathLike,
    executor: Any,
    *,
    n_jobs: int | None = None,
    root_seed: int = 0,
    device: str = "cuda",
) -> list[Any]:
    """Submit the cells of a sweep that have no table yet as a job array: ``n_jobs`` elements (None: one per
    pending cell) over a strided partition, each running its share through the sweep runner on ``device``, so the
    tables are those ``run_sweep`` writes. Damaged tables are moved aside first, as ``run_sweep`` does; with
    nothing pending, nothing is submitted. Returns the submitit jobs (:func:`wait_for_jobs` waits for them);
    collect with ``load_results(out_dir, cells, root_seed=root_seed)``."""
    if n_jobs is not None:
        check_int("n_jobs", n_jobs, minimum=1)
    if not callable(fn):
        raise TypeError(f"fn: expected a callable fn(cell, generator, device) -> DataFrame, got {type(fn).__name__}")
    _check_root_seed(root_seed)
    cells = list(cells)
    for i, c in enumerate(cells):
        _check_cell(c, f"cells[{i}]")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = checked_pending_cells(cells, out, root_seed)
    n = len(todo) if n_jobs is None else min(n_jobs, len(todo))
    chunks = [todo[r::n] for r in range(n)]
    task = functools.partial(_run_chunk, fn=fn, out_dir=str(out), root_seed=root_seed, device=str(device))
    return submit_array(executor, task, chunks)
