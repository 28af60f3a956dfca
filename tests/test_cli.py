"""The command lines: generated from the config dataclasses (one declaration of each default), config files and
overrides, ``--version``, and user errors as one line with exit status 2."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib.metadata import version

import pytest

from amtheory import cli
from amtheory.diffusion.train_config import TrainConfig


def _help(capsys, fn, argv) -> str:
    with pytest.raises(SystemExit) as e:
        fn(argv)
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert version("amtheory") in capsys.readouterr().out


def test_train_help_shows_every_field_with_its_help_and_default(capsys):
    from amtheory.diffusion.train import main

    text = _help(capsys, main, ["--help"])
    for f in dataclasses.fields(TrainConfig):
        m = re.search(rf"--{f.name}\b[^\n]*?\((required, )?type: [^)]*\)", text)
        assert m, f"--{f.name} missing from --help"
        if f.default is not dataclasses.MISSING:
            assert re.search(rf"--{f.name}\b.*?default: {re.escape(str(f.default))}\)", text), f.name
    assert "Rows of logits per chunk of the loss" in text and "--config" in text and "--print_config" in text


def test_train_defaults_are_trainconfigs():
    """The CLI declares no default of its own: parsing only the required options gives TrainConfig's defaults."""
    from amtheory.diffusion.train_cli import parse_args

    run, cfg = parse_args(["--data", "d", "--n_train", "4", "--out", "o", "--steps", "3", "--batch_size", "4"])
    assert cfg == TrainConfig(steps=3, batch_size=4)
    assert run.n_train == 4 and run.resume and run.progress


def test_train_config_file_and_overrides(tmp_path):
    from amtheory.diffusion.train_cli import parse_args

    path = tmp_path / "run.yaml"
    path.write_text(json.dumps({"steps": 7, "batch_size": 8, "lr": 1e-3, "chunk_rows": 64, "data": "d", "n_train": 2}))
    run, cfg = parse_args(["--config", str(path), "--out", "o", "--lr", "2e-3", "--grad-accum", "2", "--no-bf16",
                           "--compile", "--no-progress"])  # fmt: skip
    assert cfg == TrainConfig(steps=7, batch_size=8, lr=2e-3, chunk_rows=64, grad_accum=2, bf16=False, compile=True)
    assert run.data == "d" and run.n_train == 2 and not run.progress


def test_train_missing_corpus_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--data", str(tmp_path / "nowhere"), "--n-train", "4", "--steps", "1", "--batch-size", "2",
                  "--out", str(tmp_path / "run"), "--device", "cpu"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "Traceback" not in err


def test_train_bad_value_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--data", str(tmp_path), "--n-train", "4", "--steps", "1", "--batch-size", "3",
                  "--grad-accum", "2", "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "grad_accum" in err


def test_run_bad_max_memory_is_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--max-memory", "lots", "--device", "cpu"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_every_amtheory_option_has_help_and_default(capsys):
    for sub in ("run", "probe"):
        text = _help(capsys, cli.main, [sub, "--help"])
        opts = re.findall(r"(--[a-z][a-z-]*)", text.split("options:")[1])
        for opt in set(opts) - {"--help"}:
            assert re.search(rf"{opt}\b[^-]*?\S.*?\(default: ", text), f"{sub} {opt}"


def test_hopfield_sweep_options_from_dataclass(tmp_path, capsys):
    from amtheory.studies.hopfield._cli import SweepOptions, parser

    p = parser("capacity", "results/capacity")
    p.add_argument("--update", choices=("sync", "async"), default="sync", help="dynamics")
    text = " ".join(p.format_help().split())
    for f in dataclasses.fields(SweepOptions):
        assert f"--{f.name}" in text, f.name
    assert "default: tiny" in text and "--config" in text
    args = p.parse_args(["--preset", "full", "--no-progress", "--update", "async", "--workers", "auto"])
    assert (args.preset, args.progress, args.update, args.workers) == ("full", False, "async", "auto")
    assert args.out == "results/capacity" and args.seed == SweepOptions.seed
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"seed": 5, "threads": 1}))
    args = p.parse_args(["--config", str(cfg), "--seed", "6"])
    assert (args.seed, args.threads) == (6, 1)


