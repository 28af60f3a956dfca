"""The memorization study's data folder: a results folder of several model sizes, seeds and step budgets exported
to six small tables (``amtheory.studies.memorization.export``), every number of the results page computed from them
as from the results themselves, the page and its figures drawn from the data folder alone, and the claims' verdicts
undecided where an interval is missing."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _studies import load_experiment

from amtheory.studies.memorization import DataSpec, EvalSettings, ModelSpec, Preset, run_experiment, summarize
from amtheory.studies.memorization import claims as cl
from amtheory.studies.memorization import meetings as mt
from amtheory.studies.memorization.export import CELL, DATA_FILES, export_results, read_results
from amtheory.studies.memorization.rates import meeting_interval, meeting_trend, rates_of_stats, recovery_stats
from amtheory.studies.memorization.summary import open_data, pool_means, read_data

torch.set_num_threads(1)
N_BOOT = 200


def seeds_preset() -> Preset:
    """Two model sizes, three training sizes, two seeds, two step budgets: 24 small models."""
    return Preset(
        name="seeds",
        data=DataSpec("embedded", 12, 128),
        archs=(ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0),
               ModelSpec("wide", d_model=32, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0)),
        sizes=(2, 8, 32),
        steps=30,
        batch_size=4,
        lr=3e-3,
        warmup=2,
        ema=0.9,
        settings=EvalSettings(n_eval=4, ts=(0.25, 0.5), n_steps=4, n_basin=3, basin_trials=2, basin_steps=2,
                              n_generate=4, nelbo_ts=2, kl_ts=(0.5,), empirical_steps=3, hopfield_max_iter=3,
                              modern_max_bytes=50_000),
        checkpoint_every=1000,
        seeds=(0, 1),
        budgets=(1, 2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("memorization_seeds")
    p = seeds_preset()
    run_experiment(p, root / "results", device="cpu", progress=False)
    paths = export_results(root / "results", root / "data")
    return p, root / "results", root / "data", paths


# ---------------------------------------------------------------------------------------------------------------
# The export
# ---------------------------------------------------------------------------------------------------------------
def test_export_writes_six_small_tables_named_by_cell(seeds_run):
    p, results, data_dir, paths = seeds_run
    assert [q.name for q in paths] == list(DATA_FILES) and sorted(q.name for q in data_dir.iterdir()) == sorted(
        DATA_FILES
    )
    assert sum(q.stat().st_size for q in paths) < 2_000_000
    d = read_data(data_dir)
    for name in ("models", "recovery", "means", "basins", "trajectory"):
        assert set(CELL) <= set(getattr(d, name).columns), name
    # One row per trained model, its training seed found although the training table's own seed column is the
    # runner's.
    m = d.models
    assert len(m) == len(p.train_cells()) and set(m["seed"]) == {0, 1} and set(m["steps"]) == {30, 60}
    assert set(zip(m["model_size"], m["steps"], m["train_size"], m["seed"])) == {
        (tc.arch.name, tc.steps, tc.n_train, tc.seed) for tc in p.train_cells()
    }
    assert d.budgets() == [30, 60] and d.model_sizes() == ["nano", "wide"] and d.seeds() == [0, 1]
    # The Hopfield family has no step budget or seed; its rows are there once per memory, size, split and t.
    hop = d.recovery[d.recovery["backend"] != "uddm"]
    assert hop["steps"].isna().all() and hop["seed"].isna().all()
    assert not hop[hop["applicable"]].duplicated(["backend", "train_size", "split", "t"]).any()
    # A quantity measured on some splits only (the verbatim flag: generated blocks) has rows for those alone.
    assert (d.means["count"] > 0).all()
    assert set(d.measure("generation", "verbatim")["split"]) == {"generated"}
    # The example figure's token rows come decoded.
    ex = d.run["examples"]
    assert ex and all(set(map(str, e["x0"])) <= set(e["words"]) for e in ex)


def _raw_uddm(results: Path, name: str) -> pd.DataFrame:
    df = read_results(results)[name]
    df = df[df["backend"] == "uddm"]
    return df[df["applicable"].astype(bool)] if "applicable" in df else df


def test_every_number_from_the_data_folder_equals_the_results(seeds_run):
    _, results, data_dir, _ = seeds_run
    d = read_data(data_dir)
    # Recovery rates pooled over blocks and seeds, with their clustered SE and Wilson interval, to 1e-12.
    rec = _raw_uddm(results, "recovery")
    keys = ["model_size", "train.steps", "train_size", "split", "t"]
    raw = rates_of_stats(recovery_stats(rec, keys), keys).rename(columns={"train.steps": "steps"})
    got = cl.rates(d)
    got = got[got["backend"] == "uddm"].astype({"steps": int})
    both = raw.merge(got, on=["model_size", "steps", "train_size", "split", "t"], suffixes=("_raw", ""))
    assert len(both) == len(raw) == len(got) > 0
    for c in ("rate", "se", "low", "high", "tokens", "evaluated"):
        assert np.allclose(both[f"{c}_raw"], both[c], rtol=0, atol=1e-12, equal_nan=True), c
    # The meeting point and its bootstrap over seeds, and the trend over model sizes, as from the block rows.
    meet = mt.meetings(d, n_boot=N_BOOT).set_index(["model_size", "steps", "t"])
    for (ms, steps, t), g in rec.groupby(["model_size", "train.steps", "t"]):
        r = meet.loc[(ms, int(steps), t)]
        assert {k: r[k] for k in ("size", "low", "high", "seeds")} == meeting_interval(g, "train.seed", n_boot=N_BOOT)
    params = d.params()
    trend = mt.trends(d, n_boot=N_BOOT).set_index(["steps", "t"])
    for (steps, t), g in rec.groupby(["train.steps", "t"]):
        want = meeting_trend(g, "train.seed", params, n_boot=N_BOOT)
        r = trend.loc[(int(steps), t)]
        assert all(r[k] == want[k] or (math.isnan(r[k]) and math.isnan(want[k])) for k in ("log2_ratio", "low", "high"))
    # Test NELBO: the mean over seeds of each seed's block mean, with its t interval over seeds.
    nel = _raw_uddm(results, "nelbo")
    nel = nel[nel["split"] == "test"]
    per_seed = nel.groupby(["model_size", "train.steps", "train_size", "train.seed"])["nelbo"].mean()
    by_model = per_seed.groupby(level=[0, 1, 2])
    curve = cl.nelbo_curve(d).set_index(["model_size", "steps", "train_size"])
    for (ms, steps, n), v in by_model:
        r = curve.loc[(ms, int(steps), n)]
        assert r["mean"] == pytest.approx(v.mean(), abs=1e-9) and r["se"] == pytest.approx(v.sem(), abs=1e-9)
    # Means over the blocks of every seed: generation entropy, KL, the trajectory; per-block basin radii.
    gen = _raw_uddm(results, "generation")
    ent = pool_means(d.measure("generation", "entropy"), ["model_size", "steps", "train_size", "split"])
    ent = ent.set_index(["model_size", "steps", "train_size", "split"])
    for (ms, steps, n, split), v in gen.groupby(["model_size", "train.steps", "train_size", "split"]):
        r = ent.loc[(ms, int(steps), n, split)]
        assert r["mean"] == pytest.approx(v["entropy"].mean(), abs=1e-9)
        assert r["se"] == pytest.approx(v["entropy"].sem(), abs=1e-9) and r["count"] == len(v)
    kl = _raw_uddm(results, "kl")
    klp = pool_means(d.measure("kl", "kl"), ["model_size", "steps", "train_size", "split", "t"])
    assert np.allclose(klp["mean"], kl.groupby(["model_size", "train.steps", "train_size", "split", "t"])["kl"].mean())
    tr = _raw_uddm(results, "trajectory")
    kept = set(d.trajectory["step"])
    tr = tr[tr["step"].isin(kept)]
    tp = pool_means(d.trajectory.rename(columns={"gap_mean": "mean", "gap_sd": "sd"}),
                    ["model_size", "steps", "train_size", "step"])  # fmt: skip
    assert np.allclose(tp["mean"], tr.groupby(["model_size", "train.steps", "train_size", "step"])["gap"].mean())
    bas = _raw_uddm(results, "basins")
    med = bas.groupby(["model_size", "train.steps", "train_size", "split"])["radius"].median()
    got_b = d.basins[d.basins["backend"] == "uddm"].astype({"radius": float})
    assert np.array_equal(med.to_numpy(), got_b.groupby(["model_size", "steps", "train_size", "split"])["radius"]
                          .median().to_numpy())  # fmt: skip


def test_the_precision_table_separates_the_sizes_whose_every_training_block_is_measured(seeds_run):
    # At a training size of at most n_eval blocks every training block is measured, so that more evaluation blocks
    # cannot lower its standard error; the table gives the largest over the larger sizes apart.
    from amtheory.studies.memorization.meetings import SE_TARGET, differences, precision

    p, _, data_dir, _ = seeds_run
    d = read_data(data_dir)
    diffs, got = differences(d), precision(d).set_index(["model_size", "steps", "t"])
    n_eval = p.settings.n_eval
    assert {n for n in p.sizes if n <= n_eval} and {n for n in p.sizes if n > n_eval}
    for key, g in diffs.groupby(["model_size", "steps", "t"]):
        sampled = g[g["train_size"] > n_eval]
        row = got.loc[key]
        assert row["max_se"] == g["diff_se"].max()
        assert row["max_se_sampled"] == sampled["diff_se"].max()
        assert row["at_sampled"] == sampled.loc[sampled["diff_se"].idxmax(), "train_size"]
        assert row["within_sampled"] == (row["max_se_sampled"] <= SE_TARGET)


# ---------------------------------------------------------------------------------------------------------------
# The page and the figures from the data folder alone
# ---------------------------------------------------------------------------------------------------------------
def test_page_from_the_data_folder_equals_the_page_from_the_results(seeds_run):
    from amtheory.reports.memorization import build_page

    _, results, data_dir, _ = seeds_run
    page = build_page(read_data(data_dir), n_boot=N_BOOT)
    assert page == build_page(open_data(results), n_boot=N_BOOT)
    for claim in "abcdefg":
        assert f"## ({claim}) " in page and f"| ({claim}) |" in page
    assert page.count("**reproduced**") + page.count("**not reproduced**") + page.count("**undecided**") > 20
    assert "within 0.01" in page and "seeds: 2" not in page
    assert "At a training set of at most 4 blocks every training block is measured" in page
    # (f) says, with or without a peak, where the bound is largest relative to where the recovery curves meet.
    bullets = [ln for ln in page.split("\n## (f) ")[1].split("\n## ")[0].splitlines() if ln.startswith("- ")]
    assert bullets and all("recovery meet at" in ln or "do not meet" in ln for ln in bullets), bullets
    assert "30 steps (x1)" in page and "60 steps (x2)" in page


def test_page_and_figures_open_nothing_outside_the_data_folder(seeds_run, tmp_path):
    import matplotlib

    _, results, data_dir, _ = seeds_run
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    allowed = [data, tmp_path / "docs", Path(sys.prefix), Path(sys.base_prefix), Path(matplotlib.get_cachedir()),
               Path(matplotlib.get_configdir()), Path(__file__).resolve().parents[1] / "amtheory"]  # fmt: skip
    opened: list[str] = []
    watching = [True]

    def hook(event, args):
        if watching[0] and event == "open" and isinstance(args[0], (str, bytes, Path)):
            opened.append(str(args[0] if not isinstance(args[0], bytes) else args[0].decode()))

    sys.addaudithook(hook)
    try:
        page = load_experiment("summarize_memorization").main(
            ["--data", str(data), "--out", str(tmp_path / "docs" / "results.md"), "--figures",
             str(tmp_path / "docs" / "figures"), "--n-boot", str(N_BOOT)]
        )  # fmt: skip
    finally:
        watching[0] = False
    outside = [f for f in opened if not f.startswith(("/dev/", "/proc/", "/sys/", "/etc/"))
               and not any(Path(f).resolve().is_relative_to(a.resolve()) for a in allowed)]  # fmt: skip
    assert not outside, outside[:5]
    assert not any(str(results) in f for f in opened)
    assert "](figures/memorization_recovery.png)" in page
    drawn = {q.name for q in (tmp_path / "docs" / "figures").iterdir()}
    for stem in ("recovery", "backends", "basins", "entropy", "perplexity", "extraction", "example", "trajectory"):
        assert f"memorization_{stem}.png" in drawn


def _one_seed(data_dir: Path, dest: Path) -> Path:
    shutil.copytree(data_dir, dest)
    for name in DATA_FILES:
        if name.endswith(".csv"):
            df = pd.read_csv(dest / name)
            df[df["seed"].isna() | (df["seed"] == 0)].to_csv(dest / name, index=False)
    return dest


def test_one_seed_leaves_every_claim_that_needs_an_interval_undecided(seeds_run, tmp_path):
    from amtheory.reports.memorization import build_page

    d = read_data(_one_seed(seeds_run[2], tmp_path / "one"))
    assert d.seeds() == [0]
    assert set(mt.meetings(d, n_boot=N_BOOT)["verdict"]) == {cl.UNDECIDED}
    assert set(mt.trends(d, n_boot=N_BOOT)["verdict"]) == {cl.UNDECIDED}
    assert set(mt.budget_shifts(d, n_boot=N_BOOT)["verdict"]) == {cl.UNDECIDED}
    assert set(cl.perplexity_curve(d)["verdict"]) == {cl.UNDECIDED}
    page = build_page(d, n_boot=N_BOOT)
    assert "one seed: no interval" in page


# ---------------------------------------------------------------------------------------------------------------
# The verdict rules on hand-made numbers
# ---------------------------------------------------------------------------------------------------------------
def _nelbo_data(means: dict[int, list[float]]):
    """A data folder's tables with only test NELBO means: per training size, one block mean per seed."""
    from amtheory.studies.memorization.summary import MemorizationData

    rows = [{"backend": "uddm", "model_size": "m", "steps": 10, "train_size": n, "seed": s, "measure": "nelbo",
             "quantity": "nelbo", "split": "test", "t": np.nan, "count": 8, "mean": v, "sd": 0.1, "min": v, "max": v}
            for n, vs in means.items() for s, v in enumerate(vs)]  # fmt: skip
    return MemorizationData(Path("."), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(rows), pd.DataFrame(),
                            pd.DataFrame())  # fmt: skip


