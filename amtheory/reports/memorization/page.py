"""Results page of the memorization-to-generalization experiment: the measured numbers behind each claim.

Two steps, both ``experiments/summarize_memorization.py``:

1. ``--export RESULTS --data DIR [--log LOG] [--corpus CORPUS] [--machine TEXT]``: the results folder that
   ``experiments/memorization.py`` writes (parquet tables per cell, hundreds of MB) reduced to the data folder
   ``DIR`` (six files, a few MB; ``amtheory.studies.memorization.export``, columns in
   ``docs/data/memorization/README.md``). Run it where the results are.
2. ``--data DIR --out docs/results_memorization.md [--figures docs/figures] [--probe JSON]``: the Markdown page,
   and the figures, from the data folder alone (nothing else is opened). The page sets every number beside the
   claims of Pham, Zaki, Ambrogioni, Krotov and Negri (2026, "Language Diffusion Models are Associative Memories
   Capable of Retrieving Unseen Data", arXiv 2604.26841), each claim with a verdict computed by a stated rule
   (``amtheory.studies.memorization.claims``); every rate and estimate carries its interval. With ``--probe`` it
   also writes the reference ranges of ``amtheory probe`` (``amtheory/data/probe_reference.json``).

Both steps in one call: ``--export RESULTS --data DIR --out PAGE``. ``--merge DATA_A DATA_B ... --data DIR``
writes ``DIR`` as the union of data folders exported from parts of one sweep
(:func:`amtheory.studies.memorization.data_merge.merge_data`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from amtheory.reports.memorization.claims import (
    findings,
    section_basins,
    section_budgets,
    section_entropy,
    section_meetings,
    section_memorized,
    section_perplexity,
    section_trends,
    section_verdicts,
)
from amtheory.reports.memorization.numbers import probe_reference
from amtheory.reports.memorization.setup import section_differences, section_run, section_setup
from amtheory.reports.memorization.tables import (
    section_basin_table,
    section_exact_broken,
    section_extraction,
    section_figures,
    section_fixed_points,
    section_hopfield,
    section_kl,
    section_recovery,
    section_trajectory,
)
from amtheory.studies.memorization.summary import MemorizationData, read_data

INTRO = (
    'Pham, Zaki, Ambrogioni, Krotov and Negri (2026), "Language Diffusion Models are Associative Memories Capable '
    'of Retrieving Unseen Data", report that a uniform-noise discrete diffusion LM trained on more and more data '
    "moves from memorizing its training sequences (large basins around them, none around unseen ones) to "
    "generalizing (training and test sequences alike), that the point where the two meet grows with the model, "
    "that the conditional entropy of its predictions separates the two regimes without training data, and that "
    "the test perplexity peaks near the transition. This page gives the numbers this repository measured for each "
    "claim, with a verdict computed from them. Every number is computed by `experiments/summarize_memorization.py` "
    "from the data folder `{folder}/`; ± is one standard error, brackets hold a 95% interval."
)


def build_page(
    data: MemorizationData, *, fig_dir: str = "figures", machine: str | None = None, drawn: set[str] | None = None,
    n_boot: int = 1000, folder: str = "docs/data/memorization",
) -> str:  # fmt: skip
    """The whole Markdown page from a data folder's tables (``summary.read_data``); ``fig_dir``: the figures'
    folder relative to the page, ``drawn``: the figure names to link (all when None), ``folder``: the data
    folder's name as the page gives it."""
    f = findings(data, n_boot=n_boot)
    parts = [
        "# Memorization to generalization on real text: results",
        INTRO.format(folder=folder.rstrip("/")),
        section_verdicts(f),
        section_run(data, machine, folder),
        section_setup(data),
        section_differences(data),
        section_memorized(f),
        section_basins(f),
        section_meetings(f),
        section_trends(f),
        section_entropy(f),
        section_perplexity(f),
        section_budgets(f),
        section_recovery(f),
        section_exact_broken(f),
        section_hopfield(f),
        section_basin_table(f),
        section_fixed_points(f),
        section_extraction(f),
        section_kl(f),
        section_trajectory(f),
        section_figures(fig_dir, drawn),
    ]
    return "\n\n".join(parts).rstrip() + "\n"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", metavar="RESULTS", help="results folder of experiments/memorization.py to export")
    ap.add_argument("--data", default="docs/data/memorization", help="the data folder (written by --export)")
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="DATA",
        help="write --data as the union of these data folders "
        "(exports of parts of one sweep, e.g. one model size per GPU job)",
    )
    ap.add_argument(
        "--wall-s",
        type=float,
        help="with --export or --merge: the run's wall time in seconds across all its jobs, stored as its total "
        "(None: the log's total, or the sum of the merged parts')",
    )
    ap.add_argument("--log", help="with --export: the run's log (measurement times, total)")
    ap.add_argument("--corpus", help="with --export: the prepared corpus folder (blocks available, [UNK] share)")
    ap.add_argument("--command", help="with --export: the command line that made the results folder (stored)")
    ap.add_argument("--machine", help="what the run ran on (stored by --export; given with --out, shown instead)")
    ap.add_argument("--out", help="the Markdown page to write from --data")
    ap.add_argument("--figures", help="draw the figures from --data into this folder and link them from the page")
    ap.add_argument("--probe", help="also write the probe reference ranges (JSON) here")
    ap.add_argument("--probe-model", default="gpu-small", help="model size whose ends give the probe ranges")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over seeds")
    return ap