def test_the_loss_chunk_default_is_written_once():
    """The trainer's chunk size is TrainConfig's; no other module of the diffusion package or CLI restates it."""
    from pathlib import Path

    import amtheory

    root = Path(amtheory.__file__).parent
    files = [*sorted((root / "diffusion").glob("*.py")), root / "cli.py"]
    restated = [f.name for f in files if f.name != "train_config.py" and re.search(r"\b(16384|32768)\b", f.read_text())]
    assert not restated


SWEEP_NAMES = ("capacity", "basins-vs-load", "dense-scaling", "memorization")


@pytest.mark.parametrize("name", SWEEP_NAMES)
def test_sweep_help_shows_every_option_with_a_default(capsys, name):
    text = _help(capsys, cli.main, ["sweep", name, "--help"])
    assert text.startswith(f"usage: amtheory sweep {name}")
    opts = set(re.findall(r"(--[a-z][a-z_-]*)", text.split("options:", 1)[1])) - {"--help", "--print_config"}
    assert "--preset" in opts and "--out" in opts and "--device" in opts
    for opt in opts:
        assert re.search(rf"{opt}\b.*?default: ", text), f"sweep {name} {opt}"


def test_sweep_lists_the_studies(capsys):
    text = _help(capsys, cli.main, ["sweep", "--help"])
    for name in SWEEP_NAMES:
        assert name in text


def test_sweep_capacity_runs_on_cpu_and_writes_its_tables(tmp_path, monkeypatch, capsys):
    """The whole command path on a grid cut to the study's test preset."""
    from amtheory.studies.hopfield import capacity

    full_grid = capacity.build_cells
    monkeypatch.setattr(capacity, "build_cells", lambda preset, args=None: full_grid("micro", args))
    out = tmp_path / "capacity"
    cli.main(["sweep", "capacity", "--out", str(out), "--device", "cpu", "--no-progress", "--seed", "3"])
    tables = sorted(out.glob("*.parquet"))
    assert tables and len(tables) == len(full_grid("micro"))
    assert f"rows in {out}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["sweep", "capacity", "--preset", "huge"], "--preset"),
        (["sweep", "dense-scaling", "--seed", "x"], "--seed"),
        (["sweep", "dense-scaling", "--vocab", "1", "--out", "{tmp}"], "--vocab"),
        (["sweep", "basins-vs-load", "--nosuchoption"], "--nosuchoption"),
        (["sweep", "memorization", "--preset", "huge"], "--preset"),
        (["sweep", "no-such-study"], "no-such-study"),
    ],
)
def test_sweep_bad_value_is_one_line_and_exit_2(tmp_path, capsys, argv, named):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err


# ---- amtheory figures ------------------------------------------------------------------------------------------
def test_figures_options_have_help_and_defaults(capsys):
    from amtheory.figures import FIGURES

    text = _help(capsys, cli.main, ["figures", "--help"])
    for opt in ("--results", "--out"):
        assert re.search(rf"{opt}\b[^-]*?\S.*?\(default: ", text), opt
    assert all(name in text for name in FIGURES)


def test_figures_missing_results_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["figures", "basins", "--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_figures_draws_from_a_results_folder(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from amtheory.studies.hopfield import basins_vs_load

    basins_vs_load.run("micro", str(tmp_path / "basins"), backends=("hebbian", "exp"))
    capsys.readouterr()
    cli.main(["figures", "basins", "--results", str(tmp_path / "basins"), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out.split()
    assert {p.rsplit("/", 1)[-1] for p in printed} == {"basins_vs_load.pdf", "basins_vs_load.png"}
    assert all((tmp_path / "out" / name).stat().st_size > 1000 for name in ("basins_vs_load.pdf", "basins_vs_load.png"))
