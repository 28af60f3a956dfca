"""The benchmarks behind experiments/: every script is a thin command line over a library module, every module
imports, and the pieces that run on a CPU run there at tiny sizes."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from _studies import MODULES, load_experiment

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py"))
ON_CPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the tiny CPU versions; a GPU runs the full ones")


def test_every_script_has_its_module():
    assert set(SCRIPTS) == set(MODULES)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_a_thin_main_over_its_module(name):
    """A few lines: the docstring, imports of public names, and ``main()`` under ``__main__``; no sys.path edits."""
    text = (ROOT / "experiments" / f"{name}.py").read_text()
    tree = ast.parse(text)
    code_lines = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert len(text.splitlines()) <= 25 and len(code_lines) <= 4, name
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert imported and not any(a.startswith("_") for a in imported), name
    assert "sys.path" not in text
    assert hasattr(load_experiment(name), "main"), name


def test_classical_small_runs_on_cpu(tmp_path, capsys):
    torch.set_num_threads(1)
    report = load_experiment("bench_classical_gpu").main(["--small", "--json", str(tmp_path / "c.json")])
    if report["device"] == "cpu":
        assert {r["matmul"] for r in report["sync"]} >= {"float32", "exact-bf16"}
        assert {r["form"] for r in report["async"]} == {"patterns", "weights"}
    assert json.loads((tmp_path / "c.json").read_text())["sync"]
    assert "| N | K | B | matmul |" in capsys.readouterr().out


@ON_CPU
def test_backends_small_runs_on_cpu(tmp_path):
    report = load_experiment("bench_backends_gpu").main(["--small", "--json", str(tmp_path / "b.json")])
    assert len(report["rows"]) == 7 and all(r["errors_after"] <= r["errors_before"] for r in report["rows"])
    assert json.loads((tmp_path / "b.json").read_text())["rows"]


@ON_CPU
def test_modern_small_runs_on_cpu(tmp_path):
    argv = ["--small", "--warmup", "0", "--repeats", "1", "--budget", "0", "--json", str(tmp_path / "m.json")]
    rows = load_experiment("bench_modern_hopfield").main(argv)
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["method"] for r in ok} >= {"plain", "auto"} and all(r["max_err"] < 1e-2 for r in ok)
    assert any(r["status"].startswith("skipped") for r in rows)


@ON_CPU
def test_training_bench_small_cpu(tmp_path, capsys):
    rows = load_experiment("bench_uddm_train").main(
        ["--small-cpu", "--steps", "1", "--variants", "plain,compiled", "--json", str(tmp_path / "t.json")]
    )
    assert {r["variant"] for r in rows} == {"plain", "compiled/chunk64"} and all("ms_step" in r for r in rows)
    rec = json.loads((tmp_path / "t.json").read_text())
    assert rec["device"] == "CPU" and len(rec["train"]) == 2 and rec["eval"][0]["seq_steps_per_s"] > 0
    assert "speed-up (plain ms / best optimised ms)" in capsys.readouterr().out


def test_training_accounting_from_a_recorded_run(capsys):
    recorded = ROOT / "benchmarks" / "h100_bench_uddm_train.json"
    rows = load_experiment("bench_uddm_train").main(["--accounting-from", str(recorded)])
    out = capsys.readouterr().out
    assert rows and "| parameters counted | peak rate |" in out
    assert [line.split(" | ")[0] for line in out.splitlines() if "TF/s |" in line] == [
        f"| {count}" for count in ("performed", "non_embedding", "with_head", "all") for _ in range(2)
    ]


def test_eager_kernels_are_charged_to_the_operator_and_the_autograd_node_that_launched_them():
    from types import SimpleNamespace as E

    from amtheory.studies.benchmarks.training_report import kernels_by_operator

    def k(name, us):
        return E(name=name, duration=us)

    node = E(name="autograd::engine::evaluate_function: MulBackward0", cpu_parent=None)
    to = E(name="aten::to", cpu_parent=node)
    copy = E(
        name="aten::copy_",
        cpu_parent=to,
        input_shapes=[[30, 8192, 256], [30, 8192, 256]],
        kernels=[k("void at::native::elementwise_kernel<128, 4>", 300.0), k("triton_poi_fused_add_0", 999.0)],
    )
    top = E(
        name="aten::linalg_vector_norm",
        cpu_parent=None,
        input_shapes=[[30, 10236416], []],
        kernels=[k("void at::native::reduce_kernel<512, 1>", 120.0), k("nvjet_sm90_gemm", 999.0)],
    )
    again = E(
        name="aten::copy_",
        cpu_parent=to,
        input_shapes=[[30, 8192, 256], [30, 8192, 256]],
        kernels=[k("void at::native::elementwise_kernel<128, 4>", 300.0)],
    )
    got = kernels_by_operator([node, to, copy, top, again], n=2)
    # Per step (2 steps), in milliseconds; inductor's and the GEMM's kernels are not eager ones.
    assert got == [
        ("autograd::engine::evaluate_function: MulBackward0 > aten::copy_([30, 8192, 256], [30, 8192, 256])", 0.3),
        ("top level > aten::linalg_vector_norm([30, 10236416])", 0.06),
    ]


def test_kernel_category_names_the_parts_of_a_step():
    from amtheory.studies.benchmarks.training_report import INDUCTOR, kernel_category

    assert kernel_category("triton_poi_fused_add_0") == INDUCTOR
    assert kernel_category("_row_stats_kernel") == "loss kernels (Triton)"
    assert kernel_category("sm90_xmma_gemm_bf16") == "GEMM"
    assert kernel_category("something else") == "other"


def test_embedded_corpus_cut_from_a_corpus(tmp_path):
    from amtheory.studies.embedded_corpus import cut_embedded_corpus

    src = Path(load_experiment("make_embedded_corpus").__file__).parents[1] / "data" / "embedded"
    corpus = cut_embedded_corpus(str(src), 10, 4)
    assert corpus.manifest["derived_from"]["n_train"] == 10 and len(corpus.sentences("test", 4)) == 4


@pytest.mark.parametrize(
    "name", ["bench_loss_kernels", "bench_block_attention", "probe_attention_kernels", "probe_norm_kernels"]
)
def test_cuda_only_modules_import(name):
    assert callable(load_experiment(name).main)


def test_chain_step_bench_runs_on_cpu(tmp_path, capsys):
    from amtheory.studies.benchmarks.chain_step import main

    rows = main(["--device", "cpu", "--rows", "2", "--length", "4", "--vocab", "50", "--repeats", "1",
                 "--out", str(tmp_path)])  # fmt: skip
    assert [r["t_from"] for r in rows] == [1.0, 0.5, 0.1]
    assert all(r["ms"] > 0 and r["ms_full_distribution"] > 0 and 0 < r["model_share"] < 1 for r in rows)
    assert "| 0.50 -> 0.48 |" in (tmp_path / "bench_chain_step.txt").read_text()
    with pytest.raises(SystemExit):
        main(["--rows", "0", "--out", str(tmp_path)])
    assert "--rows: expected an int >= 1, got 0" in capsys.readouterr().err


def test_lockstep_bench_runs_on_cpu(tmp_path):
    from amtheory.studies.benchmarks.lockstep import main

    rows = main(["--device", "cpu", "--group-sizes", "1,3", "--steps", "4", "--out", str(tmp_path)])
    assert [r["G"] for r in rows] == [1, 3] and all(r["rounds"] >= 4 and r["ms_per_round"] > 0 for r in rows)
    assert "| 3 |" in (tmp_path / "bench_lockstep.txt").read_text()
    with pytest.raises(SystemExit):
        main(["--group-sizes", "a", "--out", str(tmp_path)])


def test_hopfield_family_tiny_runs_on_cpu(tmp_path):
    """Every cell asked for is timed with what it computed: the empirical denoiser restores its 4 stored blocks
    whole and no test block; the record names its command; bad sizes and names are usage errors."""
    argv = ["--device", "cpu", "--tiny", "--sizes", "4", "--backends", "empirical,dense_exp", "--kernels",
            "--out", str(tmp_path)]  # fmt: skip
    record = load_experiment("bench_hopfield_family").main(argv)
    assert len(record["kernels_ms"]) == 4 and all(v > 0 for v in record["kernels_ms"].values())
    assert record["command"].startswith("python experiments/bench_hopfield_family.py --device cpu --tiny")
    rows = {(r["backend"], r["measure"]): r for r in record["rows"]}
    assert set(rows) == {(b, m) for b in ("empirical", "dense_exp") for m in ("recovery", "basins")}
    assert all(r["seconds"] > 0 and r["n_stored"] == 4 for r in rows.values())
    rec = rows[("empirical", "recovery")]
    assert rec["train_exact"] == 1.0 and rec["test_exact"] == 0.0
    assert rows[("empirical", "basins")]["train_median_radius"] >= 1
    assert json.loads((tmp_path / "bench_hopfield_family.json").read_text())["total_s"] == record["total_s"]
    for bad in (["--sizes", "0"], ["--sizes", "a"], ["--backends", "hebb"], ["--measures", "kl"]):
        with pytest.raises(SystemExit):
            load_experiment("bench_hopfield_family").main(["--device", "cpu", "--tiny", "--out", str(tmp_path), *bad])
