"""The memorization study as a job array: experiments/slurm_memorization.py submitted through submitit's local
executor writes the tables a plain local run writes, and a second submission finds nothing left to do."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from _studies import load_experiment
from test_memorization import micro_preset

from amtheory.core.sweep import read_table, result_path, slurm_executor, submit_array, submit_slurm
from amtheory.studies.memorization import MEASURES, EvalCell, run_experiment

pytest.importorskip("submitit")

#: Columns that hold a wall time or a path, which differ between two runs of the same cells.
TIMING_AND_PATHS = ("wall_s", "ms_per_step", "checkpoint")


def assert_same_tables(a: Path, b: Path, stages: tuple[str, ...] = ("train", *MEASURES)) -> None:
    """The two results folders hold the same tables of ``stages``, file by file (a table's name is its cell and root
    seed)."""
    for stage in stages:
        names = sorted(p.name for p in (a / stage).glob("*.parquet"))
        assert names and names == sorted(p.name for p in (b / stage).glob("*.parquet")), stage
        for name in names:
            x, y = read_table(a / stage / name), read_table(b / stage / name)
            drop = [c for c in TIMING_AND_PATHS if c in x.columns]
            pd.testing.assert_frame_equal(x.drop(columns=drop), y.drop(columns=drop), obj=f"{stage}/{name}")


def submit(out: Path, logs: Path):
    argv = ["--cluster", "local", "--out", str(out), "--logs", str(logs / "%j"), "--gpus-per-task", "0"]
    argv += ["--time", "10", "--threads", "1", "--array-parallelism", "2"]
    return load_experiment("slurm_memorization").main(argv, preset=micro_preset())


def test_job_array_writes_the_tables_of_a_local_run_and_resumes(tmp_path):
    torch.set_num_threads(1)
    p = micro_preset()
    run_experiment(p, tmp_path / "local", device="cpu", progress=False)
    t0 = time.perf_counter()
    first = submit(tmp_path / "array", tmp_path / "logs")
    assert len(first["job_ids"]) == len(p.train_cells())  # one array task per model
    assert_same_tables(tmp_path / "local", tmp_path / "array")
    assert (tmp_path / "array" / "summary.json").is_file() and (tmp_path / "array" / "vocab").is_dir()
    # Everything is done: a second submission submits nothing and touches no table.
    stamps = {q: q.stat().st_mtime_ns for q in (tmp_path / "array").rglob("*.parquet")}
    assert submit(tmp_path / "array", tmp_path / "logs")["job_ids"] == []
    assert {q: q.stat().st_mtime_ns for q in (tmp_path / "array").rglob("*.parquet")} == stamps
    # A cell lost (a task killed before it wrote it): the rerun submits only that model, which computes only it.
    lost = result_path(tmp_path / "array" / "kl", EvalCell(p.train_cells()[1], "kl", p.settings))
    lost.unlink()
    del stamps[lost]
    assert len(submit(tmp_path / "array", tmp_path / "logs")["job_ids"]) == 1
    assert lost.is_file()
    assert {q: q.stat().st_mtime_ns for q in stamps} == stamps
    assert_same_tables(tmp_path / "local", tmp_path / "array")
    assert time.perf_counter() - t0 < 60


def test_a_preset_without_models_submits_the_hopfield_family_size_by_size(tmp_path):
    # The family alone (``--models none``; the family part of a sweep) needs no trained model: each training size
    # is a unit of work of its own, and the array writes the family's tables of a local run of the same preset.
    torch.set_num_threads(1)
    p = dataclasses.replace(micro_preset(), archs=())
    run_experiment(p, tmp_path / "local", device="cpu", progress=False)
    argv = ["--cluster", "local", "--out", str(tmp_path / "array"), "--logs", str(tmp_path / "logs" / "%j")]
    argv += ["--gpus-per-task", "0", "--threads", "1"]
    run = load_experiment("slurm_memorization").main(argv, preset=p)
    assert len(run["job_ids"]) == len(p.sizes)
    for stage in ("recovery", "basins"):
        assert len(list((tmp_path / "local" / stage).glob("*.parquet"))) == len(p.hopfield_cells(stage)), stage
    assert_same_tables(tmp_path / "local", tmp_path / "array", stages=("recovery", "basins"))
    assert load_experiment("slurm_memorization").main(argv, preset=p)["job_ids"] == []


def test_no_wait_returns_the_jobs_without_waiting(tmp_path):
    p = dataclasses.replace(micro_preset(), sizes=(4,))
    argv = ["--cluster", "local", "--out", str(tmp_path / "out"), "--logs", str(tmp_path / "logs" / "%j")]
    argv += ["--gpus-per-task", "0", "--threads", "1", "--no-wait"]
    run = load_experiment("slurm_memorization").main(argv, preset=p)
    assert len(run["job_ids"]) == len(p.train_cells()) and run["summary"] is None
    for job in run["jobs"]:  # the local executor's tasks outlive the call; let them finish inside the test
        job.result()


def test_slurm_executor_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="time_min"):
        slurm_executor(tmp_path, time_min=0, cluster="local")
    with pytest.raises(ValueError, match="gpus_per_task"):
        slurm_executor(tmp_path, gpus_per_task=-1, cluster="local")
    with pytest.raises(ValueError, match="array_parallelism"):
        slurm_executor(tmp_path, array_parallelism=0, cluster="local")
    with pytest.raises(TypeError, match="partition"):
        slurm_executor(tmp_path, partition=3, cluster="local")
    with pytest.raises(ValueError, match="cluster"):
        slurm_executor(tmp_path, cluster="pbs")


def test_a_failed_job_is_named_with_its_error(tmp_path):
    from amtheory.core.sweep import wait_for_jobs

    jobs = submit_array(slurm_executor(tmp_path / "%j", cluster="local", gpus_per_task=0), math.sqrt, [4.0, -1.0])
    with pytest.raises(RuntimeError, match=r"(?s)1 of 2 array jobs failed.*job \d+: ValueError: math domain error"):
        wait_for_jobs(jobs)


def test_submit_array_and_submit_slurm_reject_bad_input(tmp_path):
    with pytest.raises(TypeError, match="executor"):
        submit_array(object(), print, [1])
    with pytest.raises(TypeError, match="task"):
        submit_array(slurm_executor(tmp_path, cluster="local"), "print", [1])
    assert submit_array(slurm_executor(tmp_path, cluster="local"), print, []) == []
    with pytest.raises(ValueError, match="n_jobs"):
        submit_slurm([], print, tmp_path, slurm_executor(tmp_path, cluster="local"), n_jobs=0)


def test_command_rejects_bad_options():
    main = load_experiment("slurm_memorization").main
    with pytest.raises(SystemExit):
        main(["--preset", "huge"])
    with pytest.raises(ValueError, match="--sizes"):
        main(["--sizes", "a,b", "--cluster", "local"])


def test_submit_slurm_runs_the_pending_cells_of_a_sweep(tmp_path, monkeypatch):
    from test_sweep import Cell, draw

    from amtheory.core.sweep import load_results, run_sweep, wait_for_jobs

    # The jobs unpickle this folder's cell type and cell function: they find it through PYTHONPATH.
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    cells = [Cell(n=n) for n in range(5)]
    executor = slurm_executor(tmp_path / "logs" / "%j", cluster="local", gpus_per_task=0, time_min=5)
    jobs = submit_slurm(cells, draw, tmp_path / "array", executor, n_jobs=2, device="cpu")
    assert len(jobs) == 2 and wait_for_jobs(jobs) == [3, 2]  # strided shares: cells 0, 2, 4 and 1, 3
    assert submit_slurm(cells, draw, tmp_path / "array", executor, n_jobs=2, device="cpu") == []
    here = run_sweep(cells, draw, tmp_path / "here", progress=False)
    there = load_results(tmp_path / "array", cells)
    pd.testing.assert_frame_equal(here.drop(columns="pid"), there.drop(columns="pid"))
