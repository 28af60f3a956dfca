"""Results page of the memorization-to-generalization experiment: the measured numbers behind each claim.

Reads the parquet folders that ``experiments/memorization.py`` writes (``train``, ``recovery``, ``basins``,
``fixed_points``, ``generation``, ``nelbo``, ``kl``) and writes the Markdown page (``docs/results_memorization.md``)
that sets them beside the claims of Pham, Zaki, Ambrogioni, Krotov and Negri (2026, "Language Diffusion Models are
Associative Memories Capable of Retrieving Unseen Data", arXiv 2604.26841): training recovery falls and test
recovery rises with training-set size until they meet; the conditional entropy is near zero while a model
memorizes and finite once it generalizes; the test perplexity peaks near the meeting point. Every number on the
page is computed here from the tables (means over evaluation blocks; ``+-`` is one standard error over blocks);
nothing is typed in by hand. With ``--probe`` it also writes the reference ranges of ``amtheory probe``
(``amtheory/data/probe_reference.json``) from the generation table.

Run: ``python experiments/summarize_memorization.py --results results/memorization_gpu
--out docs/results_memorization.md [--probe amtheory/data/probe_reference.json]
[--log benchmarks/h100_memorization_gpu.log] [--machine TEXT] [--data data/brown-sotu]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.reports.memorization.generation import (
    section_entropy,
    section_extraction,
    section_figures,
    section_kl,
    section_nelbo,
)
from amtheory.reports.memorization.machine import section_differences, section_machine, section_setup
from amtheory.reports.memorization.numbers import coverage, meeting_points, probe_reference, recovery_numbers
from amtheory.reports.memorization.reading import read_tables, stage_times
from amtheory.reports.memorization.recovery import (
    section_basins,
    section_fixed_points,
    section_hopfield,
    section_recovery,
)


def data_summary(data: str | None, tabs: dict[str, pd.DataFrame]) -> dict | None:
    """Blocks available and the [UNK] share after compaction, when the prepared corpus is at hand."""
    if not data or not Path(data).is_dir():
        return None
    from amtheory.studies.memorization import DataSpec, load_data

    tr = tabs["train"]
    length = int(tr["data.length"].iloc[0]) if not tr.empty else 64
    vocab = int(tr["data.vocab"].iloc[0]) if not tr.empty else 8192
    c = load_data(DataSpec(str(data), length, vocab))
    toks = np.asarray(c.tokens)
    return {
        "train_blocks": c.n_blocks_available("train", length),
        "test_blocks": c.n_blocks_available("test", length),
        "unk_share": float((toks == c.specials.unk).mean()),
    }


def build_page(
    tabs: dict[str, pd.DataFrame],
    *,
    times: pd.DataFrame,
    data_info: dict | None,
    fig_dir: str,
    machine: str = "one NVIDIA H100 80GB HBM3, torch 2.11.0+cu130",
    log: str | None = None,
) -> str:
    """The whole Markdown page from the tables."""
    rs = recovery_numbers(tabs)
    meet = meeting_points(tabs["recovery"])
    cov = coverage(tabs)
    parts = [
        "# Memorization to generalization on real text: results",
        "",
        'Pham, Zaki, Ambrogioni, Krotov and Negri (2026), "Language Diffusion Models are Associative Memories '
        'Capable of Retrieving Unseen Data", report that a uniform-noise discrete diffusion LM trained on more and '
        "more data moves from memorizing its training sequences (large basins around them, none around unseen "
        "ones) to generalizing (training and test sequences alike), that the conditional entropy of its "
        "predictions separates the two regimes without training data, and that the test perplexity peaks near the "
        "transition. This page gives the numbers this repository measured for each claim. All numbers are computed "
        "by `experiments/summarize_memorization.py` from the result tables; +- is one standard error over "
        "evaluation blocks.",
        "",
        section_machine(tabs, cov, times, machine, log),
        "",
        section_setup(tabs, cov, times, data_info),
        "",
        section_differences(tabs, data_info),
        "",
        section_recovery(rs, meet, cov),
        "",
        section_hopfield(rs, tabs),
        "",
        section_basins(tabs),
        "",
        section_fixed_points(tabs),
        "",
        section_entropy(tabs),
        "",
        section_extraction(tabs),
        "",
        section_nelbo(tabs, meet),
        "",
        section_kl(tabs),
        "",
        section_figures(fig_dir),
    ]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/memorization_gpu", help="folder of the experiment's tables")
    ap.add_argument("--out", default="docs/results_memorization.md", help="the Markdown page to write")
    ap.add_argument("--log", default="benchmarks/h100_memorization_gpu.log", help="run log with stage timings")
    ap.add_argument(
        "--machine", default="one NVIDIA H100 80GB HBM3, torch 2.11.0+cu130", help="the machine the sweep ran on"
    )
    ap.add_argument("--data", default="data/brown-sotu", help="prepared corpus (for block counts; optional)")
    ap.add_argument("--figures", default="figures", help="figure folder, relative to the page")
    ap.add_argument("--probe", default=None, help="also write the probe reference ranges (JSON) here")
    ap.add_argument("--probe-model", default="gpu-small", help="model size whose ends give the probe ranges")
    a = ap.parse_args(argv)
    tabs = read_tables(a.results)
    page = build_page(
        tabs, times=stage_times(a.log), data_info=data_summary(a.data, tabs), fig_dir=a.figures,
        machine=a.machine, log=a.log,
    )  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(page)
    print(f"wrote {a.out} ({len(page):,} characters)")
    if a.probe:
        ref = probe_reference(
            tabs, a.probe_model, f"memorization sweep, gpu preset, {a.machine} (docs/results_memorization.md)"
        )
        Path(a.probe).write_text(json.dumps(ref, indent=2) + "\n")
        print(f"wrote {a.probe}")
    return page
