"""Every Hopfield-family backend side by side on identical corrupted-pattern tasks.

For each network size N and load alpha = K / N, one set of K random binary patterns is drawn from a generator
seeded by (N, alpha, replicate) alone, so every backend stores the SAME patterns and is probed with the SAME
corruptions (the corruption generator is seeded the same way). Each backend then gives

* a recovery curve: exact-count corruption of r = rho N tokens, deterministic synchronous retrieval, the metrics of
  ``amtheory.core.metrics`` per trial (recovered, broken, exact, overlap, outcome);
* its basin radius: per pattern, the largest r retrieved exactly with probability >= 1 - delta, pooled as a median
  with a bootstrap interval (``amtheory.core.basins.basin_radius``).

The corruptions are drawn on the device the cell runs on, from a generator of that device seeded the same way: on a
CPU the CPU generator, on CUDA a CUDA generator. The gpu preset's radius rounds corrupt about 10^11 tokens at
N = 1024, which a CPU generator draws in tens of minutes and a GPU in seconds; a cell's table therefore depends on
the kind of device (recorded in its ``device`` column), never on the chunking.

Results go through the sweep runner (cached per cell, resumable) into ``out/recovery`` and ``out/radius``.

Memory: a radius round retrieves its queries in batches of at most ``MAX_QUERY_BATCH``, as many as the
working-memory budget of ``amtheory.core.budget`` allows at ``query_bytes`` each, and the backends chunk their own
products within the same budget; ``max_memory`` (``amtheory run --max-memory``) lowers it. Neither changes a result.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from amtheory.core import budget, registry
from amtheory.core.basins import basin_radius, fixed_point_radius_table, recovery_curve
from amtheory.core.interface import AssociativeMemory
from amtheory.core.patterns import stored_and_unseen
from amtheory.core.sweep import run_sweep, text_generator


def make_backend(name: str, *, exp_beta: float = 1.0, modern_beta: float = 1.0) -> AssociativeMemory:
    """The registered memory called ``name`` (``amtheory.core.registry``), unstored: the exponential dense memory at
    ``exp_beta``, the modern network at ``modern_beta``, any other backend at its registered defaults."""
    return registry.make_backend(name, {"exp": exp_beta, "modern": modern_beta}.get(name))


def _backends(n: int) -> dict[str, Callable[[], AssociativeMemory]]:
    """The backends of the main job. Modern Hopfield on spins: the target's overlap exceeds the others' by O(N)
    against O(sqrt N) noise, so beta = 4 / sqrt(N) separates them by O(sqrt N) in the softmax (Ramsauer et al.'s
    regime of single-pattern fixed points) while small loads are not yet a hard argmax."""
    return {b: (lambda b=b: make_backend(b, modern_beta=4.0 / math.sqrt(n))) for b in registry.backend_names()}


#: The backends the comparison runs by default: those registered with ``compare=True``, in registration order.
BACKENDS = registry.backend_names(compare=True)


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
    # 70 recovery and 70 basin cells, cut down from 7 loads, 3 replicates and 128 trials (294 + 294 cells), which
    # did not fit the main job's few minutes on one GPU (see benchmarks/README.md).
    "gpu": ComparePreset(ns=(256, 1024), loads=(0.05, 0.1, 0.14, 0.2, 0.3), replicates=1, n_trials=64),
}


#: The most queries one retrieval of a radius round takes: the GPU is busy long before, and a larger batch only
#: carries more converged queries along while its slowest ones finish.
MAX_QUERY_BATCH = 1 << 16


def query_bytes(cell: CompareCell) -> int:
    """Memory, in bytes, that one query of a radius round holds while it is retrieved (the backends' own products
    come on top, chunked within the budget): its clean and corrupted tokens, the retrieval's current and next
    states with their selections and comparisons (eight int64 vectors of length N in all), and one state hash per
    step."""
    return 8 * 8 * cell.n + 8 * (cell.max_steps + 2)


def _task_generator(cell: CompareCell, what: str) -> torch.Generator:
    """A generator that depends on (N, load, replicate) only: the same task for every backend."""
    return text_generator(f"{what}|{cell.n}|{cell.load!r}|{cell.replicate}", byteorder="little")


def _corruption_generator(cell: CompareCell, device: str) -> torch.Generator:
    """The cell's corruption generator on ``device``: on CUDA a CUDA generator with the CPU one's seed (drawing
    there), elsewhere the CPU generator itself."""
    g = _task_generator(cell, "corruption")
    if torch.device(device).type != "cuda":
        return g
    return torch.Generator(device=device).manual_seed(g.initial_seed())


def _task(cell: CompareCell, device: str) -> torch.Tensor:
    k = max(1, round(cell.load * cell.n))
    X, _ = stored_and_unseen(k, 0, cell.n, generator=_task_generator(cell, "patterns"))
    return X.to(device)


def recovery_cell(
    cell: CompareCell, generator: torch.Generator, device: str, *, max_memory: int | str | None = None
) -> pd.DataFrame:
    """The recovery curve of one cell (``max_memory``: a cap on the working memory, see ``amtheory.core.budget``)."""
    with budget.memory_budget(max_memory):
        return _recovery_cell(cell, device)


def _recovery_cell(cell: CompareCell, device: str) -> pd.DataFrame:
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
        generator=_corruption_generator(cell, device),
        stored=X,
        target_index=torch.arange(X.shape[0], device=device),
    )
    df["rho"] = df["level"] / cell.n
    return df.drop(columns=["max_steps"])  # recorded from the cell


def radius_cell(
    cell: CompareCell, generator: torch.Generator, device: str, *, max_memory: int | str | None = None
) -> pd.DataFrame:
    """The basin radii of one cell, retrieved in batches of queries sized to the working-memory budget
    (``max_memory``: a cap on it, see ``amtheory.core.budget``)."""
    with budget.memory_budget(max_memory):
        return _radius_cell(cell, device)


def _radius_cell(cell: CompareCell, device: str) -> pd.DataFrame:
    X = _task(cell, device)
    mem = _backends(cell.n)[cell.backend]().store(X, vocab_size=2)
    batch = min(MAX_QUERY_BATCH, budget.rows_per_chunk(query_bytes(cell), device))
    r = basin_radius(
        mem,
        X,
        delta=cell.delta,
        n_trials=cell.n_trials,
        update="sync",
        max_steps=cell.max_steps,
        generator=_corruption_generator(cell, device),
        max_radius=cell.n // 2,
        batch_size=batch,
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
    max_memory: int | str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the side-by-side comparison; returns (recovery table, radius table). ``max_memory``: a cap on the
    working memory of every cell, in bytes or as text such as "40GiB" (see ``amtheory.core.budget``); the tables do
    not depend on it."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of {tuple(PRESETS)}, got {preset!r}")
        preset = PRESETS[preset]
    if max_memory is not None:
        max_memory = budget.parse_bytes("max_memory", max_memory)
    cells = cells_for(preset)
    # Cells may run in worker processes, which do not see this process's budget context: the cap goes with them.
    rec_fn = functools.partial(recovery_cell, max_memory=max_memory)
    rad_fn = functools.partial(radius_cell, max_memory=max_memory)
    rec = run_sweep(cells, rec_fn, f"{out}/recovery", device=device, progress=progress, workers=workers)
    rad = run_sweep(cells, rad_fn, f"{out}/radius", device=device, progress=progress, workers=workers)
    return rec, rad


def radius_statistics(rad: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, n, load), every replicate pooled: the share of patterns that are fixed points (Wilson interval)
    and the median radius / N over those fixed points (order-statistic interval), from the per-pattern rows of the
    radius table (``amtheory.core.basins.fixed_point_radius_table``)."""
    return fixed_point_radius_table(rad, ["backend", "n", "load"], length="n")


def _radius_entry(r) -> str:
    share = f"{100 * r.fixed_share:.0f}% [{100 * r.fixed_share_low:.0f}, {100 * r.fixed_share_high:.0f}]"
    if not r.n_fixed:
        return f"none fixed; {share}"
    mark = ">=" if r.median_censored else ""
    return f"{mark}{r.median:.3f} [{r.median_low:.3f}, {r.median_high:.3f}]; {share}"


def summary_tables(rec: pd.DataFrame, rad: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(exact-match rate by backend x (load, rho); basin radii by (backend, N) x load, each entry the median radius
    / N over the patterns that are fixed points [95% order-statistic interval]; the share of patterns that are fixed
    points [95% Wilson interval], ">=" marking a median at the search limit; see ``radius_statistics``)."""
    exact = (
        rec.groupby(["backend", "n", "load", "rho"], observed=True)["exact"].mean().unstack(["load", "rho"]).round(2)
    )
    stats = radius_statistics(rad)
    radius = stats.assign(entry=[_radius_entry(r) for r in stats.itertuples()])
    radius = radius.set_index(["backend", "n", "load"])["entry"].unstack("load")
    return exact, radius