def test_a_peak_needs_an_interval_above_both_neighbours():
    peak = cl.perplexity_curve(_nelbo_data({4: [5.0, 5.1, 4.9], 16: [7.0, 7.1, 6.9], 64: [3.0, 3.1, 2.9]})).iloc[0]
    assert peak["verdict"] == cl.REPRODUCED and peak["peak"] == 16
    falls = cl.perplexity_curve(_nelbo_data({4: [7.0, 7.1, 6.9], 16: [5.0, 5.1, 4.9], 64: [3.0, 3.1, 2.9]})).iloc[0]
    assert falls["verdict"] == cl.NOT_REPRODUCED and falls["peak"] is None and falls["argmax"] == 4
    noisy = cl.perplexity_curve(_nelbo_data({4: [5.0, 3.0, 4.0], 16: [7.0, 3.0, 5.0], 64: [3.0, 3.1, 2.9]})).iloc[0]
    assert noisy["verdict"] == cl.UNDECIDED
    one = cl.perplexity_curve(_nelbo_data({4: [5.0], 16: [7.0], 64: [3.0]})).iloc[0]
    assert one["verdict"] == cl.UNDECIDED and one["seeds"] == 1


def test_a_claim_is_reproduced_only_when_every_row_is():
    assert cl.combine([cl.REPRODUCED, cl.REPRODUCED]) == cl.REPRODUCED
    assert cl.combine([cl.NOT_REPRODUCED]) == cl.NOT_REPRODUCED
    assert cl.combine([cl.REPRODUCED, cl.NOT_REPRODUCED]) == cl.UNDECIDED
    assert cl.combine([]) == cl.UNDECIDED
    assert mt.reference_t([0.05, 0.1, 0.25, 0.5, 1.0]) == 0.25 and mt.reference_t([0.1, 0.5, 1.0]) == 0.5


