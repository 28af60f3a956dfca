"""The memorization study on a researcher's own text: `amtheory prepare --text FILE` builds the corpus folder that
`--data` takes, and the study runs on it end to end."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import torch
from test_memorization import micro_preset

from amtheory.cli import main as cli_main
from amtheory.diffusion.data import TokenCorpus
from amtheory.studies.memorization import DataSpec, run_experiment

VOCAB = Path(__file__).parent / "fixtures" / "vocab.txt"
WORDS = "the jury said city was ready no evidence paid of cost a new law is we must act now mr smith spoke".split()


def test_study_runs_on_a_corpus_prepared_from_own_text(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    rng = random.Random(0)
    lines = {" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + " ." for _ in range(200)}
    text = tmp_path / "my_text.txt"
    text.write_text("\n".join(sorted(lines)) + "\n")
    corpus_dir = tmp_path / "my_corpus"
    args = ["prepare", "--out", str(corpus_dir), "--text", str(text), "--vocab", str(VOCAB), "--test-size", "20"]
    monkeypatch.setattr("sys.argv", ["amtheory", *args])
    try:
        cli_main(args)
    except SystemExit as e:  # the prepare subcommand ends with its exit status
        assert e.code in (0, None), e.code
    corpus = TokenCorpus.load(corpus_dir)
    assert corpus.n_test == 20 and corpus.n_train == len(lines) - 20

    preset = dataclasses.replace(micro_preset(), data=DataSpec(str(corpus_dir), 12, 30), sizes=(4, 16))
    tables = run_experiment(preset, tmp_path / "study", device="cpu", progress=False)
    rec = tables["recovery"]
    assert sorted(rec["train_size"].unique().tolist()) == [4, 16]
    assert set(rec["split"]) >= {"train", "test"}
    assert len(tables["train"]) == len(preset.train_cells()) and tables["train"]["final_loss"].notna().all()
    assert len(rec[(rec["split"] == "train") & (rec["backend"] == "uddm")]) > 0
