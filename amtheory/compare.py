"""Every Hopfield-family backend side by side on identical corrupted-pattern tasks.

For each network size N and load alpha = K / N, one set of K random binary patterns is drawn from a generator
seeded by (N, alpha, replicate) alone, so every backend stores the SAME patterns and is probed with the SAME
corruptions (the corruption generator is seeded the same way). Each backend then gives

* a recovery curve: exact-count corruption of r = rho N tokens, deterministic synchronous retrieval, the metrics of
  ``amtheory.metrics`` per trial (recovered, broken, exact, overlap, outcome);
* its basin radius: per pattern, the largest r retrieved exactly with probability >= 1 - delta, pooled as a median
  with a bootstrap interval (``amtheory.basins.basin_radius``).

Results go through the sweep runner (cached per cell, resumable) into ``out/recovery`` and ``out/radius``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from amtheory.backends.base import AssociativeMemory
from amtheory.basins import basin_radius, recovery_curve
from amtheory.patterns import stored_and_unseen
from amtheory.sweep import run_sweep, text_generator


def make_backend(name: str, *, exp_beta: float = 1.0, modern_beta: float = 1.0) -> AssociativeMemory:
    """The Hopfield-family memory called ``name`` (one of ``BACKENDS``), unstored."""
    from amtheory.backends.classical import ClassicalHopfield
    from amtheory.backends.dense import DenseAM
    from amtheory.backends.modern import ModernHopfield

    if name in ("hebbian", "storkey", "pseudoinverse"):
        return ClassicalHopfield(name)
    if name in ("poly3", "rectpoly3"):
        return DenseAM(name[:-1], n=3)
    if name == "exp":
        return DenseAM("exp", beta=exp_beta)
    if name == "modern":
        return ModernHopfield(beta=modern_beta)
    raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")


def _backends(n: int) -> dict[str, Callable[[], AssociativeMemory]]:
    """The backends of the main job. Modern Hopfield on spins: the target's overlap exceeds the others' by O(N)
    against O(sqrt N) noise, so beta = 4 / sqrt(N) separates them by O(sqrt N) in the softmax (Ramsauer et al.'s
    regime of single-pattern fixed points) while small loads are not yet a hard argmax."""
    return {b: (lambda b=b: make_backend(b, modern_beta=4.0 / math.sqrt(n))) for b in BACKENDS}


BACKENDS = ("hebbian", "storkey", "pseudoinverse", "poly3", "rectpoly3", "exp", "modern")


@dataclass(frozen=True)
class CompareCell:
    """One backend at one (N, load, replicate)."""

    backend: str
    n: int
    load: float
    replicate: int = 0
    n_trials: int = 32
    levels: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4)
    delta: float = 0.1
    max_steps: int = 50


@dataclass(frozen=True)
class ComparePreset:
    ns: tuple[int, ...]
    loads: tuple[float, ...]
    replicates: int
    n_trials: int
    backends: tuple[str, ...] = BACKENDS


PRESETS = {
    "tiny": ComparePreset(ns=(64,), loads=(0.05, 0.1, 0.2, 0.3), replicates=1, n_trials=24),
    # 70 recovery and 70 basin cells, cut down from 7 loads, 3 replicates and 128 trials (294 + 294 cells), of
    # which an H100 had written 263 recovery cells after 330 s (benchmarks/h100_main_job_gpu.log). This smaller
    # preset has not been timed on a GPU.
    "gpu": ComparePreset(ns=(256, 1024), loads=(0.05, 0.1, 0.14, 0.2, 0.3), replicates=1, n_trials=64),
}


def _task_generator(cell: CompareCell, what: str) -> torch.Generator:
    """A generator that depends on (N, load, replicate) only: the same task for every backend."""
    return text_generator(f"{what}|{cell.n}|{cell.load!r}|{cell.replicate}", byteorder="little")


def _task(cell: CompareCell, device: str) -> torch.Tensor:
    k = max(1, round(cell.load * cell.n))
    X, _ = stored_and_unseen(k, 0, cell.n, generator=_task_generator(cell, "patterns"))
    return X.to(device)


def recovery_cell(cell: CompareCell, generator: torch.Generator, device: str) -> pd.DataFrame:
    X = _task(cell, device)
    mem = _backends(cell.n)[cell.backend]().store(X, vocab_size=2)
    levels = sorted({max(1, round(rho * cell.n)) for rho in cell.levels})
    df = recovery_curve(
        mem,
        X,
        levels=levels,
        mode="count",
        n_trials=cell.n_trials,
        update="sync",
        max_steps=cell.max_steps,
        generator=_task_generator(cell, "corruption"),
        stored=X,
        target_index=torch.arange(X.shape[0], device=device),
    )
    df["rho"] = df["level"] / cell.n
    return df.drop(columns=["max_steps"])  # recorded from the cell


def radius_cell(cell: CompareCell, generator: torch.Generator, device: str) -> pd.DataFrame:
    X = _task(cell, device)
    mem = _backends(cell.n)[cell.backend]().store(X, vocab_size=2)
    r = basin_radius(
        mem,
        X,
        delta=cell.delta,
        n_trials=cell.n_trials,
        update="sync",
        max_steps=cell.max_steps,
        generator=_task_generator(cell, "corruption"),
        max_radius=cell.n // 2,
    )
    lo, hi = r.median_ci
    df = r.to_frame()
    df["median_fraction"] = r.median / cell.n
    df["median_ci_low"] = lo / cell.n
    df["median_ci_high"] = hi / cell.n
    return df.drop(columns=[c for c in ("delta", "max_steps", "n_trials") if c in df])  # recorded from the cell


def cells_for(preset: ComparePreset) -> list[CompareCell]:
    return [
        CompareCell(backend=b, n=n, load=a, replicate=s, n_trials=preset.n_trials)
        for n in preset.ns
        for a in preset.loads
        for s in range(preset.replicates)
        for b in preset.backends
    ]


def run(
    preset: str | ComparePreset = "tiny",
    out: str = "results/main/hopfield",
    *,
    device: str = "cpu",
    progress: bool = True,
    workers: int | str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the side-by-side comparison; returns (recovery table, radius table)."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of {tuple(PRESETS)}, got {preset!r}")
        preset = PRESETS[preset]
    cells = cells_for(preset)
    rec = run_sweep(cells, recovery_cell, f"{out}/recovery", device=device, progress=progress, workers=workers)
    rad = run_sweep(cells, radius_cell, f"{out}/radius", device=device, progress=progress, workers=workers)
    return rec, rad


def summary_tables(rec: pd.DataFrame, rad: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(exact-match rate by backend x (load, rho); median basin radius / N by backend x load)."""
    exact = (
        rec.groupby(["backend", "n", "load", "rho"], observed=True)["exact"].mean().unstack(["load", "rho"]).round(2)
    )
    per_cell = rad.groupby(["backend", "n", "load"], observed=True)["median_fraction"].first()
    radius = per_cell.unstack("load").round(3)
    return exact, radius