# ---------------------------------------------------------------------------------------------------------------
# Bad input, and the run's own summary with several seeds and budgets
# ---------------------------------------------------------------------------------------------------------------
def test_bad_input_is_refused_naming_the_argument(seeds_run, tmp_path):
    data_dir = seeds_run[2]
    with pytest.raises(FileNotFoundError, match="data: .*no such folder"):
        read_data(tmp_path / "nothing")
    partial = tmp_path / "partial"
    shutil.copytree(data_dir, partial)
    (partial / "basins.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"data: .*missing \['basins.csv'\]"):
        read_data(partial)
    pd.read_csv(data_dir / "basins.csv").drop(columns="radius").to_csv(partial / "basins.csv", index=False)
    with pytest.raises(ValueError, match=r"data: .*basins.csv, missing \['radius'\]"):
        read_data(partial)
    with pytest.raises(FileNotFoundError, match="results: expected a results folder"):
        export_results(data_dir, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="log: "):
        export_results(seeds_run[1], tmp_path / "out", log=tmp_path / "no.log")
    with pytest.raises(FileNotFoundError, match="source: "):
        open_data(tmp_path)
    main = load_experiment("summarize_memorization").main
    for argv in ([], ["--data", str(data_dir), "--log", "x.log", "--out", str(tmp_path / "p.md")]):
        with pytest.raises(SystemExit):
            main(argv)


def test_the_page_shows_the_command_the_export_recorded(seeds_run, tmp_path):
    from amtheory.reports.memorization import build_page

    command = "python experiments/memorization.py --preset tiny --seeds 0,1 --budgets 1,2 --out R"
    export_results(seeds_run[1], tmp_path / "data", command=command)
    page = build_page(read_data(tmp_path / "data"), n_boot=N_BOOT)
    assert command in page and "--preset gpu --out results/memorization_gpu" not in page
    main = load_experiment("summarize_memorization").main
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "data"), "--command", command, "--out", str(tmp_path / "p.md")])


