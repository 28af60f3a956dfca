"""The memorization experiment: a micro pipeline end to end (tables, resume, figures), the extraction measure and
the meeting-point interpolation on hand-made inputs."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from amtheory.studies import memorization as mz
from amtheory.studies.memorization import (
    DataSpec,
    EvalSettings,
    ModelSpec,
    Preset,
    longest_shared_span,
    run_experiment,
    summarize,
)
from amtheory.studies.memorization import presets as mzp

torch.set_num_threads(1)


def micro_preset() -> Preset:
    return Preset(
        name="micro",
        data=DataSpec("embedded", 12, 128),
        archs=(ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0),),
        sizes=(4, 16),
        steps=20,
        batch_size=4,
        lr=3e-3,
        warmup=2,
        ema=0.9,
        settings=EvalSettings(
            n_eval=3,
            ts=(0.1, 0.5),
            n_steps=6,
            n_basin=2,
            basin_trials=2,
            basin_steps=2,
            n_generate=3,
            nelbo_ts=2,
            kl_ts=(0.5,),
            empirical_steps=4,
            hopfield_max_iter=3,
            modern_max_bytes=50_000,
        ),  # fmt: skip
        checkpoint_every=10,
    )


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("memorization")
    p = micro_preset()
    t0 = time.perf_counter()
    tables = run_experiment(p, out, device="cpu", progress=False)
    return p, out, tables, time.perf_counter() - t0


def test_pipeline_writes_tidy_tables(micro_run):
    p, out, tables, _ = micro_run
    n_models = len(p.train_cells())
    assert len(tables["train"]) == n_models
    assert (tables["train"]["final_loss"].notna()).all()
    for name in mz.MEASURES:
        df = tables[name]
        assert {"backend", "model_size", "train_size", "split"} <= set(df.columns), name
        assert len(list((out / name).glob("*.parquet"))) >= n_models
    rec = tables["recovery"]
    assert {"recovered", "broken", "exact", "t", "x0", "xq", "xf", "applicable"} <= set(rec.columns)
    # Every applicable backend saw the same corrupted queries as the UDDM of the same training set.
    q = rec[rec["applicable"].astype(bool)]
    key = ["train_size", "split", "t", "sequence"]
    for _, g in q.groupby(key):
        first = np.asarray(g["xq"].iloc[0])
        assert all(np.array_equal(first, np.asarray(x)) for x in g["xq"])
    assert set(q["backend"]) >= {"uddm", "empirical", "dense_exp"}
    # L V = 12 * 128 = 1536 <= 4096: the classical network runs; the modern one needs 4 K L V bytes, 24.6 kB at
    # 4 blocks (under its 50 kB limit) and 98 kB at 16 (over it: recorded as not applicable, with the reason).
    assert set(q["backend"]) >= {"classical", "modern"}
    na = rec[~rec["applicable"].astype(bool)]
    assert set(zip(na["backend"], na["train_size"])) == {("modern", 16)}
    assert na["reason"].str.contains("GiB").all()
    gen = tables["generation"]
    assert set(gen["split"]) == {"train", "test", "generated"}
    g = gen[gen["split"] == "generated"]
    assert g["longest_span"].between(0, p.data.length).all()
    assert (g["verbatim"] == (g["longest_span"] == p.data.length)).all()
    assert (tables["nelbo"]["nelbo"] >= 0).all()
    assert {"radius", "fraction", "split"} <= set(tables["basins"].columns)
    traj = tables["trajectory"]
    # Per generated sequence, every reverse step from t = 1 and the prediction on the sample at entropy_t.
    s = p.settings
    assert set(traj["split"]) == {"generated"}
    assert len(traj) == n_models * s.n_generate * (s.n_steps + 1)
    assert {"step", "t", "sequence", "entropy", "gap"} <= set(traj.columns)
    assert traj.groupby(["train_size", "step"])["t"].nunique().eq(1).all()
    assert set(traj.loc[traj["step"] == 0, "t"]) == {1.0} and set(traj.loc[traj["step"] == s.n_steps, "t"]) == {
        s.entropy_t
    }
    assert traj["gap"].between(0, 1).all() and (traj["entropy"] >= 0).all()
    assert (out / "checkpoints").is_dir()


def test_empirical_denoiser_restores_training_blocks_exactly(micro_run):
    _, _, tables, _ = micro_run
    rec = tables["recovery"]
    e = rec[(rec["backend"] == "empirical") & (rec["split"] == "train") & (rec["t"] == 0.1)]
    # At t = 0.1 about 1 in 10 tokens is redrawn: the memorizing posterior puts the query back on its block.
    assert e["exact"].mean() == 1.0


def test_resume_skips_finished_cells(micro_run, tmp_path):
    p, out, _, first = micro_run
    stamps = {q: q.stat().st_mtime_ns for q in out.rglob("*.parquet")}
    t0 = time.perf_counter()
    run_experiment(p, out, device="cpu", progress=False)
    assert time.perf_counter() - t0 < max(5.0, 0.5 * first)
    assert {q: q.stat().st_mtime_ns for q in out.rglob("*.parquet")} == stamps


def test_interrupted_training_resumes_from_checkpoint(tmp_path):
    p = micro_preset()
    cell = dataclasses.replace(p.train_cells()[0], steps=20)
    half = dataclasses.replace(cell, steps=10)
    g = torch.Generator()
    # A run of 10 steps leaves a checkpoint at step 10 in the same folder a 20-step cell would use.
    root = tmp_path
    first = mz.train_cell(half, g, "cpu", root=str(root), checkpoint_every=10)
    src = mz.checkpoint_dir(root, half)
    dst = mz.checkpoint_dir(root, cell)
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dst)
    second = mz.train_cell(cell, g, "cpu", root=str(root), checkpoint_every=10)
    assert int(first["steps_run"].iloc[0]) == 10
    assert int(second["steps_run"].iloc[0]) == 10  # only the remaining steps were trained


def test_pipeline_rates_count_ordinary_tokens_and_basins_start_matched(micro_run):
    p, out, tables, _ = micro_run
    rec = tables["recovery"]
    rec = rec[rec["applicable"]]
    # Rates over ordinary tokens: never more changed tokens than the L - 2 inside the [CLS] ... [SEP] frame.
    assert (rec["n_changed"] <= p.data.length - 2).all()
    uddm = rec[rec["backend"] == "uddm"]
    assert {"entropy_recovered", "entropy_unrecovered"} <= set(uddm.columns)
    assert ((uddm["entropy_recovered"] >= 0) | uddm["entropy_recovered"].isna()).all()
    bas = tables["basins"]
    assert set(bas.loc[bas["backend"] == "uddm", "t_start"]) == {"matched"}
    s = summarize(out)
    for rows in s["recovery"]["nano"].values():
        for r in rows.values():
            for split in ("train", "test"):
                # A split with no changed ordinary token (a few short blocks at small t) has no rate: NaN, not 0.
                assert r[f"{split}_se"] > 0 or (r[f"{split}_tokens"] == 0 and math.isnan(r[split]))
            assert r["verdict"] in ("train > test", "test > train", "undecided")
            assert r["train_low"] <= r["train"] <= r["train_high"] or r["train_tokens"] == 0


def test_summary_and_figures(micro_run, tmp_path):
    p, out, _, _ = micro_run
    s = summarize(out)
    assert set(s["meeting"]) == {"nano"}
    assert set(s["recovery"]["nano"]) == {0.1, 0.5}
    for v in s["meeting"]["nano"].values():
        assert v is None or min(p.sizes) <= v <= max(p.sizes)
    assert s["entropy"]["nano"]["smallest"]["train_size"] == 4
    assert s["perplexity_peak"]["nano"]["train_size"] in p.sizes

    from paper_figures.memorization import make_figures

    paths = make_figures(out, tmp_path / "figs")
    names = {q.name for q in paths}
    for stem in ("recovery", "backends", "basins", "entropy", "perplexity", "extraction", "example", "trajectory"):
        assert f"memorization_{stem}.png" in names and f"memorization_{stem}.pdf" in names
    assert all(q.stat().st_size > 1000 for q in paths)


# ---------------------------------------------------------------------------------------------------------------
# Hand-made inputs
# ---------------------------------------------------------------------------------------------------------------
def test_longest_shared_span_on_hand_made_blocks():
    ref = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
    gen = np.array(
        [
            [1, 2, 3, 4, 5, 6],  # verbatim copy of row 0
            [9, 9, 3, 4, 5, 0],  # "3 4 5": 3 tokens, at another offset
            [0, 0, 0, 0, 0, 0],  # nothing shared
            [10, 11, 12, 1, 2, 0],  # "10 11 12" from row 1 (a span never crosses rows)
            [8, 13, 13, 13, 13, 7],  # single tokens only
        ]
    )
    assert longest_shared_span(gen, ref).tolist() == [6, 3, 0, 3, 1]
    assert longest_shared_span(torch.as_tensor(gen), torch.as_tensor(ref)).tolist() == [6, 3, 0, 3, 1]


def test_longest_shared_span_matches_brute_force():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, size=(5, 9))
    gen = rng.integers(0, 4, size=(7, 9))

    def brute(row):
        best = 0
        for r in ref:
            for i in range(9):
                for j in range(9):
                    k = 0
                    while i + k < 9 and j + k < 9 and row[i + k] == r[j + k]:
                        k += 1
                    best = max(best, k)
        return best

    assert longest_shared_span(gen, ref).tolist() == [brute(g) for g in gen]


def test_longest_shared_span_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        longest_shared_span(np.zeros(4, dtype=int), np.zeros((2, 4), dtype=int))


def test_cells_validate_their_fields():
    with pytest.raises(ValueError, match="measure"):
        mz.EvalCell(mzp.preset("tiny").train_cells()[0], "nonsense")
    with pytest.raises(ValueError, match="memory"):
        mz.HopfieldCell("nonsense", DataSpec(), 8, "recovery")
    with pytest.raises(TypeError, match="ts"):
        EvalSettings(ts=[0.1])
    with pytest.raises(ValueError, match="name"):
        mzp.preset("huge")


def test_presets_cover_what_the_experiment_needs():
    import numpy as np

    from amtheory.studies.memorization.training import _param_shapes

    gpu = mzp.preset("gpu")
    # At least three model sizes spanning at least 8x in parameters (embedding and output head included).
    n_params = [sum(t.numel() for t in _param_shapes(a.config(gpu.data.vocab, gpu.data.length))) for a in gpu.archs]
    assert len(gpu.archs) >= 3 and max(n_params) >= 8 * min(n_params)
    # At least ten training sizes, log-spaced, from at most 16 blocks to the whole pool.
    ratios = np.diff(np.log(gpu.sizes))
    assert len(gpu.sizes) >= 10 and min(gpu.sizes) <= 16 and max(gpu.sizes) == mzp.GPU_POOL_BLOCKS
    assert np.all(ratios > 0) and ratios.max() - ratios.min() < 0.05  # rounding to whole blocks
    # Three seeds, two budgets, the five noise levels, and one lockstep group per 30 models.
    assert len(gpu.seeds) >= 3 and len(gpu.budgets) >= 2
    assert gpu.settings.ts == (0.05, 0.1, 0.25, 0.5, 1.0)
    assert gpu.train_group > 1 and gpu.eval_group > 1
    # The budgets are compared by their meeting points: recovery at every budget, every measurement at the longest.
    assert all("recovery" in gpu.measures_of(tc) for tc in gpu.train_cells())
    assert {tuple(gpu.measures_of(tc)) for tc in gpu.train_cells() if tc.steps == 4 * gpu.steps} == {mz.MEASURES}
    tiny = mzp.preset("tiny", sizes=(8, 64))
    assert tiny.sizes == (8, 64) and tiny.data.source == "embedded"
    assert Path(mz.embedded_corpus_path(), "manifest.json").is_file()


def test_model_trained_elsewhere_without_checkpoint_is_trained_again(tmp_path):
    """A train table carried from another machine without its checkpoint must not block pending measurements."""
    import shutil

    from amtheory.core.sweep import result_path

    p = dataclasses.replace(micro_preset(), sizes=micro_preset().sizes[:1], backends=())
    run_experiment(p, tmp_path, device="cpu", progress=False)
    tc = p.train_cells()[0]
    shutil.rmtree(mz.checkpoint_dir(tmp_path, tc))
    pending = result_path(tmp_path / "recovery", mz.EvalCell(tc, "recovery", p.settings))
    pending.unlink()
    before = result_path(tmp_path / "train", tc).stat().st_mtime_ns
    run_experiment(p, tmp_path, device="cpu", progress=False)
    assert pending.exists()
    assert result_path(tmp_path / "train", tc).stat().st_mtime_ns != before


def test_main_job_gpu_preset_runs_on_the_embedded_corpus_up_to_its_whole_pool():
    """The main job needs no prepared data: its GPU preset keeps the gpu preset's models and settings but reads the
    embedded corpus, with sizes at most half the pool and then the pool itself."""
    from amtheory.studies.memorization import load_data
    from amtheory.studies.memorization.presets import main_job_preset, preset

    p, ref = main_job_preset("gpu"), preset("gpu")
    pool = load_data(p.data).n_blocks_available("train", p.data.length)
    assert p.data.source == "embedded" and p.data.length == ref.data.length and p.data.vocab == ref.data.vocab
    assert set(p.archs) <= set(ref.archs) and len(p.archs) >= 2 and p.seeds == (0,) and p.budgets == (1,)
    assert p.sizes[-1] == pool and all(2 * n <= pool for n in p.sizes[:-1]) and len(p.sizes) >= 3
    assert main_job_preset("tiny") == preset("tiny")


def test_command_takes_seeds_budgets_and_models(monkeypatch, tmp_path):
    import amtheory.studies.memorization as mzs
    from amtheory.studies.memorization.command import main

    seen = []

    class Stop(Exception):
        pass

    def fake_run(p, *a, **k):
        seen.append(p)
        raise Stop

    monkeypatch.setattr(mzs, "run_experiment", fake_run)
    with pytest.raises(Stop):
        main(["--preset", "tiny", "--seeds", "0,3", "--budgets", "1,2", "--out", str(tmp_path), "--figures", ""])
    assert seen[0].seeds == (0, 3) and seen[0].budgets == (1, 2)
    assert {c.steps for c in seen[0].train_cells()} == {seen[0].steps, 2 * seen[0].steps}
    with pytest.raises(ValueError, match="--seeds: expected a comma list"):
        main(["--preset", "tiny", "--seeds", "a", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--budgets: expected ints >= 1"):
        main(["--preset", "tiny", "--budgets", "0", "--out", str(tmp_path)])
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--models", "gpu-quick,gpu-micro", "--out", str(tmp_path), "--figures", ""])
    assert [a.name for a in seen[-1].archs] == ["gpu-micro", "gpu-quick"]
    with pytest.raises(ValueError, match="--models: expected 'none' or a comma list of the preset's model sizes"):
        main(["--preset", "gpu", "--models", "gpu-huge", "--out", str(tmp_path)])
    # --models none: the Hopfield family alone, the part of a sweep that can measure while the others train.
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--models", "none", "--out", str(tmp_path), "--figures", ""])
    assert seen[-1].archs == () and seen[-1].train_cells() == [] and len(seen[-1].hopfield_cells("basins")) == 40
    # --hopfield: which Hopfield-family backends run beside the models ("none": the part of a sweep that leaves
    # them to another part).
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--hopfield", "none", "--out", str(tmp_path), "--figures", ""])
    assert seen[-1].backends == () and seen[-1].hopfield_cells("recovery") == []
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--hopfield", "modern,empirical", "--out", str(tmp_path), "--figures", ""])
    assert seen[-1].backends == ("empirical", "modern")
    with pytest.raises(ValueError, match="--hopfield: expected 'none' or a comma list of the preset's backends"):
        main(["--preset", "gpu", "--hopfield", "modern,potts", "--out", str(tmp_path)])
    # --measures: which measurements run ("recovery" alone: a quick probe of which budget memorizes).
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--measures", "kl,recovery", "--out", str(tmp_path), "--figures", ""])
    assert seen[-1].measured() == ["recovery", "kl"]
    with pytest.raises(ValueError, match="--measures: expected a comma list of the preset's measurements"):
        main(["--preset", "gpu", "--measures", "recovery,recall", "--out", str(tmp_path)])
    # --short-budget-measures: what the shorter budgets' models get ("all": every measurement at every budget).
    assert seen[-1].short_budget_measures == ("recovery", "nelbo")  # the gpu preset's
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--short-budget-measures", "basins,recovery", "--out", str(tmp_path), "--figures", ""])
    assert seen[-1].short_budget_measures == ("recovery", "basins")
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--short-budget-measures", "all", "--out", str(tmp_path), "--figures", ""])
    assert seen[-1].short_budget_measures is None
    with pytest.raises(ValueError, match="--short-budget-measures: expected a comma list of the preset's measure"):
        main(["--preset", "gpu", "--short-budget-measures", "recall", "--out", str(tmp_path)])
    # --lr and --batch-size: the training settings a budget probe varies (every model of the run takes them).
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--lr", "3e-3", "--batch-size", "32", "--out", str(tmp_path), "--figures", ""])
    assert {(c.lr, c.batch_size) for c in seen[-1].train_cells()} == {(3e-3, 32)}
    # --precision: bf16 autocast or float32 for every model's training (a probe of whether bf16 memorizes alike).
    with pytest.raises(Stop):
        main(["--preset", "gpu", "--precision", "bf16", "--out", str(tmp_path), "--figures", ""])
    assert {c.bf16 for c in seen[-1].train_cells()} == {True}
    with pytest.raises(Stop):
        main(["--preset", "tiny", "--precision", "fp32", "--out", str(tmp_path), "--figures", ""])
    assert {c.bf16 for c in seen[-1].train_cells()} == {False}
    bad = {"--lr": ("0", "nan", "fast"), "--batch-size": ("0", "2.5", "²"), "--precision": ("fp16", "")}
    expected = {"--lr": "a finite number > 0", "--batch-size": "an int >= 1", "--precision": "'fp32' or 'bf16'"}
    for option, texts in bad.items():
        for text in texts:
            with pytest.raises(ValueError, match=f"{option}: expected {expected[option]}, got {text!r}"):
                main(["--preset", "gpu", option, text, "--out", str(tmp_path)])
