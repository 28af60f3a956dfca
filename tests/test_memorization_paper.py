"""The memorization study on several devices: the ``paper`` preset (its definition; it runs on a host with several
GPUs) and the worker processes that spread a preset's cells over the GPUs, run here as two CPU processes."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from test_memorization import micro_preset

from amtheory.core.sweep import read_table
from amtheory.diffusion.model import PRESETS
from amtheory.studies.memorization import MEASURES, ModelSpec, Preset, run_experiment
from amtheory.studies.memorization.presets import PRESET_NAMES, preset


def test_paper_preset_is_the_papers_setting():
    p = preset("paper")
    assert "paper" in PRESET_NAMES
    # 128-token blocks of the full bert-base-uncased ids (no compaction), from the prepared corpus.
    assert (p.data.source, p.data.length, p.data.vocab) == ("data/brown-sotu", 128, None)
    names = [a.name for a in p.archs]
    assert {"tiny", "small"} <= set(names)
    for a in p.archs:  # the paper's DiT sizes, as amtheory.diffusion.model.PRESETS has them
        assert (a.d_model, a.n_blocks, a.n_heads) == tuple(
            PRESETS[a.name][k] for k in ("d_model", "n_blocks", "n_heads")
        )
    assert len(p.sizes) >= 8 and list(p.sizes) == sorted(set(p.sizes)) and min(p.sizes) <= 32
    assert len(p.seeds) >= 2 and len(set(p.seeds)) == len(p.seeds)
    cells = p.train_cells()
    assert len(cells) == len(p.archs) * len(p.sizes) * len(p.seeds)
    assert {c.seed for c in cells} == set(p.seeds) and len(set(cells)) == len(cells)
    # The smallest sets are seen often enough to be memorized: every block of the smallest set in >= 100,000 draws.
    assert p.steps * p.batch_size / min(p.sizes) >= 100_000
    assert p.workers == "auto"


def test_preset_seeds_are_checked_and_default_to_one_seed():
    p = micro_preset()
    assert p.seeds == (0,) and {c.seed for c in p.train_cells()} == {0}
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(p, seeds=())
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(p, seeds=(1, 1))
    with pytest.raises(TypeError, match="seeds"):
        dataclasses.replace(p, seeds=[0, 1])


def test_preset_budgets_multiply_the_steps_and_are_checked():
    p = micro_preset()
    assert p.budgets == (1,) and {c.steps for c in p.train_cells()} == {p.steps}
    two = dataclasses.replace(p, budgets=(1, 4), seeds=(0, 1))
    cells = two.train_cells()
    assert len(cells) == len(p.archs) * 2 * len(p.sizes) * 2 and len(set(cells)) == len(cells)
    assert sorted({c.steps for c in cells}) == [p.steps, 4 * p.steps]
    with pytest.raises(ValueError, match="budgets"):
        dataclasses.replace(p, budgets=(0,))
    with pytest.raises(ValueError, match="budgets"):
        dataclasses.replace(p, budgets=(2, 2))
    with pytest.raises(TypeError, match="budgets"):
        dataclasses.replace(p, budgets=[1, 4])


@pytest.mark.slow
def test_two_worker_processes_write_the_tables_of_one_process(tmp_path):
    """Two CPU worker processes stand for one process per GPU (``workers="auto"`` on a CUDA host): each stage's
    cells are split between them and the tables are those of a run in this process."""
    torch.set_num_threads(1)
    p: Preset = dataclasses.replace(
        micro_preset(), archs=(ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0),),
        backends=("empirical",), seeds=(0, 1), sizes=(4,),
    )  # fmt: skip
    here = run_experiment(p, tmp_path / "here", device="cpu", progress=False)
    spread = run_experiment(p, tmp_path / "spread", device="cpu", progress=False, workers=2)
    assert len(spread["train"]) == 2
    for stage in ("train", *MEASURES):
        names = sorted(q.name for q in (tmp_path / "here" / stage).glob("*.parquet"))
        assert names == sorted(q.name for q in (tmp_path / "spread" / stage).glob("*.parquet")), stage
        for name in names:
            x, y = read_table(tmp_path / "here" / stage / name), read_table(tmp_path / "spread" / stage / name)
            drop = [c for c in ("wall_s", "ms_per_step", "checkpoint") if c in x.columns]
            pd.testing.assert_frame_equal(x.drop(columns=drop), y.drop(columns=drop), obj=f"{stage}/{name}")
    assert len(here["recovery"]) == len(spread["recovery"])