def test_the_page_names_the_data_folder_it_was_built_from(seeds_run, tmp_path):
    # A page built from another folder (a benchmark's data, say) must not claim the committed results' folder.
    main = load_experiment("summarize_memorization").main
    page = main(["--data", str(seeds_run[2]), "--out", str(tmp_path / "p.md"), "--n-boot", str(N_BOOT)])
    assert f"from the data folder `{seeds_run[2].as_posix()}/`" in page and "docs/data/memorization" not in page


def test_run_summary_names_each_budget_and_pools_the_seeds(seeds_run):
    s = summarize(seeds_run[1])
    assert set(s["meeting"]) == {f"{m} ({b} steps)" for m in ("nano", "wide") for b in (30, 60)}
    assert all(v["seeds"] == 2 for by_t in s["meeting_interval"].values() for v in by_t.values())
    assert set(s["meeting_trend"]) == {0.25, 0.5}


def test_a_run_without_the_hopfield_family_or_some_measures_still_makes_its_page(seeds_run, tmp_path):
    from amtheory.core.sweep.files import checksum_path, read_table
    from amtheory.reports.memorization import build_page

    results = tmp_path / "results"
    shutil.copytree(seeds_run[1], results, ignore=shutil.ignore_patterns("checkpoints"))
    for name in ("recovery", "basins"):  # the UDDM's tables only: every basin row is applicable
        for q in (results / name).glob("*.parquet"):
            if (read_table(q)["backend"] != "uddm").any():
                checksum_path(q).unlink()
                q.unlink()
    for name in ("kl", "trajectory", "fixed_points"):
        shutil.rmtree(results / name)
    d = read_data(export_results(results, tmp_path / "data")[0].parent)
    assert set(d.recovery["backend"]) == {"uddm"} and d.trajectory.empty
    page = build_page(d, n_boot=N_BOOT)
    assert "No Hopfield-family memory was measured." in page and "## (g) " in page


