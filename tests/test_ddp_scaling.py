"""The scale-out benchmark (experiments/bench_ddp_scaling.py) on a CPU: torchrun with one and two gloo processes on a
tiny corpus, the steady-state rate read from log.jsonl, a failed run kept as a row, and its option checks."""

from __future__ import annotations

import json
import math

import pytest
import torch

from amtheory.studies.benchmarks.ddp_scaling import main, parse_counts, steady_throughput


def _tiny_corpus(path):
    from amtheory.diffusion.data import TokenCorpus

    g = torch.Generator().manual_seed(0)
    sentences = [torch.randint(104, 140, (int(n),), generator=g).tolist() for n in torch.randint(3, 12, (60,))]
    TokenCorpus.from_sentences(sentences, test_size=10, generator=g, vocab_size=140).save(path)
    return str(path)


def _cpu_args(tmp_path, **over):
    args = {"--device": "cpu", "--gpus": "1,2", "--presets": "cpu-micro", "--data": _tiny_corpus(tmp_path / "corpus"),
            "--n-train": "12", "--length": "16", "--batch-size": "8", "--steps": "12", "--log-every": "2",
            "--skip-steps": "4", "--timeout-s": "120", "--out": str(tmp_path / "out"), **over}  # fmt: skip
    return [x for kv in args.items() for x in kv]


def test_one_and_two_gloo_processes_give_a_rate_and_an_efficiency(tmp_path, capsys):
    record = main(_cpu_args(tmp_path))
    rows = record["rows"]
    assert [(r["preset"], r["gpus"], r["per_gpu_batch"]) for r in rows] == [("cpu-micro", 1, 8), ("cpu-micro", 2, 4)]
    for r in rows:
        assert r["returncode"] == 0 and "error" not in r, r
        assert r["tokens_s"] > 0 and math.isfinite(r["efficiency"]) and r["efficiency"] > 0
        assert (r["from_step"], r["to_step"]) == (4, 12) and r["peak_memory_gib"] is None
    assert rows[0]["efficiency"] == 1.0
    text = (tmp_path / "out" / "bench_ddp_scaling.txt").read_text()
    assert "| preset | GPUs | global batch | per GPU | ms/step | tokens/s | efficiency |" in text
    assert "| cpu-micro | 1 | 8 x 16 | 8 |" in text and "| cpu-micro | 2 | 8 x 16 | 4 |" in text
    assert "target: efficiency >= 90% for small at 8 GPUs: not measured" in text
    assert json.loads((tmp_path / "out" / "bench_ddp_scaling.json").read_text())["rows"] == rows
    assert (tmp_path / "out" / "ddp_scaling_logs" / "cpu-micro-2gpu.log.jsonl").exists()
    assert "| cpu-micro | 2 |" in capsys.readouterr().out


def test_a_failed_run_is_a_row_with_its_error(tmp_path):
    # The corpus holds far fewer than 10,000 blocks: the trainer refuses, and the benchmark records it and goes on.
    record = main(_cpu_args(tmp_path, **{"--gpus": "1", "--n-train": "10000"}))
    (row,) = record["rows"]
    assert row["returncode"] != 0 and "n_blocks" in row["error"] and row.get("tokens_s") is None
    assert row["efficiency"] is None


@pytest.mark.parametrize("value", ["1,two", "0,2", "1,1", ""])
def test_a_bad_gpus_value_names_the_option_what_was_expected_and_what_came(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["--device", "cpu", "--gpus", value, "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--gpus: expected a comma-separated list of distinct positive integers" in err and repr(value) in err


def test_a_global_batch_the_counts_do_not_divide_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--gpus", "1,2,4", "--batch-size", "6", "--out", str(tmp_path)])
    assert "--batch-size: expected a multiple of every count in --gpus, got 6 (not of [4])" in capsys.readouterr().err


def test_steady_rate_leaves_out_the_steps_before_skip_steps():
    log = [{"step": s, "elapsed_s": t} for s, t in [(10, 30.0), (20, 31.0), (30, 32.0), (40, 33.5)]]
    rate = steady_throughput(log, 15, tokens_per_step=1000)
    assert (rate["from_step"], rate["to_step"]) == (20, 40)
    assert rate["ms_step"] == pytest.approx(125.0) and rate["tokens_s"] == pytest.approx(8000.0)
    with pytest.raises(ValueError, match="--skip-steps"):
        steady_throughput(log, 35, tokens_per_step=1000)
    assert parse_counts("8,1,2") == (1, 2, 8)


def test_a_run_past_its_time_limit_is_stopped_and_recorded(tmp_path):
    record = main(_cpu_args(tmp_path, **{"--gpus": "1", "--timeout-s": "1"}))
    (row,) = record["rows"]
    assert row["error"] == "timed out after 1 s (--timeout-s)" and row["returncode"] != 0 and row["wall_s"] < 40
