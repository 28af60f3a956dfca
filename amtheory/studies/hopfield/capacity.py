"""Capacity of classical Hopfield networks: Hebbian, Storkey and pseudo-inverse rules against the load alpha = K/N.

For random binary patterns xi_1..xi_K of N spins stored with each rule, per stored pattern:

* ``fixed_point``: one synchronous step leaves it unchanged, ``sign(W xi) = xi``;
* ``one_step_error``: the share of its bits one step flips; Hebbian theory ``P_err = Phi(-1/sqrt(alpha))``
  (Hopfield 1982; Amit, Gutfreund, Sompolinsky 1985);
* ``final_error``: the share of wrong bits once the dynamics started at the pattern stops (fixed point, cycle or
  ``max_steps``); small below ``alpha_c ≈ 0.138`` and jumping above it (Amit et al. 1985).

Replicates are cells (one seed each). Run:
``python experiments/capacity.py --preset tiny|full --out results/capacity [--device cpu|cuda]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

RULES = ("hebbian", "storkey", "pseudoinverse")


@dataclass(frozen=True)
class CapacityCell:
    """One network: ``rule`` on ``K = round(alpha N)`` random binary patterns, replicate ``replicate``."""

    rule: str
    N: int
    alpha: float
    replicate: int
    update: str = "sync"
    max_steps: int = 50
    form: str = "auto"


def n_patterns(N: int, alpha: float) -> int:
    return max(1, int(round(alpha * N)))


def capacity_cell(cell: CapacityCell, generator: torch.Generator, device: str) -> pd.DataFrame:
    """One row per stored pattern: fixed point, one-step error, error after retrieval to convergence."""
    from amtheory.backends.classical import ClassicalHopfield
    from amtheory.core.dynamics import retrieve
    from amtheory.core.patterns import iid_patterns

    K = n_patterns(cell.N, cell.alpha)
    xi = iid_patterns(K, cell.N, vocab_size=2, generator=generator, device=device)
    mem = ClassicalHopfield(cell.rule, form=cell.form).store(xi, vocab_size=2)
    one = retrieve(mem, xi, update="sync", max_steps=1)
    res = retrieve(mem, xi, update=cell.update, max_steps=cell.max_steps, generator=generator)
    wrong1 = (one.states != xi).double().mean(-1)
    wrong = (res.states != xi).double().mean(-1)
    return pd.DataFrame(
        {
            "K": K,
            "load": K / cell.N,
            "pattern": np.arange(K),
            "fixed_point": (one.states == xi).all(-1).cpu().numpy(),
            "one_step_error": wrong1.cpu().numpy(),
            "final_error": wrong.cpu().numpy(),
            "converged": res.converged.cpu().numpy(),
            "cycled": res.cycled.cpu().numpy(),
            "steps": res.steps.cpu().numpy(),
        }
    )


def build_cells(preset: str, args=None) -> list[CapacityCell]:
    """The grid of a preset: rules x N x alpha x replicates (Hebbian alone at the largest N, in pattern form)."""
    update = getattr(args, "update", "sync") if args is not None else "sync"
    if preset == "tiny":
        sizes = {r: (64, 128, 256) for r in RULES}
        low = [0.02, 0.05, 0.08, 0.11, 0.14, 0.17, 0.2, 0.25, 0.3]
        high = [0.4, 0.6, 0.8, 0.95]
        reps = 6
    elif preset == "full":
        sizes = {
            "hebbian": (256, 512, 1024, 2048, 4096),
            "storkey": (256, 512, 1024),
            "pseudoinverse": (256, 512, 1024),
        }
        low = [round(a, 3) for a in np.arange(0.02, 0.301, 0.02)]
        high = [0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
        reps = 4
    elif preset == "micro":  # for tests: a few seconds
        sizes = {r: (32,) for r in RULES}
        low, high, reps = [0.03, 0.5], [0.9], 1
    else:
        raise ValueError(f"preset: expected 'tiny', 'full' or 'micro', got {preset!r}")
    cells = []
    for rule in RULES:
        # Hebbian is past its capacity well before alpha = 0.5; the other rules go towards alpha = 1.
        alphas = low + [a for a in high if a <= 0.5] if rule == "hebbian" else low + high
        for N in sizes[rule]:
            reps_N = reps if N <= 1024 else max(1, reps // 2)
            for alpha in alphas:
                for r in range(reps_N):
                    cells.append(CapacityCell(rule, N, float(alpha), r, update=update))
    return cells


def run(preset: str, out: str, *, device: str = "cpu", root_seed: int = 0, progress: bool = False, workers=None):
    """Run a preset and return the concatenated table (the function form of the command)."""
    from amtheory.core.sweep import run_sweep

    return run_sweep(
        build_cells(preset), capacity_cell, out, root_seed=root_seed, device=device, progress=progress, workers=workers
    )


def command_parser(prog: str | None = None, exit_on_error: bool = True):
    """The command line of the study (see :func:`amtheory.studies.hopfield._cli.parser`)."""
    from amtheory.studies.hopfield._cli import parser

    p = parser(__doc__.splitlines()[0], "results/capacity", prog=prog, exit_on_error=exit_on_error)
    p.add_argument("--update", choices=("sync", "async"), default="sync", help="dynamics of the retrieval run")
    return p


def run_command(args) -> pd.DataFrame:
    """Run the sweep the parsed options of :func:`command_parser` describe."""
    from amtheory.studies.hopfield._cli import run_main

    return run_main(args, build_cells, capacity_cell)


def main(argv=None) -> pd.DataFrame:
    return run_command(command_parser().parse_args(argv))


if __name__ == "__main__":
    main()