def test_data_folders_of_parts_of_a_sweep_merge_into_the_whole(seeds_run, tmp_path):
    """Two exports of one sweep, one model size each (the Hopfield family in both, as each part runs it): their
    merge holds every row of the whole export once, and keeps both commands."""
    from amtheory.studies.memorization.data_merge import merge_data

    data_dir = seeds_run[2]
    parts = []
    for k, size in enumerate(("nano", "wide")):
        part = tmp_path / f"part{k}"
        part.mkdir()
        for name in DATA_FILES:
            if name == "run.json":
                run = json.loads((data_dir / name).read_text())
                (part / name).write_text(json.dumps({**run, "command": f"run --models {size}", "results": f"R{k}"}))
                continue
            df = pd.read_csv(data_dir / name, dtype=str, keep_default_na=False)
            df[(df["model_size"] == size) | (df["backend"] != "uddm")].to_csv(part / name, index=False)
        parts.append(part)
    merge_data(parts, tmp_path / "merged")
    for name in (n for n in DATA_FILES if n.endswith(".csv")):
        whole = pd.read_csv(data_dir / name, dtype=str, keep_default_na=False)
        merged = pd.read_csv(tmp_path / "merged" / name, dtype=str, keep_default_na=False)
        assert sorted(map(tuple, merged.to_numpy())) == sorted(map(tuple, whole.to_numpy())), name
    run = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert run["command"] == "run --models nano\nrun --models wide"
    read_data(tmp_path / "merged")  # a data folder like any other
    # Parts of different sweeps are refused, naming what differs; so are too few folders.
    other = tmp_path / "other"
    shutil.copytree(parts[1], other)
    run = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**run, "settings": {**run["settings"], "n_eval": 99}}))
    with pytest.raises(ValueError, match="folders: .*another 'settings'"):
        merge_data([parts[0], other], tmp_path / "bad")
    with pytest.raises(TypeError, match="folders: expected two or more"):
        merge_data([parts[0]], tmp_path / "bad")
    main = load_experiment("summarize_memorization").main
    with pytest.raises(SystemExit):
        main(["--export", str(seeds_run[1]), "--merge", str(parts[0]), str(parts[1]), "--data", str(tmp_path / "x")])
    # Parts that ran side by side, each resumed over several jobs: the run's wall time is what the caller measured
    # across the jobs, not the sum of the parts' totals, and the page states it.
    page = main(["--merge", str(parts[0]), str(parts[1]), "--data", str(tmp_path / "timed"), "--wall-s", "1234.5",
                 "--out", str(tmp_path / "page.md")])  # fmt: skip
    assert json.loads((tmp_path / "timed" / "run.json").read_text())["log"]["total_s"] == 1234.5
    assert "The whole run took 1,234 s (20.6 min)" in page
    # Each part's commands: its run and the export of its results folder, one line each, then the merge.
    for k, size in enumerate(("nano", "wide")):
        assert (
            f"run --models {size}\npython experiments/summarize_memorization.py --export R{k} --data PART{k + 1} "
            in page
        )
    assert f"--merge PART1 PART2 --data {(tmp_path / 'timed').as_posix()}\n" in page
    for bad in (["--wall-s", "-1", "--merge", str(parts[0]), str(parts[1])], ["--wall-s", "10", "--out", "p.md"]):
        with pytest.raises(SystemExit):
            main([*bad, "--data", str(tmp_path / "y")])


