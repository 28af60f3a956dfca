"""The measuring lock: runs that share one GPU measure one at a time, while their training goes on beside."""

from __future__ import annotations

import fcntl
import threading

import pytest
from test_group_train import _study_preset


def _held_elsewhere(path) -> bool:
    """Whether another open file holds ``path``'s lock (flock locks belong to open files, so one process sees its
    own holder from a second open)."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_one_holder_at_a_time(tmp_path):
    from amtheory.core.sweep.lock import exclusive_lock

    path = tmp_path / "sub" / "measure.lock"
    inside, release, entered = threading.Event(), threading.Event(), threading.Event()
    said: list[str] = []

    def first():
        with exclusive_lock(path):
            inside.set()
            release.wait(10)

    def second():
        with exclusive_lock(path, waiting=said.append):
            entered.set()

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=second)
    b.start()
    assert not entered.wait(0.5), "the second holder went in while the first held the lock"
    assert said and str(path) in said[0]
    release.set()
    a.join(10)
    b.join(10)
    assert entered.is_set()
    assert not _held_elsewhere(path)


def test_a_lock_is_released_when_its_work_raises(tmp_path):
    from amtheory.core.sweep.lock import exclusive_lock

    path = tmp_path / "measure.lock"
    with pytest.raises(RuntimeError):
        with exclusive_lock(path):
            assert _held_elsewhere(path)
            raise RuntimeError("a measurement failed")
    assert not _held_elsewhere(path)


def test_a_run_measures_its_groups_holding_the_lock(tmp_path, monkeypatch):
    # Two parts of the gpu preset measuring side by side ran the card out of memory (30 gpu-quick and 30 gpu-small
    # models, 35 and 37 GiB); with --measure-lock a part's grouped measurements wait for the other's to end.
    from amtheory.studies.memorization import group_evaluation, run_experiment

    path = tmp_path / "measure.lock"
    real = group_evaluation.evaluate_models_in_groups
    seen: list[bool] = []

    def checked(*args, **kwargs):
        seen.append(_held_elsewhere(path))
        return real(*args, **kwargs)

    monkeypatch.setattr(group_evaluation, "evaluate_models_in_groups", checked)
    p = _study_preset(steps=3, checkpoint_every=3, eval_group=2, measures=("recovery",))
    run_experiment(p, tmp_path / "out", device="cpu", progress=False, measure_lock=path)
    assert seen == [True]
    assert not _held_elsewhere(path)


def test_a_run_measures_its_hopfield_family_holding_the_lock(tmp_path, monkeypatch):
    # The family measured beside another part's measuring group ran an H100 out of memory (the family's process
    # 25.4 GiB, gpu-quick's group 44 GiB: h100_memorization_gpu.log): its cells are measurements like the groups'.
    from amtheory.studies.memorization import evaluation, run_experiment
    from amtheory.studies.memorization.cells import HopfieldCell

    path = tmp_path / "measure.lock"
    real = evaluation.evaluate_cell
    seen: list[bool] = []

    def checked(cell, *args, **kwargs):
        if isinstance(cell, HopfieldCell):
            seen.append(_held_elsewhere(path))
        return real(cell, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_cell", checked)
    p = _study_preset(steps=3, checkpoint_every=3, eval_group=2, measures=("recovery",), backends=("dense_exp",))
    run_experiment(p, tmp_path / "out", device="cpu", progress=False, measure_lock=path)
    assert seen == [True, True]  # one dense-memory cell for each of the two training sizes
    assert not _held_elsewhere(path)


def test_a_run_gives_its_cached_memory_back_before_letting_the_lock_go(tmp_path, monkeypatch):
    # The family's process held 25.4 GiB the next part's measuring group could not have.
    import torch

    from amtheory.studies.memorization.run import _measuring_lock

    path = tmp_path / "measure.lock"
    held_at_release: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: held_at_release.append(_held_elsewhere(path)))
    with pytest.raises(RuntimeError):
        with _measuring_lock(path, "cuda:0"):
            raise RuntimeError("a measurement failed")
    with _measuring_lock(path, "cpu"):
        pass
    assert held_at_release == [True]


def test_the_command_passes_its_measure_lock(tmp_path, monkeypatch):
    from amtheory.studies.memorization import command

    got = {}
    monkeypatch.setattr("amtheory.studies.memorization.run_experiment", lambda *a, **kw: got.update(kw))
    monkeypatch.setattr("amtheory.studies.memorization.summarize", lambda out: {})
    monkeypatch.setattr(command, "format_report", lambda s: "")
    command.main(["--preset", "tiny", "--out", str(tmp_path), "--device", "cpu", "--figures", "",
                  "--measure-lock", str(tmp_path / "m.lock")])  # fmt: skip
    assert got["measure_lock"] == str(tmp_path / "m.lock")


def test_the_family_alone_measures_holding_the_lock_whatever_the_training_groups(tmp_path, monkeypatch):
    # A run without models trains nothing that could share the card while it measures: it takes the lock even where
    # its preset would train one model at a time (so that it never measures beside another part's measuring group).
    import dataclasses

    from amtheory.studies.memorization import evaluation, run_experiment

    path = tmp_path / "measure.lock"
    real = evaluation.evaluate_cell
    seen: list[bool] = []

    def checked(cell, *args, **kwargs):
        seen.append(_held_elsewhere(path))
        return real(cell, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_cell", checked)
    p = _study_preset(steps=3, checkpoint_every=3, measures=("recovery",), backends=("dense_exp",))
    p = dataclasses.replace(p, archs=(), train_group=1, eval_group=1)
    run_experiment(p, tmp_path / "out", device="cpu", progress=False, measure_lock=path)
    assert seen == [True, True]  # one dense-memory cell for each of the two training sizes
    assert not _held_elsewhere(path)
