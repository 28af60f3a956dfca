"""Each experiment at its smallest settings (a few seconds, called as a function) and each figure on the result."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from _studies import load_experiment  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def figdir(tmp_path_factory):
    return tmp_path_factory.mktemp("figures")


def check_figure(paths):
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for p in paths:
        assert p.stat().st_size > 5000, p


# ---- capacity ---------------------------------------------------------------------------------------------------
def test_capacity_micro(tmp_path, figdir):
    cap = load_experiment("capacity")
    df = cap.run("micro", str(tmp_path / "capacity"))
    for col in (
        "rule",
        "N",
        "alpha",
        "replicate",
        "K",
        "pattern",
        "fixed_point",
        "one_step_error",
        "final_error",
        "converged",
        "cycled",
        "cell_key",
        "seed",
        "device",
    ):
        assert col in df.columns, col
    assert set(df["rule"]) == {"hebbian", "storkey", "pseudoinverse"}
    for c in ("one_step_error", "final_error"):
        assert df[c].between(0, 1).all()
    # One row per stored pattern.
    assert (df.groupby("cell_key").size() == df.groupby("cell_key")["K"].first()).all()
    fp = df.groupby(["rule", "alpha"])["fixed_point"].mean()
    assert fp[("hebbian", 0.03)] == 1.0  # one pattern: always a fixed point
    assert fp[("hebbian", 0.5)] < 0.5  # far past alpha_c
    assert (fp["pseudoinverse"] == 1.0).all()  # every load < 1
    # A fixed point has zero one-step error and stays exactly where it is.
    fixed = df[df["fixed_point"]]
    assert (fixed["one_step_error"] == 0).all() and (fixed["final_error"] == 0).all()
    from amtheory.figures.capacity import plot_capacity

    check_figure(plot_capacity(tmp_path / "capacity", figdir))


def test_capacity_grids():
    cap = load_experiment("capacity")
    tiny, full = cap.build_cells("tiny"), cap.build_cells("full")
    assert len(set(tiny)) == len(tiny) and len(set(full)) == len(full)
    assert max(c.N for c in full if c.rule == "hebbian") > max(c.N for c in full if c.rule != "hebbian")
    with pytest.raises(ValueError, match="preset"):
        cap.build_cells("huge")


# ---- basins vs load ---------------------------------------------------------------------------------------------
def test_basins_same_patterns_for_every_backend():
    bl = load_experiment("basins_vs_load")
    a = bl.BasinCell("hebbian", 16, 4, 0)
    b = bl.BasinCell("exp", 16, 4, 0)
    c = bl.BasinCell("exp", 16, 4, 1)
    assert torch.equal(bl.stored_patterns(a, "cpu"), bl.stored_patterns(b, "cpu"))
    assert not torch.equal(bl.stored_patterns(b, "cpu"), bl.stored_patterns(c, "cpu"))


def test_basins_micro(tmp_path, figdir):
    bl = load_experiment("basins_vs_load")
    backends = bl.BACKENDS
    assert {"hebbian", "storkey", "pseudoinverse"} <= set(backends)
    df = bl.run("micro", str(tmp_path / "basins"), backends=backends)
    for col in (
        "backend",
        "N",
        "K",
        "load",
        "radius",
        "fraction",
        "fixed_point",
        "median",
        "median_lo",
        "median_hi",
        "median_fraction",
    ):
        assert col in df.columns, col
    assert set(df["backend"]) == set(backends)
    N = int(df["N"].iloc[0])
    assert df["radius"].between(-1, N // 2).all()
    assert (df["median_lo"] <= df["median"] + 1e-9).all() and (df["median"] <= df["median_hi"] + 1e-9).all()
    # Radius -1 exactly when the pattern is not a fixed point.
    assert ((df["radius"] < 0) == ~df["fixed_point"]).all()
    heb = df[df["backend"] == "hebbian"].groupby("K")["radius"].median()
    assert heb.iloc[0] > 0 and heb.iloc[0] >= heb.iloc[-1]  # 2 patterns: a real basin; it does not grow with load
    from amtheory.figures.basins import plot_basins

    check_figure(plot_basins(tmp_path / "basins", figdir))


# ---- dense scaling ----------------------------------------------------------------------------------------------
def test_fixed_point_share_counts_and_stops_early():
    ds = load_experiment("dense_scaling")
    from amtheory.backends.classical import ClassicalHopfield
    from amtheory.core.patterns import iid_patterns

    g = torch.Generator().manual_seed(0)
    xi = iid_patterns(40, 20, generator=g)
    mem = ClassicalHopfield("hebbian").store(xi)
    share, ok, seen = ds.fixed_point_share(mem, xi, threshold=0.0, chunk_elems=10**9)
    expect = float((mem.scores(xi).argmax(-1) == xi).all(-1).double().mean())  # no ties at odd N - 1 couplings
    assert seen == 40 and ok and share == pytest.approx(expect)
    _, ok, seen = ds.fixed_point_share(mem, xi, threshold=1.0, chunk_elems=20 * 40)  # one query per chunk
    assert not ok and seen < 40


def test_dense_scaling_micro(tmp_path, figdir):
    pytest.importorskip("amtheory.backends.dense")
    ds = load_experiment("dense_scaling")
    df = ds.run("micro", str(tmp_path / "dense"))
    for col in ("kind", "n", "N", "replicate", "vocab", "K_max", "K_fail", "censored", "log_K_per_N", "evals"):
        assert col in df.columns, col
    assert (df["K_max"] >= 1).all()
    done = df[~df["censored"]]
    assert (done["K_fail"] > done["K_max"]).all()
    # The bisection's answer is consistent with its own record: K_max passed, K_fail did not.
    import json

    for _, row in done.iterrows():
        ev = {int(k): v for k, v in json.loads(row["evals"]).items()}
        assert ev[row["K_max"]] >= row["threshold"] - 1e-12 and ev[row["K_fail"]] < row["threshold"]
    from amtheory.figures.dense_scaling import fitted_slopes, plot_dense_scaling

    slopes = fitted_slopes(df)
    assert set(slopes) == {2, 3}  # degrees with >= 2 sizes
    check_figure(plot_dense_scaling(tmp_path / "dense", figdir))


def test_dense_scaling_vocab_flag(tmp_path):
    pytest.importorskip("amtheory.backends.dense")
    ds = load_experiment("dense_scaling")
    df = ds.run("micro", str(tmp_path / "dense3"), vocab=3)
    assert (df["vocab"] == 3).all() and (df["K_max"] >= 1).all()
    # Exponential sizes shrink by ln 2 / ln V for V-state patterns.
    assert df[df["kind"] == "exp"]["N"].max() < 10


def test_figure_fitted_slope_recovers_a_power_law():
    from amtheory.figures.dense_scaling import fitted_slopes

    N = np.array([16, 32, 64, 128])
    df = pd.DataFrame({"kind": "poly", "n": 3, "N": N, "K_max": (0.5 * N**2.0).astype(int)})
    assert fitted_slopes(df)[3] == pytest.approx(2.0, abs=0.02)


def test_figures_reject_wrong_tables(tmp_path):
    from amtheory.figures.capacity import plot_capacity

    with pytest.raises(ValueError, match="missing"):
        plot_capacity(pd.DataFrame({"rule": ["hebbian"]}), tmp_path)
    with pytest.raises(FileNotFoundError):
        plot_capacity(tmp_path / "nothing", tmp_path)
