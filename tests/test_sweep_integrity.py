"""The sweep runner's tables can be trusted: damaged or misplaced tables are named and recomputed, a table belongs to
one root seed, readers refuse to average different settings, and killing the launcher ends its workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from amtheory.core import sweep
from amtheory.core.sweep import derive_seed, load_results, run_sweep

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Cell:
    n: int
    rule: str = "sync"


def draw(cell: Cell, generator: torch.Generator, device: str) -> pd.DataFrame:
    """A few random draws per cell: enough rows that a bit flip can land in the data."""
    x = torch.rand(64, generator=generator, dtype=torch.float64)
    return pd.DataFrame({"i": range(64), "u": x.numpy(), "twice_n": [2 * cell.n] * 64})


def counting(calls: list):
    def fn(cell, generator, device):
        calls.append(cell.n)
        return draw(cell, generator, device)

    return fn


def tables(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def table_of(folder: Path, cell: Cell, root_seed: int = 0) -> Path:
    """The table file of ``cell``, found by its content (the reader does not rely on how names are formed)."""
    for p in tables(folder):
        df = pd.read_parquet(p)
        if (df["n"] == cell.n).all() and (df["seed"] == derive_seed(root_seed, cell)).all():
            return p
    raise AssertionError(f"no table of {cell} in {folder}")


def sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["n", "i"]).reset_index(drop=True)


# ---- damaged tables ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_torn_table_named_moved_aside_and_recomputed(tmp_path, damage, capsys):
    cells = [Cell(n) for n in range(3)]
    first = run_sweep(cells, draw, tmp_path, progress=False)
    victim = table_of(tmp_path, cells[1])
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"")

    with pytest.raises(ValueError, match=victim.name):
        load_results(tmp_path)
    with pytest.raises(ValueError, match=victim.name):
        load_results(tmp_path, cells)

    calls: list[int] = []
    again = run_sweep(cells, counting(calls), tmp_path, progress=False)
    assert calls == [1]  # only the damaged cell is computed again
    pd.testing.assert_frame_equal(sorted_frame(again), sorted_frame(first))
    err = capsys.readouterr().err
    assert victim.name in err and "damaged" in err
    # Moved aside, not deleted, and out of the readers' way.
    kept = [p for p in (tmp_path / "damaged").iterdir() if p.name.startswith(victim.name)]
    assert len(kept) == 1
    assert kept[0].stat().st_size == (len(data) // 2 if damage == "truncate" else 0)
    assert not kept[0].name.endswith(".parquet")
    pd.testing.assert_frame_equal(sorted_frame(load_results(tmp_path)), sorted_frame(first))


def test_every_bit_flip_is_detected(tmp_path):
    cells = [Cell(0)]
    run_sweep(cells, draw, tmp_path, progress=False)
    path = tables(tmp_path)[0]
    good = path.read_bytes()
    # Positions spread over the whole file: data pages, page headers, statistics, the footer and the magic bytes.
    positions = sorted({*range(0, len(good), max(1, len(good) // 40)), len(good) - 1, len(good) - 6})
    undetected = []
    for pos in positions:
        bad = bytearray(good)
        bad[pos] ^= 0x10
        path.write_bytes(bytes(bad))
        try:
            load_results(tmp_path, cells)
        except ValueError as exc:
            assert path.name in str(exc), exc
        else:
            undetected.append(pos)
    path.write_bytes(good)
    assert undetected == [], f"bit flips at bytes {undetected} of {len(good)} were read back without an error"
    assert len(load_results(tmp_path, cells)) == 64


def test_repeated_damage_keeps_every_damaged_copy(tmp_path, capsys):
    cells = [Cell(0)]
    run_sweep(cells, draw, tmp_path, progress=False)
    for _ in range(2):
        path = tables(tmp_path)[0]
        path.write_bytes(path.read_bytes()[:-3])
        run_sweep(cells, draw, tmp_path, progress=False)
    kept = sorted(p.name for p in (tmp_path / "damaged").iterdir() if ".parquet" in p.name)
    assert len(kept) == 2 and len(set(kept)) == 2, kept
    assert len(tables(tmp_path)) == 1


def test_table_under_another_cells_name_is_detected(tmp_path, capsys):
    cells = [Cell(0), Cell(1)]
    first = run_sweep(cells, draw, tmp_path, progress=False)
    a, b = table_of(tmp_path, cells[0]), table_of(tmp_path, cells[1])
    # Everything that belongs to a's table is copied under b's name (its checksum file too, where there is one).
    for pa in tmp_path.iterdir():
        if pa.is_file() and pa.name.startswith(a.stem):
            (tmp_path / pa.name.replace(a.stem, b.stem)).write_bytes(pa.read_bytes())
    with pytest.raises(ValueError, match=b.name):
        load_results(tmp_path)
    with pytest.raises(ValueError, match=b.name):
        load_results(tmp_path, cells)
    calls: list[int] = []
    again = run_sweep(cells, counting(calls), tmp_path, progress=False)
    assert calls == [1]
    pd.testing.assert_frame_equal(sorted_frame(again), sorted_frame(first))
    assert b.name in capsys.readouterr().err


def test_table_without_checksum_is_named(tmp_path):
    # A parquet file that the runner did not write (or whose checksum was lost) is not read as a result.
    pd.DataFrame({"n": [1], "cell_key": ["0" * 64]}).to_parquet(tmp_path / ("0" * 64 + ".parquet"), index=False)
    with pytest.raises(ValueError, match="0" * 64 + ".parquet"):
        load_results(tmp_path)


def test_table_of_older_format_of_a_cell_moved_aside(tmp_path, capsys):
    # A table named by the cell alone, as the runner used to write them, is neither read nor overwritten.
    cells = [Cell(0)]
    old = tmp_path / f"{sweep.cell_key(cells[0])}.parquet"
    pd.DataFrame({"n": [0], "u": [0.5]}).to_parquet(old, index=False)
    calls: list[int] = []
    run_sweep(cells, counting(calls), tmp_path, progress=False)
    assert calls == [0]
    assert not old.exists()
    assert any(p.name.startswith(old.name) for p in tmp_path.rglob("*") if p.is_file() and p.parent != tmp_path)
    assert old.name in capsys.readouterr().err
    assert len(load_results(tmp_path)) == 64


# ---- identity of results: the root seed -------------------------------------------------------------------------
def test_other_root_seed_into_same_folder_recomputes(tmp_path):
    cells = [Cell(n) for n in range(3)]
    calls: list[int] = []
    zero = run_sweep(cells, counting(calls), tmp_path, root_seed=0, progress=False)
    calls.clear()
    one = run_sweep(cells, counting(calls), tmp_path, root_seed=1, progress=False)
    assert calls == [0, 1, 2]  # nothing of the seed-0 run is reused
    assert set(one["seed"]) == {derive_seed(1, c) for c in cells}
    assert (one["root_seed"] == 1).all() and (zero["root_seed"] == 0).all()
    assert not sorted_frame(one)["u"].equals(sorted_frame(zero)["u"])
    # Both runs' tables stay; each is read back by its own root seed.
    calls.clear()
    again = run_sweep(cells, counting(calls), tmp_path, root_seed=0, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(sorted_frame(again), sorted_frame(zero))
    assert len(load_results(tmp_path)) == 2 * len(zero)
    pd.testing.assert_frame_equal(sorted_frame(load_results(tmp_path, cells, root_seed=1)), sorted_frame(one))


def test_seeds_and_draws_do_not_depend_on_the_file_name(tmp_path):
    # The per-cell seed is derive_seed(root_seed, cell) as before: only the file name gained the root seed.
    cell = Cell(4)
    df = run_sweep([cell], draw, tmp_path, root_seed=7, progress=False)
    g = torch.Generator().manual_seed(derive_seed(7, cell))
    expect = torch.rand(64, generator=g, dtype=torch.float64)
    assert torch.equal(torch.tensor(df.sort_values("i")["u"].to_numpy()), expect)
    assert sweep.result_key(cell, 7) != sweep.result_key(cell, 0) != sweep.cell_key(cell)
    assert sweep.result_path(tmp_path, cell, root_seed=7).exists()


# ---- readers never average different settings -------------------------------------------------------------------
def test_setting_check_names_the_differing_columns(tmp_path):
    cells = [Cell(0, "sync"), Cell(1, "sync"), Cell(0, "async")]
    df = run_sweep(cells, draw, tmp_path, progress=False)
    with pytest.raises(ValueError, match="rule") as info:
        sweep.check_single_setting(df, vary=("n",), what="results")
    assert "async" in str(info.value) and "sync" in str(info.value)
    assert "twice_n" not in str(info.value)  # outputs are not settings
    sweep.check_single_setting(df[df["rule"] == "sync"], vary=("n",))
    groups = sweep.setting_groups(df, vary=("n",))
    assert sorted(s["rule"] for s, _ in groups) == ["async", "sync"]
    assert sum(len(g) for _, g in groups) == len(df)
    # The root seed is a setting too.
    both = pd.concat([df, run_sweep(cells, draw, tmp_path / "one", root_seed=1, progress=False)])
    with pytest.raises(ValueError, match="root_seed"):
        sweep.check_single_setting(both, vary=("n", "rule"))
    # A table that does not say which columns are its cell's fields cannot be checked.
    with pytest.raises(ValueError, match="cell_fields"):
        sweep.check_single_setting(pd.DataFrame({"n": [1]}))


from _studies import load_experiment  # noqa: E402


@pytest.fixture(scope="module")
def sync_and_async(tmp_path_factory):
    """A capacity folder holding synchronous and asynchronous runs of the same networks."""
    cap = load_experiment("capacity")
    root = tmp_path_factory.mktemp("results")
    cells = []
    for update in ("sync", "async"):
        cells += [c for c in cap.build_cells("micro", SimpleNamespace(update=update)) if c.rule == "hebbian"]
    run_sweep(cells, cap.capacity_cell, root / "capacity", progress=False)
    return root


def test_capacity_figure_does_not_average_sync_and_async(sync_and_async, tmp_path):
    from amtheory.figures.capacity import plot_capacity

    with pytest.raises(ValueError, match="update"):
        plot_capacity(sync_and_async / "capacity", tmp_path)


def test_hopfield_page_does_not_average_sync_and_async(sync_and_async, tmp_path):
    sh = load_experiment("summarize_hopfield")
    with pytest.raises(ValueError, match="update"):
        sh.read_folder(sync_and_async / "capacity")
    with pytest.raises(ValueError, match="update"):
        sh.export_tables(sync_and_async, tmp_path / "data", machine="test machine")
    with pytest.raises(ValueError, match="update"):
        sh.page_from_results(sync_and_async, machine="test machine")
    # The data folder is checked as the raw folders are: a row of another setting is refused, named.
    sync = tmp_path / "sync"
    shutil.copytree(sync_and_async / "capacity", sync / "capacity")
    for p in (sync / "capacity").glob("*.parquet"):
        if (pd.read_parquet(p)["update"] == "async").any():
            p.unlink()
            p.with_suffix(".sha256.json").unlink()
    sh.export_tables(sync, tmp_path / "data", machine="test machine")
    table = pd.read_csv(tmp_path / "data" / "capacity.csv", dtype=str, keep_default_na=False)
    table.loc[0, "update"] = "async"
    table.to_csv(tmp_path / "data" / "capacity.csv", index=False)
    with pytest.raises(ValueError, match="capacity.csv.*update"):
        sh.build_page(tmp_path / "data")


def test_memorization_readers_do_not_mix_settings(tmp_path):
    from amtheory.studies import memorization as mz

    data = mz.DataSpec(length=8, vocab=64)
    tc = mz.TrainCell(data, mz.ModelSpec.preset("cpu-micro"), n_train=4, steps=1, batch_size=2)
    cells = [mz.EvalCell(tc, "recovery", mz.EvalSettings(n_eval=n)) for n in (4, 8)]

    def fake(cell, generator, device):
        return pd.DataFrame(
            {"backend": ["uddm"], "model_size": ["cpu-micro"], "train_size": [4], "split": ["train"], "t": [0.1],
             "recovered": [0.5], "broken": [0.0], "exact": [False], "applicable": [True]}
        )  # fmt: skip

    run_sweep(cells, fake, tmp_path / "recovery", progress=False)
    from amtheory.figures import memorization as fig

    with pytest.raises(ValueError, match="settings.n_eval"):
        fig.make_figures(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="settings.n_eval"):
        mz.summarize(tmp_path)
    sm = load_experiment("summarize_memorization")
    with pytest.raises(ValueError, match="settings.n_eval"):
        sm.export_results(tmp_path, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_compare_figure_panels_each_size_apart(tmp_path, monkeypatch):
    from amtheory.figures import compare as fig
    from amtheory.figures import style
    from amtheory.studies.hopfield import compare

    cells = [compare.CompareCell(b, n, 0.1, n_trials=2) for n in (16, 32) for b in ("hebbian", "storkey")]

    def rec(cell, generator, device):
        return pd.DataFrame({"rho": [0.1, 0.2], "exact": [1.0 * (cell.n == 16)] * 2, "level": [1, 2]})

    def rad(cell, generator, device):
        return pd.DataFrame({"pattern": [0, 1], "radius": [1, 2], "censored": [False, False]})

    run_sweep(cells, rec, tmp_path / "recovery", progress=False)
    run_sweep(cells, rad, tmp_path / "radius", progress=False)
    seen: dict[str, list] = {}

    def keep(f, out, name):
        for ax in f.axes:
            if "exact" in ax.get_ylabel():
                seen[ax.get_title()] = [y for line in ax.get_lines() for y in line.get_ydata()]
        return []

    monkeypatch.setattr(style, "save", keep)
    fig.figure(tmp_path, tmp_path / "out")
    # N = 16 retrieves every query and N = 32 none: a panel per (N, load), never their average of 0.5.
    by_n = {n: [ys for title, ys in seen.items() if f"N = {n}," in title] for n in (16, 32)}
    assert len(by_n[16]) == 1 and len(by_n[32]) == 1, list(seen)
    assert set(by_n[16][0]) == {1.0} and set(by_n[32][0]) == {0.0}


# ---- dense scaling: the recorded shares do not depend on the device's batch size ------------------------------
def test_fixed_point_share_independent_of_batch(tmp_path):
    ds = load_experiment("dense_scaling")
    from amtheory.backends.classical import ClassicalHopfield
    from amtheory.core.patterns import iid_patterns

    g = torch.Generator().manual_seed(1)
    xi = iid_patterns(60, 20, generator=g)
    mem = ClassicalHopfield("hebbian").store(xi)
    for threshold in (0.0, 0.5, 0.9, 1.0):
        ref = ds.fixed_point_share(mem, xi, threshold=threshold, chunk_elems=3 * 20 * 60)
        for batch in (None, 3 * 20 * 60, 9 * 20 * 60, 60 * 20 * 60, 10**9):
            assert ds.fixed_point_share(mem, xi, threshold=threshold, chunk_elems=3 * 20 * 60, batch_elems=batch) == ref


# ---- killing the launcher ends its workers ----------------------------------------------------------------------
SLEEPY = """
import os, time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sleep:
    i: int
    folder: str


