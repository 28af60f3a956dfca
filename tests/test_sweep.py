"""The sweep runner: stable keys and seeds, atomic writes, resume after a crash, skipping, two CPU workers."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch

from amtheory.core import sweep
from amtheory.core.sweep import cell_key, derive_seed, load_results, run_sweep


@dataclass(frozen=True)
class Inner:
    a: int = 1
    b: str = "x"


@dataclass(frozen=True)
class Cell:
    n: int = 8
    load: float = 0.1
    rule: str = "hebbian"
    levels: tuple = (1, 2)
    inner: Inner = field(default_factory=Inner)
    flag: bool = False
    opt: int | None = None


@dataclass
class Mutable:
    n: int = 1


def draw(cell: Cell, generator: torch.Generator, device: str) -> pd.DataFrame:
    """A module-level cell function (picklable for spawned workers): a few random draws and the cell size."""
    x = torch.rand(3, generator=generator)
    return pd.DataFrame({"i": range(3), "u": x.numpy(), "twice_n": [2 * cell.n] * 3, "pid": [os.getpid()] * 3})


def test_key_is_stable_across_processes():
    cell = Cell(n=5, load=0.25, levels=(3, 4), inner=Inner(2, "y"))
    here = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import test_sweep as t; "
        "from amtheory.core.sweep import cell_key, derive_seed; "
        "c = t.Cell(n=5, load=0.25, levels=(3, 4), inner=t.Inner(2, 'y')); print(cell_key(c), derive_seed(7, c))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    key, seed = out.stdout.split()
    assert key == cell_key(cell)
    assert int(seed) == derive_seed(7, cell)
    assert len(key) == 64 and set(key) <= set("0123456789abcdef"), key


@pytest.mark.parametrize(
    "other",
    [
        Cell(n=9),
        Cell(load=0.2),
        Cell(rule="storkey"),
        Cell(levels=(1, 3)),
        Cell(levels=(2, 1)),
        Cell(inner=Inner(a=2)),
        Cell(inner=Inner(b="y")),
        Cell(flag=True),
        Cell(opt=0),
        Cell(load=1e-1 + 1e-12),
    ],
)
def test_key_and_seed_sensitive_to_every_field(other):
    base = Cell()
    assert cell_key(other) != cell_key(base)
    assert derive_seed(0, other) != derive_seed(0, base)


def test_key_depends_on_type_and_number_kind():
    @dataclass(frozen=True)
    class Other:
        n: int = 8

    @dataclass(frozen=True)
    class Same:
        n: int = 8

    assert cell_key(Other()) != cell_key(Same())  # different type names
    # 1 and 1.0 are different configurations.
    assert cell_key(Same(n=1)) != cell_key(Same(n=1.0))  # type: ignore[arg-type]
    assert derive_seed(0, Cell()) != derive_seed(1, Cell())


def test_bad_cells_rejected():
    with pytest.raises(TypeError, match="frozen"):
        cell_key(Mutable())
    with pytest.raises(TypeError, match="dataclass"):
        cell_key({"n": 1})
    with pytest.raises(TypeError, match="list"):
        cell_key(Cell(levels=[1, 2]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        cell_key(Cell(load=float("nan")))
    with pytest.raises(ValueError, match="distinct"):
        run_sweep([Cell(), Cell()], draw, "/nonexistent-unused", progress=False)


def test_tables_carry_fields_key_seed_device(tmp_path):
    cells = [Cell(n=n) for n in (2, 3)]
    df = run_sweep(cells, draw, tmp_path, root_seed=3, progress=False)
    assert len(df) == 6
    for col in ("n", "load", "rule", "levels", "inner.a", "inner.b", "flag", "cell_key", "seed", "device"):
        assert col in df.columns, col
    assert (df["twice_n"] == 2 * df["n"]).all()
    assert set(df["cell_key"]) == {cell_key(c) for c in cells}
    assert set(df["seed"]) == {derive_seed(3, c) for c in cells}
    assert (df["device"] == "cpu").all()
    # The generator is seeded with the derived seed: the draws are reproducible from it alone.
    c = cells[0]
    g = torch.Generator().manual_seed(derive_seed(3, c))
    got = df[df["cell_key"] == cell_key(c)].sort_values("i")["u"].to_numpy()
    assert torch.allclose(torch.tensor(got), torch.rand(3, generator=g))
    # Column clash with a cell field is an error.
    with pytest.raises(ValueError, match="columns"):
        run_sweep([Cell(n=7)], lambda c, g, d: pd.DataFrame({"n": [1]}), tmp_path / "clash", progress=False)


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "x.parquet"

    def broken(self, p, **kw):
        Path(p).write_bytes(b"half a table")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(KeyboardInterrupt):
        sweep.write_atomic(pd.DataFrame({"a": [1]}), path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    sweep.write_atomic(pd.DataFrame({"a": [1, 2]}), path)
    # The table and, beside it, its checksum file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet", "x.sha256.json"]
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]


def test_resume_after_crash_computes_only_missing(tmp_path):
    cells = [Cell(n=n) for n in range(6)]
    calls: list[int] = []

    def crashing(cell, generator, device):
        calls.append(cell.n)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return draw(cell, generator, device)

    with pytest.raises(RuntimeError, match="killed"):
        run_sweep(cells, crashing, tmp_path, progress=False)
    assert calls == [0, 1, 2]
    assert len(list(tmp_path.glob("*.parquet"))) == 2
    # No temporary file is left: only the finished tables and their checksum files.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n for p in tmp_path.glob("*.parquet") for n in (p.name, sweep.checksum_path(p).name)
    )

    calls.clear()
    df = run_sweep(cells, draw_counted(calls), tmp_path, progress=False)
    assert calls == [2, 3, 4, 5]  # only the missing cells, each once
    assert sorted(df["n"].unique()) == list(range(6)) and len(df) == 18

    calls.clear()
    df2 = run_sweep(cells, draw_counted(calls), tmp_path, progress=False)
    assert calls == []  # everything finished: nothing recomputed
    pd.testing.assert_frame_equal(
        df.sort_values(["n", "i"]).reset_index(drop=True), df2.sort_values(["n", "i"]).reset_index(drop=True)
    )


def draw_counted(calls):
    def fn(cell, generator, device):
        calls.append(cell.n)
        return draw(cell, generator, device)

    return fn


def test_resumed_results_equal_uninterrupted(tmp_path):
    cells = [Cell(n=n) for n in range(4)]
    full = run_sweep(cells, draw, tmp_path / "a", root_seed=1, progress=False)
    run_sweep(cells[2:], draw, tmp_path / "b", root_seed=1, progress=False)
    resumed = run_sweep(cells, draw, tmp_path / "b", root_seed=1, progress=False)
    key = ["n", "i"]
    pd.testing.assert_frame_equal(
        full.drop(columns="pid").sort_values(key).reset_index(drop=True),
        resumed.drop(columns="pid").sort_values(key).reset_index(drop=True),
    )


def test_load_results_subset_and_missing(tmp_path):
    cells = [Cell(n=n) for n in range(3)]
    run_sweep(cells[:2], draw, tmp_path, progress=False)
    assert len(load_results(tmp_path)) == 6
    assert set(load_results(tmp_path, cells[:1])["n"]) == {0}
    with pytest.raises(FileNotFoundError, match="1 of 3"):
        load_results(tmp_path, cells)
    assert load_results(tmp_path / "empty").empty


def test_two_cpu_workers_each_write_their_cells(tmp_path):
    cells = [Cell(n=n) for n in range(6)]
    df = run_sweep(cells, draw, tmp_path, root_seed=2, workers=2, progress=False)
    assert sorted(df["n"].unique()) == list(range(6))
    pids = df.groupby("n")["pid"].first()
    # Two distinct worker processes, neither of them this one, with a strided partition of the cells.
    assert pids.nunique() == 2 and os.getpid() not in set(pids)
    assert pids[0] == pids[2] == pids[4] and pids[1] == pids[3] == pids[5]
    serial = run_sweep(cells, draw, tmp_path / "serial", root_seed=2, progress=False)
    key = ["n", "i"]
    pd.testing.assert_frame_equal(
        df.drop(columns="pid").sort_values(key).reset_index(drop=True),
        serial.drop(columns="pid").sort_values(key).reset_index(drop=True),
    )


def test_worker_argument_checked():
    with pytest.raises(ValueError, match="workers"):
        run_sweep([Cell()], draw, "/nonexistent-unused", workers=0, progress=False)
    with pytest.raises(TypeError, match="workers"):
        run_sweep([Cell()], draw, "/nonexistent-unused", workers="two", progress=False)
