"""The Hopfield results page: the sweeps it reads, their commands, and the checked reading of their folders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: A stored pattern counts as retrieved when at most this share of its bits is wrong once the dynamics stop: it
#: separates the retrieval state (about 1.6% wrong bits just below alpha_c) from the spin-glass states (about 30%).
RETRIEVAL_CUT = 0.05
N_BOOT = 2000
EXPERIMENTS = ("capacity", "dense_scaling", "basins_vs_load")
COMMANDS = {
    "capacity": "python experiments/capacity.py --preset full --out results/capacity --device cuda",
    "dense_scaling": "python experiments/dense_scaling.py --preset full --out results/dense_scaling --device cuda",
    "basins_vs_load": "python experiments/basins_vs_load.py --preset full --out results/basins_vs_load --device cuda",
}
FIGURES = {
    "capacity": "amtheory figures capacity --results results/capacity --out docs/figures",
    "dense_scaling": "amtheory figures dense_scaling --results results/dense_scaling --out docs/figures",
    "basins_vs_load": "amtheory figures basins --results results/basins_vs_load --out docs/figures",
}


# ----------------------------------------------------------------------------------------------------------------------
# Reading and bookkeeping


#: Per sweep, the settings the page tabulates or pools over (grid axes, replicates); every other setting, the root
#: seed included, must take one value in a folder: the page does not average different settings.
VARY = {
    "capacity": ("rule", "N", "alpha", "replicate"),
    "dense_scaling": ("kind", "n", "N", "replicate"),
    "basins_vs_load": ("backend", "N", "K", "replicate"),
}


def read_folder(folder: str | Path, sweep: str | None = None) -> pd.DataFrame | None:
    """Every ``*.parquet`` table of the folder of ``sweep`` (one of ``EXPERIMENTS``; default: the folder's name),
    each checked against its checksum, concatenated; ``None`` when the folder holds none. Raises ``ValueError``
    naming the setting columns that differ when the tables hold more than one setting beyond ``VARY[sweep]``."""
    from amtheory.core.sweep import check_single_setting, load_results

    folder = Path(folder)
    sweep = folder.name if sweep is None else sweep
    if sweep not in VARY:
        raise ValueError(f"sweep: expected one of {tuple(VARY)}, got {sweep!r}")
    df = load_results(folder)
    if not len(df.columns):
        return None
    return check_single_setting(df, vary=VARY[sweep], what=f"results {folder}")


def completeness(name: str, df: pd.DataFrame) -> tuple[int, int, list]:
    """Cells of the full preset present in ``df`` (by ``cell_key``), the number expected, and the missing cells."""
    import importlib

    from amtheory.core.sweep import cell_key

    module = importlib.import_module(f"amtheory.studies.hopfield.{name}")
    cells = module.build_cells("full")
    have = set(df["cell_key"].unique())
    missing = [c for c in cells if cell_key(c) not in have]
    return len(cells) - len(missing), len(cells), missing
