"""The memorization results page: the tables it reads, their figures, and the stage timings of a run log."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

TABLES = ("train", "recovery", "basins", "fixed_points", "generation", "nelbo", "kl")
HOPFIELD = ("empirical", "dense_exp", "modern", "classical")
HOPFIELD_NAMES = {
    "empirical": "EmpiricalDenoiser",
    "dense_exp": "DenseAM (exp)",
    "modern": "ModernHopfield",
    "classical": "ClassicalHopfield",
}
FIGURES = (
    ("memorization_recovery", "UDDM recovery of corrupted tokens against training-set size (solid train, dashed test)"),
    ("memorization_backends", "the same beside the Hopfield family, one panel per t"),
    ("memorization_basins", "median basin radius (share of the block) against size, every backend"),
    ("memorization_entropy", "per-block conditional entropy at t = 1e-5, training vs generated blocks"),
    ("memorization_perplexity", "test and training perplexity bound against size, meeting point (t = 0.25) marked"),
    (
        "memorization_extraction",
        "verbatim copies, longest shared span, fixed-point shares, KL from the empirical denoiser",
    ),
    (
        "memorization_example",
        "one training and one test block corrupted at t = 0.25 and restored, smallest vs largest training set",
    ),
)


# ----------------------------------------------------------------------------------------------------------------------
# Reading
def read_table(root: Path, name: str) -> pd.DataFrame:
    """The tables of ``root/name`` as one frame, each checked against its checksum, refused when they hold several
    settings (``amtheory.studies.memorization.analysis.read_table``); empty when the folder holds none."""
    from amtheory.studies.memorization.analysis import read_table as read_checked

    return read_checked(root / name)


def read_tables(root: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of the experiment; raises ``FileNotFoundError`` naming the folder when recovery is missing."""
    root = Path(root)
    tabs = {name: read_table(root, name) for name in TABLES}
    if tabs["recovery"].empty:
        raise FileNotFoundError(f"--results: expected parquet tables under {root / 'recovery'}, found none")
    return tabs


def stage_times(log: str | Path | None) -> pd.DataFrame:
    """Per (model, size, stage) wall seconds from the run log lines ``[memorization] <stage> <model> on <n> blocks:
    <s> s``; a stage that a later run skipped (0.0 s, already cached) keeps its first, real time."""
    cols = ["stage", "model_size", "train_size", "seconds"]
    if log is None or not Path(log).is_file():
        return pd.DataFrame(columns=cols)
    pat = re.compile(r"\[memorization\] (\w+) ([\w-]+) on (\d+) blocks: ([\d.]+) s")
    rows = [(m[1], m[2], int(m[3]), float(m[4])) for m in pat.finditer(Path(log).read_text())]
    df = pd.DataFrame(rows, columns=cols)
    return df.groupby(["stage", "model_size", "train_size"], as_index=False)["seconds"].max()
