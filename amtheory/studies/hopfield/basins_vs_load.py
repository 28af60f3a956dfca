"""Basin radius against load for every Hopfield-family backend on the same random binary patterns.

For each load alpha = K/N and replicate, K random binary patterns of N spins are drawn from a seed that depends on
(N, K, replicate, ``pattern_seed``) only, so every backend stores the very same patterns. For each backend the
basin radius of the first ``n_targets`` stored patterns is estimated with ``amtheory.core.basins.basin_radius``: the
largest number of flipped bits from which synchronous retrieval returns the same pattern with probability at
least ``1 - delta`` (first-passage radius; McEliece et al. 1987), pooled as a median with a bootstrap interval.

Backends: classical Hebbian, Storkey and pseudo-inverse rules; dense associative memories with ``F = z^3``
("poly3"), ``max(z, 0)^3`` ("rectpoly3") and ``exp`` (Krotov and Hopfield 2016; Demircigil et al. 2017); the modern
continuous Hopfield network (Ramsauer et al. 2020). The radius is searched up to N/2, beyond which a binary query is
closer to the spin-reversed pattern.

Run: ``python experiments/basins_vs_load.py --preset tiny|full --out results/basins_vs_load [--device cuda]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import torch

from amtheory.core import registry

#: The backends it runs by default: those of the comparison (registered with ``compare=True``).
BACKENDS = registry.backend_names(compare=True)


@dataclass(frozen=True)
class PatternDraw:
    """What the stored patterns depend on: the same for every backend."""

    N: int
    K: int
    replicate: int
    pattern_seed: int


@dataclass(frozen=True)
class BasinCell:
    backend: str
    N: int
    K: int
    replicate: int
    pattern_seed: int = 0
    n_targets: int = 16
    n_trials: int = 32
    delta: float = 0.1
    max_steps: int = 50
    exp_beta: float = 1.0
    modern_beta: float = 0.5


def make_backend(name: str, cell: BasinCell):
    """The memory named ``name`` with the cell's hyperparameters."""
    from amtheory.studies.hopfield.compare import make_backend as make

    return make(name, exp_beta=cell.exp_beta, modern_beta=cell.modern_beta)


def stored_patterns(cell: BasinCell, device: str) -> torch.Tensor:
    """The K patterns of this (N, K, replicate, pattern_seed), identical for every backend."""
    from amtheory.core.patterns import iid_patterns
    from amtheory.core.sweep import derive_seed

    draw = PatternDraw(cell.N, cell.K, cell.replicate, cell.pattern_seed)
    g = torch.Generator(device="cpu").manual_seed(derive_seed(cell.pattern_seed, draw))
    return iid_patterns(cell.K, cell.N, vocab_size=2, generator=g, device=device)


def basin_cell(cell: BasinCell, generator: torch.Generator, device: str) -> pd.DataFrame:
    """One row per target pattern: its radius, with the pooled median and its interval as columns."""
    from amtheory.core.basins import basin_radius

    xi = stored_patterns(cell, device)
    mem = make_backend(cell.backend, cell).store(xi, vocab_size=2)
    targets = xi[: min(cell.n_targets, cell.K)]
    # Bound the [B, L, K] temporaries of one retrieve call.
    budget = 2**27 if str(device).startswith("cuda") else 2**22
    batch = max(64, budget // max(1, cell.N * cell.K))
    res = basin_radius(
        mem,
        targets,
        delta=cell.delta,
        n_trials=cell.n_trials,
        update="sync",
        max_steps=cell.max_steps,
        max_radius=cell.N // 2,
        generator=generator,
        batch_size=batch,
    )
    df = res.to_frame()
    df["load"] = cell.K / cell.N
    df["median"] = res.median
    df["median_lo"], df["median_hi"] = res.median_ci
    df["median_fraction"] = res.median / cell.N
    df["median_fraction_lo"] = res.median_ci[0] / cell.N
    df["median_fraction_hi"] = res.median_ci[1] / cell.N
    names = {f.name for f in dataclasses.fields(cell)}
    return df.drop(columns=[c for c in df.columns if c in names])


def loads_to_K(N: int, loads) -> list[int]:
    """Distinct pattern counts ``K = round(alpha N) >= 2`` for the loads."""
    return sorted({max(2, int(round(a * N))) for a in loads})


def build_cells(preset: str, args=None) -> list[BasinCell]:
    seed = int(getattr(args, "seed", 0) or 0) if args is not None else 0
    chosen = getattr(args, "backends", None) if args is not None else None
    backends = tuple(chosen.split(",")) if chosen else BACKENDS
    for b in backends:
        if b not in registry.backend_names():
            raise ValueError(f"--backends: expected names from {registry.backend_names()}, got {b!r}")
    if preset == "tiny":
        N, loads, reps = 48, (0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0), 2
        extra = dict(n_targets=8, n_trials=16, max_steps=30)
    elif preset == "full":
        N, loads, reps = 128, (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0), 3
        extra = dict(n_targets=32, n_trials=32, max_steps=50)
    elif preset == "micro":  # for tests: a few seconds
        N, loads, reps = 24, (0.1, 0.5), 1
        extra = dict(n_targets=4, n_trials=8, max_steps=20)
    else:
        raise ValueError(f"preset: expected 'tiny', 'full' or 'micro', got {preset!r}")
    return [
        BasinCell(b, N, K, r, pattern_seed=seed, **extra)
        for K in loads_to_K(N, loads)
        for r in range(reps)
        for b in backends
    ]


def run(
    preset: str,
    out: str,
    *,
    backends=None,
    device: str = "cpu",
    root_seed: int = 0,
    progress: bool = False,
    workers=None,
):
    """Run a preset (optionally a subset of backends) and return the concatenated table."""
    from types import SimpleNamespace

    from amtheory.core.sweep import run_sweep

    names = ",".join(backends) if backends else None
    cells = build_cells(preset, SimpleNamespace(seed=root_seed, backends=names))
    return run_sweep(cells, basin_cell, out, root_seed=root_seed, device=device, progress=progress, workers=workers)


def command_parser(prog: str | None = None, exit_on_error: bool = True):
    """The command line of the study (see :func:`amtheory.studies.hopfield._cli.parser`)."""
    from amtheory.studies.hopfield._cli import parser

    p = parser(__doc__.splitlines()[0], "results/basins_vs_load", prog=prog, exit_on_error=exit_on_error)
    p.add_argument("--backends", default=None, help=f"comma-separated subset of {','.join(BACKENDS)} (null: all)")
    return p


def run_command(args) -> pd.DataFrame:
    """Run the sweep the parsed options of :func:`command_parser` describe."""
    from amtheory.studies.hopfield._cli import run_main

    return run_main(args, build_cells, basin_cell)


def main(argv=None) -> pd.DataFrame:
    return run_command(command_parser().parse_args(argv))


if __name__ == "__main__":
    main()