def sleep_cell(cell, generator, device):
    Path(cell.folder, f"worker-{cell.i}.pid").write_text(str(os.getpid()))
    time.sleep(120)
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_launcher_ends_its_workers(tmp_path, sig):
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import sleepy
        from amtheory.core.sweep import run_sweep
        cells = [sleepy.Sleep(i, {str(tmp_path)!r}) for i in range(2)]
        run_sweep(cells, sleepy.sleep_cell, {str(tmp_path / "out")!r}, workers=2, progress=False)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 90
        files = [tmp_path / f"worker-{i}.pid" for i in range(2)]
        while not all(f.exists() and f.read_text() for f in files):
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        pids = [int(f.read_text()) for f in files]
        assert all(alive(p) for p in pids)
        launcher.send_signal(sig)
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if alive(p)], "workers outlived their launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)


def test_checksum_file_is_plain_json(tmp_path):
    # What is read back is data: the checksum file is JSON, the table parquet; neither can hold code to run.
    run_sweep([Cell(0)], draw, tmp_path, progress=False)
    side = [p for p in tmp_path.iterdir() if p.is_file() and p.suffix != ".parquet"]
    assert len(side) == 1
    meta = json.loads(side[0].read_text())
    assert meta["sha256"] and meta["bytes"] == tables(tmp_path)[0].stat().st_size
