"""Step budgets read off one run (``amtheory.studies.memorization.budgets``): each model trains once, for its
longest budget, and the run folder of each shorter budget is made from that run at its step. On CPU the folder made
is, bit for bit, the one the shorter run trained on its own leaves (weights, EMA, AdamW state, config, log records)
and so is its table row; the longer run, stopped there and resumed, is its uninterrupted self; a job cut at any point
finishes into the same runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from amtheory.diffusion.checkpoint import resolve_checkpoint
from amtheory.studies.memorization import DataSpec, ModelSpec, TrainCell
from amtheory.studies.memorization.training import checkpoint_dir, train_cell, train_cells_in_groups

torch.set_num_threads(1)

ARCH = ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0)
# The least step counts of a (1, 2) budget pair whose runs log alike (a record every 100 steps); the checkpoint
# interval puts none of the longer run's own checkpoints at the shorter step.
SHORT, LONG, EVERY = 400, 800, 300


def _cells(steps: int, sizes: tuple[int, ...] = (4, 16)) -> list[TrainCell]:
    data = DataSpec("embedded", 8, 128)
    return [TrainCell(data, ARCH, n, steps, 2, lr=3e-3, warmup=2, ema=0.9, bf16=False) for n in sizes]


def _count_group_steps(monkeypatch) -> list[int]:
    """The steps every group trainer of this test takes, one entry per step."""
    from amtheory.diffusion.group_train import GroupTrainer

    taken: list[int] = []
    real = GroupTrainer.step

    def step(self, s):
        taken.append(s)
        return real(self, s)

    monkeypatch.setattr(GroupTrainer, "step", step)
    return taken


def _records(run: Path) -> list[dict]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in lines]


def assert_same_run(root_a: Path, root_b: Path, cell: TrainCell) -> None:
    """``cell``'s run folders under the two roots hold the same last checkpoint byte for byte (its training seconds
    apart) and the same log records (their seconds apart)."""
    a, b = checkpoint_dir(root_a, cell), checkpoint_dir(root_b, cell)
    ca, cb = resolve_checkpoint(a), resolve_checkpoint(b)
    assert ca.name == cb.name == f"step-{cell.steps:08d}"
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "config.json"):
        assert (ca / name).read_bytes() == (cb / name).read_bytes(), (cell.n_train, cell.steps, name)
    sa, sb = (json.loads((c / "train_state.json").read_text()) for c in (ca, cb))
    assert sa["extra"].pop("train_wall_s") > 0 and sb["extra"].pop("train_wall_s") > 0
    assert sa == sb
    assert _records(a) == _records(b)


def assert_same_rows(rows_a: dict, rows_b: dict, cells: list[TrainCell], *, steps_run: bool = True) -> None:
    for c in cells:
        a, b = rows_a[c].iloc[0], rows_b[c].iloc[0]
        assert a["final_loss"] == b["final_loss"] and a["skipped_steps"] == b["skipped_steps"], c
        if steps_run:
            assert a["steps_run"] == b["steps_run"] == c.steps, c


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """Each budget trained on its own (two calls, so that no call sees both budgets), in groups of two."""
    root = tmp_path_factory.mktemp("alone")
    rows = train_cells_in_groups(_cells(SHORT), "cpu", root=str(root), group_size=2, checkpoint_every=EVERY)
    rows.update(train_cells_in_groups(_cells(LONG), "cpu", root=str(root), group_size=2, checkpoint_every=EVERY))
    return root, rows


def test_a_shorter_budget_is_read_off_the_longer_group_run(alone, tmp_path, monkeypatch):
    root_alone, rows_alone = alone
    taken = _count_group_steps(monkeypatch)
    cells = _cells(SHORT) + _cells(LONG)
    rows = train_cells_in_groups(cells, "cpu", root=str(tmp_path), group_size=2, checkpoint_every=EVERY)
    # One group of the two longer runs, each step once; none for the shorter budget.
    assert taken == list(range(LONG))
    for c in cells:
        assert_same_run(tmp_path, root_alone, c)
    assert_same_rows(rows, rows_alone, cells)
    short = rows[cells[0]].iloc[0]
    assert Path(short["checkpoint"]) == checkpoint_dir(tmp_path, cells[0]) / "checkpoints" / f"step-{SHORT:08d}"
    # Its training seconds are the longer run's up to its step, fewer than that run's in all.
    assert 0 < short["wall_s"] < rows[cells[2]].iloc[0]["wall_s"] and short["ms_per_step"] > 0
    # The folder made resumes like its own run: checked against its data and settings, nothing left to train.
    again = train_cells_in_groups(_cells(SHORT), "cpu", root=str(tmp_path), group_size=2, checkpoint_every=EVERY)
    assert taken == list(range(LONG)) and all(r["steps_run"].item() == 0 for r in again.values())
    assert_same_rows(again, rows_alone, _cells(SHORT), steps_run=False)


def test_the_single_trainer_reads_a_shorter_budget_off_its_run_one_model_at_a_time(tmp_path, monkeypatch):
    # One model after another (a group of one, and the order a sweep on one device takes): the shorter budget's
    # turn trains the longer run up to its step and makes its folder; the longer budget's turn resumes from there.
    from amtheory.diffusion import train as train_module
    from amtheory.studies.memorization.budgets import shared_budgets
    from amtheory.studies.memorization.training import train_cell_shared

    (short,), (long,) = _cells(SHORT, (4,)), _cells(LONG, (4,))
    by_itself = train_cell(short, None, "cpu", root=str(tmp_path / "alone"), checkpoint_every=EVERY)
    taken: list[int] = []
    real = train_module.optimizer_step
    monkeypatch.setattr(train_module, "optimizer_step", lambda *a, **k: (taken.append(1), real(*a, **k))[1])
    shares = shared_budgets([short, long])
    assert shares == {short: long}
    root = tmp_path / "shared"
    first = train_cell_shared(short, shares, "cpu", root=str(root), checkpoint_every=EVERY)
    assert list(first) == [short] and len(taken) == SHORT
    second = train_cell_shared(long, shares, "cpu", root=str(root), checkpoint_every=EVERY)
    assert list(second) == [long] and len(taken) == LONG
    assert_same_run(root, tmp_path / "alone", short)
    assert_same_rows(first, {short: by_itself}, [short])
    assert second[long]["steps_run"].item() == LONG - SHORT  # this call trained the rest of the run
    # The run stopped at the shorter step and went on logs like one that did not stop (a record every 100 steps).
    assert [r["step"] for r in _records(checkpoint_dir(root, long))] == list(range(100, LONG + 1, 100))


@pytest.mark.parametrize("cut", ["before the shorter folder is made", "while the longer run goes on"])
def test_a_job_cut_while_sharing_finishes_into_the_same_runs(alone, tmp_path, monkeypatch, cut):
    from amtheory.diffusion import group_run
    from amtheory.studies.memorization import budgets

    root_alone, rows_alone = alone
    cells = _cells(SHORT) + _cells(LONG)
    recorded: dict = {}

    def stop(*args, **kwargs):
        raise KeyboardInterrupt("the job's time ran out")

    with monkeypatch.context() as m:
        if cut == "before the shorter folder is made":
            m.setattr(budgets, "make_run_at", stop)
        else:
            real, calls = group_run.train_group, []
            m.setattr(group_run, "train_group", lambda *a, **k: stop() if calls.append(1) or len(calls) == 2
                      else real(*a, **k))  # fmt: skip
        with pytest.raises(KeyboardInterrupt):
            train_cells_in_groups(cells, "cpu", root=str(tmp_path), group_size=2, checkpoint_every=EVERY,
                                  on_group=recorded.update)  # fmt: skip
    # The shorter runs' rows went out as soon as their folders were made, before the longer run went on.
    assert set(recorded) == (set() if cut == "before the shorter folder is made" else set(_cells(SHORT)))
    rows = train_cells_in_groups(cells, "cpu", root=str(tmp_path), group_size=2, checkpoint_every=EVERY)
    for c in cells:
        assert_same_run(tmp_path, root_alone, c)
    assert_same_rows({**rows, **recorded}, rows_alone, cells, steps_run=False)
    assert all(rows[c]["steps_run"].item() == LONG - SHORT for c in _cells(LONG))


def test_a_shorter_budget_trained_on_its_own_before_is_kept(alone, tmp_path, monkeypatch, capsys):
    # Results of a sweep from before the budgets shared a run: the shorter runs are found trained, and the longer
    # ones train from the start without stopping.
    root_alone, rows_alone = alone
    train_cells_in_groups(_cells(SHORT), "cpu", root=str(tmp_path), group_size=2, checkpoint_every=EVERY)
    taken = _count_group_steps(monkeypatch)
    capsys.readouterr()
    cells = _cells(SHORT) + _cells(LONG)
    rows = train_cells_in_groups(cells, "cpu", root=str(tmp_path), group_size=2, checkpoint_every=EVERY)
    assert taken == list(range(LONG)) and f"to {SHORT} of {LONG} steps" not in capsys.readouterr().out
    for c in cells:
        assert_same_run(tmp_path, root_alone, c)
    assert [rows[c]["steps_run"].item() for c in cells] == [0, 0, LONG, LONG]


def test_which_budgets_share_a_run():
    from amtheory.studies.memorization.budgets import shared_budgets

    a, b, c = (_cells(s, (4,))[0] for s in (400, 800, 1200))
    assert shared_budgets([a, b, c]) == {a: c, b: c}
    other_seed = dataclasses.replace(a, seed=1)
    assert shared_budgets([other_seed, b]) == {}
    # Runs that log unlike train on their own: below 400 steps the log interval is a quarter of the run, and a
    # shorter step off the longer run's log points would end its last record elsewhere.
    assert shared_budgets(_cells(4, (4,)) + _cells(8, (4,))) == {}
    assert shared_budgets(_cells(450, (4,)) + _cells(900, (4,))) == {}
    with pytest.raises(TypeError, match="cells: expected TrainCell items"):
        shared_budgets([a, "b"])
    with pytest.raises(TypeError, match="cells: expected a list of TrainCell"):
        shared_budgets(a)
    with pytest.raises(TypeError, match="share: expected a bool"):
        train_cells_in_groups([a], "cpu", root="unused", group_size=1, share="yes")


def test_a_run_folder_is_made_only_from_a_checkpoint_at_its_step(tmp_path):
    from amtheory.diffusion.checkpoint import CheckpointError
    from amtheory.studies.memorization.budgets import make_run_at
    from amtheory.studies.memorization.training import _train_config

    cell = _cells(8, (4,))[0]
    train_cell(cell, None, "cpu", root=str(tmp_path), checkpoint_every=4)
    run = checkpoint_dir(tmp_path, cell)
    with pytest.raises(CheckpointError, match="checkpoint at step 5"):
        make_run_at(run, tmp_path / "short", 5, _train_config(dataclasses.replace(cell, steps=5), 4))
    with pytest.raises(ValueError, match="train_config: expected the config of a 4-step run"):
        make_run_at(run, tmp_path / "short", 4, _train_config(cell, 4))
    assert not (tmp_path / "short" / "checkpoints").exists()


def test_a_sweep_on_one_device_trains_each_model_once_across_its_budgets(tmp_path, monkeypatch):
    # The study's runner, one model after another: the 400-step model is trained as the first 400 steps of the
    # 800-step run, measured, and the 800-step model then trains the rest of that run.
    from amtheory.diffusion import train as train_module
    from amtheory.studies.memorization import EvalSettings, Preset, run_experiment

    (short,) = _cells(SHORT, (4,))
    p = Preset(
        name="budgets", data=short.data, archs=(ARCH,), sizes=(4,), steps=SHORT, batch_size=2, lr=3e-3, warmup=2,
        ema=0.9, bf16=False, budgets=(1, 2), checkpoint_every=EVERY, backends=(), measures=("recovery",),
        settings=EvalSettings(n_eval=2, ts=(0.5,), n_steps=2),
    )  # fmt: skip
    assert p.train_cells() == [short, *_cells(LONG, (4,))]
    taken: list[int] = []
    real = train_module.optimizer_step
    monkeypatch.setattr(train_module, "optimizer_step", lambda *a, **k: (taken.append(1), real(*a, **k))[1])
    tables = run_experiment(p, tmp_path, device="cpu", progress=False)
    assert len(taken) == LONG
    train = tables["train"].set_index("steps")
    assert train.loc[SHORT, "steps_run"] == SHORT and train.loc[LONG, "steps_run"] == LONG - SHORT
    assert train.loc[SHORT, "wall_s"] < train.loc[LONG, "wall_s"]
    long_log = _records(checkpoint_dir(tmp_path, p.train_cells()[1]))
    assert train.loc[SHORT, "final_loss"] == next(r["loss"] for r in long_log if r["step"] == SHORT)
    assert len(tables["recovery"]) > 0 and set(tables["recovery"]["train.steps"]) == {SHORT, LONG}