def test_the_page_states_the_precision_the_models_trained_in(seeds_run):
    """bf16 autocast is a CUDA setting: a CPU run with the flag set trained in float32, and the page says so."""
    from amtheory.reports.memorization import build_page

    page = build_page(read_data(seeds_run[2]), n_boot=N_BOOT)
    assert "float32 (bf16 autocast applies on CUDA only)" in page and "bf16: True" not in page


def test_the_training_time_counts_each_group_once_and_says_when_it_is_missing(seeds_run):
    """Members of a training group carry their group's wall time: the page's total counts each group once, and
    rows whose training time is not recorded are named as such instead of adding nothing."""
    import dataclasses

    from amtheory.reports.memorization.setup import section_run

    data = read_data(seeds_run[2])
    m = data.models.copy()
    alone = section_run(data, None)
    assert f"training took {m['wall_s'].sum():,.0f} s in all" in alone
    m["wall_s"], m["group_size"] = 60.0, len(m)  # all the models in one group of 60 s
    assert "training took 60 s in all" in section_run(dataclasses.replace(data, models=m), None)
    m.loc[m.index[:2], "wall_s"] = float("nan")
    text = section_run(dataclasses.replace(data, models=m), None)
    # Each member carries its share of the group's time: the 22 recorded shares of 60 s / 24.
    assert (
        f"training took {60 * (len(m) - 2) / len(m):,.0f} s in all for {len(m) - 2} of them (not recorded for 2)"
        in text
    )


