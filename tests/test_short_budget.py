"""A sweep whose shorter step budgets get fewer measurements (``Preset.short_budget_measures``): which cells each
model gets, that the grouped and the one-at-a-time runs write the same tables, that the Hopfield family still goes
with the first model of each size, and that the results page tells a measurement left out by the plan from one a
run did not reach."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from _tables import assert_same_tables

from amtheory.studies.memorization import DataSpec, EvalSettings, ModelSpec, Preset, run_experiment
from amtheory.studies.memorization.run import model_cells, model_units

torch.set_num_threads(1)


def _preset(**kw) -> Preset:
    """Two nano models a budget, two budgets; the shorter measured for recovery alone."""
    kw.setdefault("short_budget_measures", ("recovery",))
    return Preset(
        name="short", data=DataSpec("embedded", 12, 128),
        archs=(ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0),),
        sizes=(4, 16), steps=3, batch_size=4, lr=3e-3, warmup=2, ema=0.9, checkpoint_every=3, budgets=(1, 2),
        settings=EvalSettings(n_eval=3, ts=(0.1, 0.5), n_steps=4, n_basin=2, basin_trials=2, basin_steps=2,
                              n_generate=3, nelbo_ts=2, kl_ts=(0.5,), empirical_steps=3, hopfield_max_iter=2),
        backends=("empirical",), **kw,
    )  # fmt: skip


def test_the_shorter_budget_gets_the_named_measurements_and_the_longest_every_one():
    p = _preset(short_budget_measures=("nelbo", "recovery"))
    short, long = (tc for tc in p.train_cells() if tc.n_train == 4 and tc.seed == 0)
    assert (short.steps, long.steps) == (3, 6)
    assert p.measures_of(short) == ["recovery", "nelbo"]  # in MEASURES order
    assert p.measures_of(long) == p.measured()
    assert {c.train.steps for c in p.eval_cells("basins")} == {6}
    assert {c.train.steps for c in p.eval_cells("recovery")} == {3, 6}
    everything = dataclasses.replace(p, short_budget_measures=None)
    assert everything.measures_of(short) == everything.measured()
    # Only what the preset measures at all: a short-budget name outside ``measures`` is not run.
    assert dataclasses.replace(p, measures=("recovery", "basins")).measures_of(short) == ["recovery"]


def test_the_hopfield_family_stays_with_the_first_model_of_each_size():
    # The first model of a size is one of the shorter budget: it carries the family's basin cells though its own
    # basins are not measured.
    p = _preset()
    tc, hopfield = model_units(p)[0]
    assert hopfield and tc.steps == 3
    cells = model_cells(p, tc, hopfield)
    assert [type(c).__name__ for c in cells["basins"]] == ["HopfieldCell"]
    assert [type(c).__name__ for c in cells["recovery"]] == ["EvalCell", "HopfieldCell"]
    assert "generation" not in cells and "nelbo" not in cells


@pytest.mark.parametrize("bad", [("recovery", "recovery"), ("entropy",), ["recovery"], "recovery", ()])
def test_bad_short_budget_measures_are_refused_naming_the_argument(bad):
    # () would train the shorter budgets' models and measure none of them.
    with pytest.raises(ValueError, match="short_budget_measures: expected None or a non-empty tuple of distinct"):
        _preset(short_budget_measures=bad)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("short_budget")
    p = _preset()
    grouped = run_experiment(dataclasses.replace(p, train_group=2, eval_group=2), root / "grouped", device="cpu",
                             progress=False)  # fmt: skip
    alone = run_experiment(p, root / "alone", device="cpu", progress=False)
    return p, root, grouped, alone


def test_grouped_and_alone_runs_measure_the_shorter_budget_for_recovery_alone(runs):
    p, root, grouped, alone = runs
    for tables in (grouped, alone):
        uddm = {m: t[t["backend"] == "uddm"] if "backend" in t else t for m, t in tables.items()}
        assert set(uddm["recovery"]["train.steps"]) == {3, 6}
        for m in ("basins", "fixed_points", "generation", "nelbo", "kl", "trajectory"):
            assert set(uddm[m]["train.steps"]) == {6}, m
        family = tables["basins"][tables["basins"]["backend"] == "empirical"]
        assert sorted(set(family["n_stored"])) == [4, 16]
    measured = [m for m in grouped if m != "train"]  # (the training rows name how each run trained its budgets)
    assert_same_tables({m: grouped[m] for m in measured}, {m: alone[m] for m in measured}, root / "grouped",
                       root / "alone")  # fmt: skip
    plan = json.loads((root / "grouped" / "measures.json").read_text())
    assert plan == {"measures": p.measured(), "longest_steps": 6, "short_budget_measures": ["recovery"]}


def test_the_page_says_the_plan_left_them_out_and_still_names_what_a_run_missed(runs, tmp_path):
    from amtheory.reports.memorization import build_page
    from amtheory.studies.memorization.export import export_results
    from amtheory.studies.memorization.summary import read_data

    _, root, _, _ = runs
    page = build_page(read_data(export_results(root / "grouped", tmp_path / "data")[0].parent), n_boot=50)
    head = page.split("\n## (a)")[0]
    assert "By the sweep's plan the models of the shorter step budgets (3 steps) are measured for recovery only" \
        in head, head[-1500:]  # fmt: skip
    assert "measured in part" not in head and "incomplete" not in head
    # Without the plan (a results folder written before plans were recorded) the same tables read as a run that
    # did not reach the shorter budget's other measurements.
    (root / "grouped" / "measures.json").rename(tmp_path / "measures.json")
    try:
        old = build_page(read_data(export_results(root / "grouped", tmp_path / "old")[0].parent), n_boot=50)
    finally:
        (tmp_path / "measures.json").rename(root / "grouped" / "measures.json")
    assert "nano, 3 steps (x1): 2 of 2 models measured in part (no basins, fixed_points, generation, kl, nelbo, " \
           "trajectory)" in old.split("\n## (a)")[0]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["{not json", json.dumps({"measures": ["recovery"]}),
     json.dumps({"measures": ["entropy"], "short_budget_measures": None, "longest_steps": 6}),
     json.dumps({"measures": ["recovery"], "short_budget_measures": None, "longest_steps": True})],
)  # fmt: skip
def test_a_damaged_plan_is_refused_naming_the_file(tmp_path, text):
    from amtheory.studies.memorization.run_record import read_plan

    (tmp_path / "measures.json").write_text(text)
    with pytest.raises(ValueError, match="measures.json"):
        read_plan(tmp_path)
