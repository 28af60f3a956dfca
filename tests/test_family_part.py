"""A sweep split by what it measures: the Hopfield family alone (a preset without models, ``--models none``) and the
models alone (``--hopfield none``). The family needs no trained model, so its part can take the measuring lock at
once and measure while the model parts train; together the two parts write the whole run's tables, and their data
folders merge into the whole run's."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch
from _tables import assert_same_tables
from test_group_train import _study_preset

from amtheory.studies.memorization import Preset, run_experiment

torch.set_num_threads(1)

_TIMES = ("wall_s", "ms_per_step", "eval_s", "group_size")


def _preset() -> Preset:
    """One nano model at two sizes, two seeds, trained and measured in groups; two Hopfield-family backends."""
    return _study_preset(seeds=(0, 1), steps=3, checkpoint_every=3, budgets=(1,), train_group=2, eval_group=2,
                         measures=("recovery", "basins", "nelbo"), backends=("empirical", "dense_exp"))  # fmt: skip


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("family_part")
    p = _preset()
    lock = root / "measure.lock"
    whole = run_experiment(p, root / "whole", device="cpu", progress=False, measure_lock=lock)
    family = run_experiment(dataclasses.replace(p, archs=()), root / "family", device="cpu", progress=False,
                            measure_lock=lock)  # fmt: skip
    models = run_experiment(dataclasses.replace(p, backends=()), root / "models", device="cpu", progress=False,
                            measure_lock=lock)  # fmt: skip
    return p, root, whole, family, models


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("backend", "train.arch.name", "n_stored", "train.n_train", "train.seed") if c in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys and len(df) else df


def test_the_family_alone_measures_every_size_and_trains_nothing(parts):
    p, _, _, family, _ = parts
    assert family["train"].empty and family["nelbo"].empty
    for m in ("recovery", "basins"):
        t = family[m]
        assert set(t["backend"]) == {"empirical", "dense_exp"}, m
        assert set(zip(t["backend"], t["n_stored"])) == {(b, n) for b in p.backends for n in p.sizes}, m


def test_the_family_part_and_the_models_part_write_the_whole_runs_tables(parts):
    _, root, whole, family, models = parts
    written = [m for m, t in whole.items() if len(t)]
    assert written == ["train", "recovery", "basins", "nelbo"]
    joined = {m: pd.concat([t for t in (family[m], models[m]) if len(t)], ignore_index=True) for m in written}
    for m in written:  # the same columns (a table's column order follows the rows it was first written with)
        assert sorted(joined[m].columns) == sorted(whole[m].columns), m
        joined[m] = joined[m][list(whole[m].columns)]
    assert_same_tables({m: _sorted(joined[m]) for m in written}, {m: _sorted(whole[m]) for m in written},
                       root / "models", root / "whole")  # fmt: skip


def test_the_parts_data_folders_merge_into_the_whole_runs(parts, tmp_path):
    from amtheory.studies.memorization.data_merge import merge_data
    from amtheory.studies.memorization.export import export_results
    from amtheory.studies.memorization.summary import read_data

    _, root, _, _, _ = parts
    folders = {name: export_results(root / name, tmp_path / name)[0].parent for name in ("whole", "family", "models")}
    merge_data([folders["family"], folders["models"]], tmp_path / "merged")
    for name in (q.name for q in folders["whole"].iterdir() if q.suffix == ".csv"):
        a, b = (pd.read_csv(folder / name, dtype=str, keep_default_na=False) for folder in
                (tmp_path / "merged", folders["whole"]))  # fmt: skip
        assert sorted(a.columns) == sorted(b.columns), name  # (in the order the merged parts first name them)
        keep = [c for c in b.columns if c not in _TIMES]
        assert sorted(map(tuple, a[keep].to_numpy())) == sorted(map(tuple, b[keep].to_numpy())), name
    run = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert run["plan"] == json.loads((folders["whole"] / "run.json").read_text())["plan"]
    read_data(tmp_path / "merged")  # a data folder like any other


def test_the_report_of_a_run_without_models_says_so(parts):
    from amtheory.studies.memorization import summarize
    from amtheory.studies.memorization.command import format_report

    _, root, _, _, _ = parts
    assert format_report(summarize(root / "family")).startswith(
        "recovery of corrupted tokens, train / test (UDDM): no model in this run"
    )