def test_the_page_shows_no_nan_for_models_a_job_only_loaded(seeds_run, tmp_path):
    # A model trained by an earlier job and found trained by the one that wrote its row ran 0 steps in that job: its
    # milliseconds per step are unknown (NaN in the table) and the page says so with a dash, not "nan".
    from amtheory.reports.memorization import build_page

    data = tmp_path / "data"
    shutil.copytree(seeds_run[2], data)
    models = pd.read_csv(data / "models.csv", dtype=str, keep_default_na=False)
    models.loc[models["model_size"] == "nano", ["steps_run", "ms_per_step"]] = ["0", ""]
    models.to_csv(data / "models.csv", index=False)
    page = build_page(read_data(data), n_boot=N_BOOT)
    run_section = page.split("## Commands, machine")[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in run_section.splitlines() if line.startswith("| nano")]
    assert rows and all(len(r) == 8 and r[6] == "–" for r in rows), rows[:2]
    assert "nan" not in {c.strip() for r in rows for c in r}


def test_the_page_names_the_models_left_unmeasured_or_measured_in_part(seeds_run, tmp_path):
    # A run cut short: one budget of one model size never measured, another measured for recovery alone. The page
    # says so per model size and budget, naming the measurements that are missing, before any claim.
    from amtheory.reports.memorization import build_page

    data = tmp_path / "data"
    shutil.copytree(seeds_run[2], data)
    for name in ("recovery.csv", "means.csv", "basins.csv", "trajectory.csv"):
        df = pd.read_csv(data / name, dtype=str, keep_default_na=False)
        cut = (df["model_size"] == "nano") & (df["steps"] == "30")
        if name != "recovery.csv":
            cut |= (df["model_size"] == "wide") & (df["steps"] == "60")
        df[~cut].to_csv(data / name, index=False)
    page = build_page(read_data(data), n_boot=N_BOOT)
    head = page.split("\n## (a)")[0]
    assert "nano, 30 steps (x1): 6 of 6 models not measured" in head, head[-1500:]
    assert "wide, 60 steps (x2): 6 of 6 models measured in part (no basins, fixed_points, generation, kl, nelbo, " \
           "trajectory)" in head, head[-1500:]  # fmt: skip
    complete = build_page(read_data(seeds_run[2]), n_boot=N_BOOT)
    assert "not measured" not in complete and "measured in part" not in complete


def _cut(seeds_run, tmp_path, name: str, drop) -> Path:
    """A copy of the two-seed run's data folder without the rows of its table ``name`` that ``drop`` selects."""
    data = tmp_path / "data"
    shutil.copytree(seeds_run[2], data)
    df = pd.read_csv(data / name, dtype=str, keep_default_na=False)
    cut = drop(df)
    assert cut.any()
    df[~cut].to_csv(data / name, index=False)
    return data


