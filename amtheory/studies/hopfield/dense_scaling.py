"""Capacity of dense associative memories against the size N: polynomial n = 2, 3, 4 and exponential.

The capacity of one memory is the largest number K of random patterns for which at least a share ``threshold``
(default 0.99) of the stored patterns are fixed points of the deterministic synchronous update. It is found per N
and seed by bracketing (doubling or halving from a rough starting guess) and then bisection on K down to a relative
precision ``rel_tol``, with the patterns of smaller K a prefix of those of larger K (nested sets, so that the share
is close to monotone in K).

Theory: polynomial ``F(z) = z^n`` stores ``K ≈ N^(n-1) / (2 (2n-3)!! ln N)`` patterns (Krotov and Hopfield 2016),
a slope n - 1 on log-log axes; the exponential memory stores ``exp(alpha N)`` with ``alpha < ln 2 / 2`` (Demircigil
et al. 2017), so ``ln K_max / N`` is the quantity to plot. ``--vocab V`` repeats the sweep for V-state patterns
(agreement-count similarity, see ``amtheory.backends.dense``).

Run: ``python experiments/dense_scaling.py --preset tiny|full --out results/dense_scaling [--vocab 3]``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import pandas as pd
import torch


@dataclass(frozen=True)
class ScalingCell:
    """Capacity search for one memory kind at size ``N``; ``n`` is the polynomial degree (0 for "exp")."""

    kind: str
    n: int
    N: int
    replicate: int
    vocab: int = 2
    threshold: float = 0.99
    beta: float = 1.0
    k_limit: int = 20000
    rel_tol: float = 0.05


def _double_factorial(m: int) -> int:
    return math.prod(range(m, 0, -2)) if m > 0 else 1


def start_guess(cell: ScalingCell) -> int:
    """A rough starting K for the bracket (the binary theory; only where the search starts, not a result)."""
    N = cell.N
    if cell.kind == "exp":
        k = math.exp(0.25 * N)
    else:
        k = N ** (cell.n - 1) / (2 * _double_factorial(2 * cell.n - 3) * math.log(N))
    return max(2, int(k))


def k_cap(cell: ScalingCell) -> int:
    """Largest K examined: ``k_limit``, and for small N at most half of the ``V^N`` distinct patterns."""
    distinct = cell.vocab ** min(cell.N, 62)
    return max(2, min(cell.k_limit, distinct // 2))


def fixed_point_share(
    memory, patterns: torch.Tensor, *, threshold: float, chunk_elems: int, batch_elems: int | None = None
) -> tuple[float, bool, int]:
    """Share of ``patterns`` (all stored in ``memory``) left unchanged by one synchronous step, whether it reaches
    ``threshold``, and how many were checked.

    The check stops at the end of the first chunk of ``chunk_elems // (L K)`` patterns after which too many have
    failed; the share is then that of the patterns checked so far, so ``chunk_elems`` fixes the numbers returned.
    ``batch_elems`` (default ``chunk_elems``) only sets how many patterns go through ``memory.scores`` at once,
    rounded to whole chunks: a larger batch on a GPU returns the same numbers as the CPU's smaller one."""
    from amtheory.core.dynamics import argmax_keep

    K, L = patterns.shape
    allowed = math.floor((1.0 - threshold) * K + 1e-9)
    size = max(1, chunk_elems // max(1, L * K))
    per_batch = 1 if batch_elems is None else max(1, batch_elems // max(1, L * K) // size)
    fails, seen = 0, 0
    for i in range(0, K, size * per_batch):
        x = patterns[i : i + size * per_batch]
        new = argmax_keep(memory.scores(x), x)
        bad = (new != x).any(-1)
        # Failures per chunk, counted up to the end of each chunk: the stopping point of a chunk-at-a-time check.
        counts = torch.stack([b.sum() for b in bad.split(size)]).cumsum(0).tolist()
        for j, c in enumerate(counts):
            if fails + c > allowed:
                n = min(x.shape[0], (j + 1) * size)
                return 1.0 - (fails + c) / (seen + n), False, seen + n
        fails += counts[-1]
        seen += x.shape[0]
    return 1.0 - fails / K, True, K


def scaling_cell(cell: ScalingCell, generator: torch.Generator, device: str) -> pd.DataFrame:
    """One row: the capacity K_max (largest passing K seen), the smallest failing K, and the search record."""
    from amtheory.backends.dense import DenseAM
    from amtheory.core.patterns import iid_patterns

    t0 = time.perf_counter()
    cap = k_cap(cell)
    pool = iid_patterns(cap, cell.N, vocab_size=cell.vocab, generator=generator, device=device)
    # Bounded temporaries per scores call ([B, L, K] float64, a few of them); the chunk of the early stop is the
    # same on every device, so that the shares recorded in "evals" do not depend on it.
    chunk_elems = 2**21
    batch_elems = 2**26 if str(device).startswith("cuda") else None
    evals: dict[int, tuple[float, bool]] = {}

    def passes(K: int) -> bool:
        if K not in evals:
            mem = DenseAM(cell.kind, n=max(cell.n, 2), beta=cell.beta).store(pool[:K], vocab_size=cell.vocab)
            share, ok, _ = fixed_point_share(
                mem, pool[:K], threshold=cell.threshold, chunk_elems=chunk_elems, batch_elems=batch_elems
            )
            evals[K] = (share, ok)
        return evals[K][1]

    K = min(start_guess(cell), cap)
    lo, hi = 0, None
    if passes(K):
        lo = K
        while lo < cap:
            K = min(cap, 2 * lo)
            if passes(K):
                lo = K
            else:
                hi = K
                break
    else:
        hi = K
        K = hi // 2
        while K >= 1:
            if passes(K):
                lo = K
                break
            hi, K = K, K // 2
    if hi is not None:
        while hi - lo > max(1, int(cell.rel_tol * lo)):
            mid = (lo + hi) // 2
            if passes(mid):
                lo = mid
            else:
                hi = mid
    return pd.DataFrame(
        {
            "K_max": [lo],
            "K_fail": [-1 if hi is None else hi],
            "censored": [hi is None],
            "log_K_max": [math.log(lo) if lo > 0 else float("nan")],
            "log_K_per_N": [math.log(lo) / cell.N if lo > 0 else float("nan")],
            "share_at_max": [evals[lo][0] if lo in evals else float("nan")],
            "n_evals": [len(evals)],
            "evals": [json.dumps({str(k): v[0] for k, v in sorted(evals.items())})],
            "seconds": [time.perf_counter() - t0],
        }
    )


def build_cells(preset: str, args=None) -> list[ScalingCell]:
    """The grid of a preset: (kind, n) x N x replicates at vocabulary ``args.vocab`` (default 2)."""
    vocab = int(getattr(args, "vocab", 2) or 2) if args is not None else 2
    if preset == "tiny":
        sizes = {
            2: (16, 32, 64, 128, 256),
            3: (16, 24, 32, 48, 64, 96),
            4: (12, 16, 20, 24, 32, 40),
            0: (8, 10, 12, 14, 16, 18),
        }
        reps, k_limit = 4, 3000
    elif preset == "full":
        sizes = {
            2: (32, 64, 128, 256, 512, 1024),
            3: (32, 48, 64, 96, 128, 192, 256, 384),
            4: (16, 24, 32, 48, 64, 96, 128),
            0: (8, 12, 16, 20, 24),
        }
        reps, k_limit = 3, 20000
    elif preset == "micro":  # for tests: a few seconds
        sizes = {2: (16, 32), 3: (12, 16), 4: (10,), 0: (8, 10)}
        reps, k_limit = 1, 600
    else:
        raise ValueError(f"preset: expected 'tiny', 'full' or 'micro', got {preset!r}")
    if vocab > 2:
        # The exponential memory holds about V^(c N) patterns: shrink its sizes by ln 2 / ln V so that the same
        # pattern counts (and costs) are reached as for V = 2.
        sizes[0] = tuple(sorted({max(4, round(N * math.log(2) / math.log(vocab))) for N in sizes[0]}))
    cells = []
    for n, Ns in sizes.items():
        kind = "exp" if n == 0 else "poly"
        for N in Ns:
            for r in range(reps):
                cells.append(ScalingCell(kind, n, N, r, vocab=vocab, k_limit=k_limit))
    return cells


def run(
    preset: str,
    out: str,
    *,
    vocab: int = 2,
    device: str = "cpu",
    root_seed: int = 0,
    progress: bool = False,
    workers=None,
):
    """Run a preset and return the concatenated table (the function form of the command)."""
    from types import SimpleNamespace

    from amtheory.core.sweep import run_sweep

    cells = build_cells(preset, SimpleNamespace(vocab=vocab))
    return run_sweep(cells, scaling_cell, out, root_seed=root_seed, device=device, progress=progress, workers=workers)


def command_parser(prog: str | None = None, exit_on_error: bool = True):
    """The command line of the study (see :func:`amtheory.studies.hopfield._cli.parser`)."""
    from amtheory.studies.hopfield._cli import parser

    p = parser(__doc__.splitlines()[0], "results/dense_scaling", prog=prog, exit_on_error=exit_on_error)
    p.add_argument("--vocab", type=int, default=2, help="number of states per position (2: binary; 3 or 4: V-state)")
    return p


def run_command(args) -> pd.DataFrame:
    """Run the sweep the parsed options of :func:`command_parser` describe."""
    from amtheory.studies.hopfield._cli import run_main

    if args.vocab < 2:
        raise ValueError(f"--vocab: expected an int >= 2, got {args.vocab}")
    return run_main(args, build_cells, scaling_cell)


def main(argv=None) -> pd.DataFrame:
    return run_command(command_parser().parse_args(argv))


if __name__ == "__main__":
    main()