def main(argv: list[str] | None = None) -> str | None:
    """The command line (see the module docstring); returns the page when it wrote one."""
    ap = _parser()
    a = ap.parse_args(argv)
    if not (a.export or a.merge or a.out or a.figures or a.probe):
        ap.error("expected --export RESULTS or --merge DATA... (to write --data) and/or --out PAGE, --figures DIR "
                 "or --probe JSON (to read it), got none of them")  # fmt: skip
    if a.export and a.merge:
        ap.error(f"--export and --merge: expected one way to write --data, got both (--export {a.export}, --merge "
                 f"{' '.join(a.merge)})")  # fmt: skip
    if not a.export and (a.log or a.corpus or a.command):
        ap.error(f"--log, --corpus and --command go with --export RESULTS, got them without it (--log {a.log}, "
                 f"--corpus {a.corpus}, --command {a.command})")  # fmt: skip
    if a.wall_s is not None and not (a.export or a.merge):
        ap.error(f"--wall-s: goes with --export or --merge (it is stored in --data), got it without them "
                 f"(--wall-s {a.wall_s})")  # fmt: skip
    if a.wall_s is not None and not (a.wall_s > 0 and math.isfinite(a.wall_s)):
        ap.error(f"--wall-s: expected a positive number of seconds, got {a.wall_s}")
    if a.n_boot < 1:
        ap.error(f"--n-boot: expected a positive number of resamples, got {a.n_boot}")
    if a.export:
        from amtheory.studies.memorization.export import export_results

        paths = export_results(a.export, a.data, log=a.log, corpus=a.corpus, machine=a.machine, command=a.command)
        size = sum(p.stat().st_size for p in paths)
        print(f"wrote {len(paths)} files to {a.data} ({size / 1e6:.2f} MB): {', '.join(p.name for p in paths)}")
    if a.merge:
        from amtheory.studies.memorization.data_merge import merge_data

        paths = merge_data(a.merge, a.data)
        print(f"merged {len(a.merge)} data folders into {a.data}: {', '.join(p.name for p in paths)}")
    if a.wall_s is not None:
        from amtheory.studies.memorization.run_record import record_wall_time

        record_wall_time(a.data, a.wall_s)
    if not (a.out or a.figures or a.probe):
        return None
    data = read_data(a.data)
    if a.probe and a.probe_model not in data.model_sizes():
        ap.error(f"--probe-model: expected one of the model sizes in {a.data}, {data.model_sizes()}, got "
                 f"{a.probe_model!r}")  # fmt: skip
    drawn = None
    if a.figures:
        from amtheory.figures.memorization import draw_figures

        drawn = {p.stem for p in draw_figures(data, a.figures)}
        print(f"wrote the figures to {a.figures}")
    page = None
    if a.out:
        rel = os.path.relpath(a.figures, Path(a.out).parent) if a.figures else "figures"
        page = build_page(data, fig_dir=Path(rel).as_posix(), machine=a.machine if not a.export else None,
                          drawn=drawn, n_boot=a.n_boot, folder=Path(a.data).as_posix())  # fmt: skip
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(page)
        print(f"wrote {a.out} ({len(page):,} characters)")
    if a.probe:
        machine = a.machine or data.run.get("machine") or "machine not recorded"
        ref = probe_reference(data, a.probe_model, f"memorization sweep, {machine} (docs/results_memorization.md)")
        Path(a.probe).write_text(json.dumps(ref, indent=2) + "\n")
        print(f"wrote {a.probe}")
    return page