def _drawn(draw, data: Path, tmp_path, monkeypatch):
    """The figure ``draw`` makes of the data folder ``data``, held open instead of saved."""
    from amtheory.figures import memorization as figs

    seen = []
    monkeypatch.setattr(figs, "save", lambda fig, out, name: seen.append(fig) or [])
    draw(read_data(data), tmp_path)
    return seen[0]


def _nano_30(df):
    return (df["model_size"] == "nano") & (df["steps"] == "30")


def test_a_recovery_panel_without_measurements_says_so(seeds_run, tmp_path, monkeypatch):
    # A run cut short trains a model size at a budget it never measures: its panel in the recovery figure says "not
    # measured" instead of standing empty beside the others.
    from amtheory.figures import memorization as figs

    fig = _drawn(figs.fig_recovery, _cut(seeds_run, tmp_path, "recovery.csv", _nano_30), tmp_path, monkeypatch)
    panels = {ax.get_title(): "".join(t.get_text() for t in ax.texts) for ax in fig.axes if ax.get_title()}
    assert panels["nano, 30 steps"] == "not measured", panels
    assert all(text == "" for title, text in panels.items() if title != "nano, 30 steps"), panels


def test_the_perplexity_figure_names_only_what_it_draws(seeds_run, tmp_path, monkeypatch):
    # A model size and budget without NELBO rows gets no line and no legend entry.
    from amtheory.figures import memorization as figs

    data = _cut(seeds_run, tmp_path, "means.csv", lambda df: _nano_30(df) & (df["measure"] == "nelbo"))
    fig = _drawn(figs.fig_perplexity, data, tmp_path, monkeypatch)
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert not any("nano, 30 steps, " in label for label in labels), labels
    assert any("nano, 60 steps, test" in label for label in labels), labels


def test_the_backends_figure_names_only_what_it_draws(seeds_run, tmp_path, monkeypatch):
    # A model size and budget without recovery rows gets no line and no legend entry; without a Hopfield-family
    # memory the title does not claim one.
    from amtheory.figures import memorization as figs

    data = _cut(seeds_run, tmp_path, "recovery.csv", lambda df: _nano_30(df) | (df["backend"] != "uddm"))
    fig = _drawn(figs.fig_backends, data, tmp_path, monkeypatch)
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert not any("nano, 30 steps" in label for label in labels) and any("nano, 60 steps" in x for x in labels)
    assert "no Hopfield-family memory measured" in fig._suptitle.get_text()


def test_the_extraction_figure_names_only_what_it_draws(seeds_run, tmp_path, monkeypatch):
    from amtheory.figures import memorization as figs

    fig = _drawn(figs.fig_extraction, _cut(seeds_run, tmp_path, "means.csv", _nano_30), tmp_path, monkeypatch)
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert labels and not any("nano, 30 steps" in label for label in labels), labels


def test_the_probe_reference_comes_from_the_budget_that_memorizes_most(seeds_run):
    # The probe's "memorizing" row must come from the longest training, where the smallest sets are memorized: at
    # a short budget the smallest set's entropies are those of an undertrained model, not of a memorizing one.
    from amtheory.reports.memorization import probe_reference

    data = read_data(seeds_run[2])
    ref = probe_reference(data, "nano", "test")
    assert ref["steps"] == 60
    gen = data.measure("generation", "entropy")
    g = gen[(gen["model_size"] == "nano") & (gen["steps"] == 60)]
    pooled = pool_means(g, ["train_size", "split"]).set_index(["train_size", "split"])["mean"]
    for row, n in zip(ref["rows"], (2, 32), strict=True):
        assert row["train_size"] == n
        assert row["train"] == pytest.approx(float(pooled[(n, "train")]))
        assert row["generated"] == pytest.approx(float(pooled[(n, "generated")]))
