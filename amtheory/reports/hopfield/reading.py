"""The Hopfield results page: the sweeps it reads, their commands, and the checked reading of their folders."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

#: A stored pattern counts as retrieved when at most this share of its bits is wrong once the dynamics stop: it
#: separates the retrieval state (about 1.6% wrong bits just below alpha_c) from the spin-glass states (about 30%).
RETRIEVAL_CUT = 0.05
N_BOOT = 2000
EXPERIMENTS = ("capacity", "dense_scaling", "basins_vs_load")
#: The presets a sweep's cells are looked up in, the first that holds every cell of a folder naming it.
PRESETS = ("full", "tiny", "micro")
FIGURES = {
    "capacity": "amtheory figures capacity --results results/capacity --out docs/figures",
    "dense_scaling": "amtheory figures dense_scaling --results results/dense_scaling --out docs/figures",
    "basins_vs_load": "amtheory figures basins --results results/basins_vs_load --out docs/figures",
}


def command(name: str, preset: str, device: str, root_seed: int = 0) -> str:
    """The command that writes the folder of sweep ``name`` with ``preset`` on ``device``."""
    seed = f" --seed {root_seed}" if root_seed else ""
    return f"python experiments/{name}.py --preset {preset} --out results/{name} --device {device}{seed}"


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


def preset_cells(name: str, preset: str, df: pd.DataFrame) -> list:
    """The cells of ``preset`` of sweep ``name`` with the settings of ``df`` that choose them (the update rule,
    the vocabulary, the root seed that the basin sweep's patterns follow)."""
    import importlib

    def one(col, default):
        return df[col].iloc[0] if col in df and len(df) else default

    module = importlib.import_module(f"amtheory.studies.hopfield.{name}")
    args = SimpleNamespace(
        update=one("update", "sync"), vocab=int(one("vocab", 2)), seed=int(one("root_seed", 0)), backends=None
    )
    return module.build_cells(preset, args)


def detect_preset(name: str, df: pd.DataFrame) -> str:
    """The first of ``PRESETS`` whose cells (``preset_cells``) hold every cell of ``df``; ``ValueError`` when none
    does."""
    from amtheory.core.sweep import cell_key

    have = set(df["cell_key"].unique())
    for preset in PRESETS:
        if have <= {cell_key(c) for c in preset_cells(name, preset, df)}:
            return preset
    raise ValueError(
        f"results {name}: expected the cells of one preset ({', '.join(PRESETS)}), found {len(have)} cells that no "
        "preset holds entirely"
    )


def completeness(name: str, df: pd.DataFrame, preset: str = "full") -> tuple[int, int, list]:
    """Cells of ``preset`` present in ``df`` (by ``cell_key``), the number expected, and the missing cells."""
    from amtheory.core.sweep import cell_key

    cells = preset_cells(name, preset, df)
    have = set(df["cell_key"].unique())
    missing = [c for c in cells if cell_key(c) not in have]
    return len(cells) - len(missing), len(cells), missing
