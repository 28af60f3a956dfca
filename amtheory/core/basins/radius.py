"""The basin radius estimator: bracket, bisection and scan over exact-count corruption levels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch

from amtheory.core._checks import check_choice, check_float, check_generator, check_int
from amtheory.core.basins.inputs import _check_memory, _check_targets, _dynamics, _info_columns
from amtheory.core.basins.stats import _bootstrap_median, wilson_interval
from amtheory.core.corruption import corrupt
from amtheory.core.dynamics import Async, Dynamics, Sync, retrieve
from amtheory.core.interface import AssociativeMemory

# ---------------------------------------------------------------------------------------------------------------
# Basin radius
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BasinRadius:
    """Per-pattern basin radii and how they were found.

    ``per_pattern`` ``[K]`` long: the radius R (changed tokens; -1: the pattern is not retrieved from itself);
    ``length``: L; ``median`` and ``median_ci``: the median radius over patterns and its percentile-bootstrap
    interval at ``confidence``; ``success``: every evaluated (pattern, r) with ``n_success``, ``n_trials``,
    ``p_hat``, ``wilson_low``, ``wilson_high``, ``passed``; ``censored`` ``[K]``: no failure seen up to
    ``max_radius`` (R is a lower bound); ``monotone_violations`` ``[K]``: evaluated levels above R that pass;
    ``scanned``: whether every level up to the bisection answer was evaluated; ``info``: the dynamics description.
    """

    per_pattern: torch.Tensor
    length: int
    delta: float
    n_trials: int
    confidence: float
    criterion: str
    max_radius: int
    median: float
    median_ci: tuple[float, float]
    success: pd.DataFrame
    censored: torch.Tensor
    monotone_violations: torch.Tensor
    scanned: bool
    info: dict

    @property
    def fraction(self) -> torch.Tensor:
        """``per_pattern / L`` (float64; -1 / L marks a pattern that is not a fixed point)."""
        return self.per_pattern.double() / self.length

    def to_frame(self) -> pd.DataFrame:
        """One row per pattern: radius, fraction, flags, and the settings that produced them."""
        df = pd.DataFrame(
            {
                "pattern": np.arange(self.per_pattern.shape[0]),
                "radius": self.per_pattern.cpu().numpy(),
                "fraction": self.fraction.cpu().numpy(),
                "fixed_point": (self.per_pattern >= 0).cpu().numpy(),
                "censored": self.censored.cpu().numpy(),
                "monotone_violations": self.monotone_violations.cpu().numpy(),
            }
        )
        consts = {
            "length": self.length,
            "delta": self.delta,
            "n_trials": self.n_trials,
            "confidence": self.confidence,
            "criterion": self.criterion,
            "max_radius": self.max_radius,
            "scanned": self.scanned,
        }
        consts.update(_info_columns(self.info, list(df.columns) + list(consts)))
        for k, v in consts.items():
            df[k] = v
        return df


def basin_radius(
    memory: AssociativeMemory,
    targets: torch.Tensor,
    *,
    delta: float = 0.1,
    n_trials: int = 64,
    update: str | Dynamics = "sync",
    beta: float | None = None,
    max_steps: int = 100,
    generator: torch.Generator | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    max_radius: int | None = None,
    criterion: Literal["estimate", "wilson"] = "estimate",
    scan: bool = True,
    batch_size: int | None = None,
    dynamics_for_radius: Callable[[torch.Tensor], Dynamics] | None = None,
) -> BasinRadius:
    """Basin radius of each target: the largest number of changed tokens from which exact retrieval of that same
    pattern succeeds with probability at least ``1 - delta``.

    ``R(xi) = max { r : s(r') >= 1 - delta for all r' <= r }`` with ``s(r) = P(retrieve(corrupt(xi, r)) == xi)``
    estimated from ``n_trials`` exact-count corruptions per (pattern, r); bisection with a checked bracket, then a
    scan of the skipped lower levels (see the module docstring for the rule). The median over patterns comes with
    a percentile-bootstrap interval from ``n_boot`` resamples drawn with ``generator``. Reference for the quantity:
    the basin radius of McEliece et al. (1987); for its estimation by Monte Carlo with Wilson intervals, see the
    module docstring.

    ``max_radius``: the largest r examined (default L). ``criterion``: "estimate" (``n_success / n_trials >=
    1 - delta``) or "wilson" (the lower Wilson bound at ``confidence`` is). ``batch_size``: the most queries per
    ``retrieve`` call (None: one call per round). ``dynamics_for_radius``: instead of one ``update`` for every
    level, a function from the changed-token counts of a batch of queries (``[B]`` long) to the dynamics that
    retrieves that batch (a reverse diffusion chain that starts at the noise level matching each query's
    corruption, for instance); ``update`` and ``beta`` are then not used.
    """
    _check_memory(memory)
    targets = _check_targets(memory, targets)
    delta = check_float("delta", delta, minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    check_int("n_trials", n_trials, minimum=1)
    check_int("max_steps", max_steps, minimum=0)
    check_generator("generator", generator)
    confidence = check_float("confidence", confidence, minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    check_int("n_boot", n_boot, minimum=1)
    check_choice("criterion", criterion, ("estimate", "wilson"))
    if not isinstance(scan, bool):
        raise TypeError(f"scan: expected a bool, got {type(scan).__name__}")
    if batch_size is not None:
        check_int("batch_size", batch_size, minimum=1)
    K, L = targets.shape
    R = L if max_radius is None else check_int("max_radius", max_radius, minimum=0, maximum=L)
    if dynamics_for_radius is not None and not callable(dynamics_for_radius):
        raise TypeError(f"dynamics_for_radius: expected a function of the radii, got {dynamics_for_radius!r:.60}")
    dyn = _dynamics(update, beta) if dynamics_for_radius is None else dynamics_for_radius

    counts: dict[tuple[int, int], int] = {}
    info: dict = {}

    def passes(n_success: int) -> bool:
        if criterion == "estimate":
            # Integer comparison avoids rounding at the threshold: n_success >= (1 - delta) n_trials.
            return n_success >= (1.0 - delta) * n_trials - 1e-9 * n_trials
        low, _ = wilson_interval(n_success, n_trials, confidence)
        return low >= 1.0 - delta

    def evaluate(pairs: list[tuple[int, int]]) -> None:
        pairs = [p for p in dict.fromkeys(pairs) if p not in counts]
        if not pairs:
            return
        got = _success_counts(memory, targets, pairs, n_trials, dyn, max_steps, generator, batch_size, info)
        counts.update(zip(pairs, got))

    # 1. The bracket: r = 0 must pass (else R = -1), r = max_radius must fail (else censored at max_radius).
    evaluate([(k, 0) for k in range(K)] + [(k, R) for k in range(K)])
    lo = np.zeros(K, dtype=np.int64)
    hi = np.full(K, R + 1, dtype=np.int64)  # R + 1: a virtual failure beyond the range
    fixed = np.array([passes(counts[(k, 0)]) for k in range(K)])
    for k in range(K):
        if fixed[k] and R > 0 and not passes(counts[(k, R)]):
            hi[k] = R
        elif fixed[k]:
            lo[k] = R
    # 2. Bisection, all patterns in one round per halving.
    while True:
        active = [k for k in range(K) if fixed[k] and hi[k] - lo[k] > 1]
        if not active:
            break
        mids = {k: int((lo[k] + hi[k]) // 2) for k in active}
        evaluate([(k, m) for k, m in mids.items()])
        for k, m in mids.items():
            if passes(counts[(k, m)]):
                lo[k] = m
            else:
                hi[k] = m
    # 3. Scan of the levels below the bisection answer that were skipped.
    if scan:
        evaluate([(k, r) for k in range(K) if fixed[k] for r in range(1, int(lo[k]))])
    radius = np.full(K, -1, dtype=np.int64)
    for k in range(K):
        if not fixed[k]:
            continue
        radius[k] = lo[k]
        if scan:
            for r in range(1, int(lo[k]) + 1):
                if not passes(counts[(k, r)]):
                    radius[k] = r - 1
                    break
    violations = np.zeros(K, dtype=np.int64)
    for (k, r), n in counts.items():
        if fixed[k] and r > radius[k] and passes(n):
            violations[k] += 1
    censored = fixed & (radius == R)

    keys = sorted(counts)
    ns = np.array([counts[p] for p in keys], dtype=np.int64)
    low, high = wilson_interval(ns, np.full(len(keys), n_trials), confidence)
    success = pd.DataFrame(
        {
            "pattern": np.array([p[0] for p in keys], dtype=np.int64),
            "r": np.array([p[1] for p in keys], dtype=np.int64),
            "n_success": ns,
            "n_trials": n_trials,
            "p_hat": ns / n_trials,
            "wilson_low": low,
            "wilson_high": high,
            "passed": np.array([passes(int(n)) for n in ns], dtype=bool),
        }
    )

    median, ci = _bootstrap_median(radius, n_boot, confidence, generator)
    dev = targets.device
    return BasinRadius(
        per_pattern=torch.as_tensor(radius, dtype=torch.long, device=dev),
        length=L,
        delta=delta,
        n_trials=n_trials,
        confidence=confidence,
        criterion=criterion,
        max_radius=R,
        median=median,
        median_ci=ci,
        success=success,
        censored=torch.as_tensor(censored, dtype=torch.bool, device=dev),
        monotone_violations=torch.as_tensor(violations, dtype=torch.long, device=dev),
        scanned=scan,
        info=info,
    )


def _success_counts(
    memory: AssociativeMemory,
    targets: torch.Tensor,
    pairs: list[tuple[int, int]],
    n_trials: int,
    dyn: Dynamics | Callable[[torch.Tensor], Dynamics],
    max_steps: int,
    generator: torch.Generator | None,
    batch_size: int | None,
    info: dict,
) -> list[int]:
    """Exact-retrieval successes out of ``n_trials`` for each (pattern, r) pair, retrieved in batches of
    ``batch_size`` queries (None: all in one call).

    ``corrupt`` takes one ``n_changed`` per call, so queries are corrupted one distinct r at a time, in increasing r,
    and every corruption draws from ``generator`` before any retrieval does. Only the level being retrieved and the
    rest of a batch are held: when the queries take more than one batch and the dynamics draw random numbers too,
    each level is corrupted once up front to advance ``generator`` and again, from the generator state it started
    from, when its turn comes.
    """
    V = memory.vocab_size_
    by_r: dict[int, list[int]] = {}
    for i, (_, r) in enumerate(pairs):
        by_r.setdefault(r, []).append(i)
    levels = [(r, torch.tensor([pairs[i][0] for i in by_r[r]], dtype=torch.long, device=targets.device)) for r in by_r]
    levels.sort(key=lambda lv: lv[0])
    order = [i for r, _ in levels for i in by_r[r]]
    total = len(pairs) * n_trials
    step = total if batch_size is None else batch_size
    # Deterministic dynamics draw nothing, so corrupting each level just before it is retrieved takes the same
    # numbers from the generator as corrupting every level first.
    draws = callable(dyn) and not isinstance(dyn, Dynamics)
    draws = draws or not (
        (isinstance(dyn, Sync) or (isinstance(dyn, Async) and dyn.order == "sequential")) and dyn.beta is None
    )
    states = None
    if generator is not None and step < total and draws:
        states = []
        for r, rows in levels:
            states.append(generator.get_state())
            corrupt(targets[rows].repeat_interleave(n_trials, dim=0), vocab_size=V, n_changed=r, generator=generator)

    exact = []
    held_x0: list[torch.Tensor] = []
    held_q: list[torch.Tensor] = []
    held_r: list[torch.Tensor] = []
    n_held = 0
    for j, (r, rows) in enumerate(levels):
        x0 = targets[rows].repeat_interleave(n_trials, dim=0)
        g = generator
        if states is not None:
            g = torch.Generator(device=generator.device)
            g.set_state(states[j])
        q = corrupt(x0, vocab_size=V, n_changed=r, generator=g).states
        held_x0.append(x0)
        held_q.append(q)
        held_r.append(torch.full((x0.shape[0],), r, dtype=torch.long))
        n_held += x0.shape[0]
        last = j == len(levels) - 1
        while n_held >= step or (last and n_held > 0):
            all_x0, all_q, all_r = torch.cat(held_x0), torch.cat(held_q), torch.cat(held_r)
            take = min(step, n_held)
            upd = dyn if isinstance(dyn, Dynamics) else dyn(all_r[:take])
            res = retrieve(memory, all_q[:take], update=upd, max_steps=max_steps, generator=generator)
            exact.append((res.states == all_x0[:take]).all(-1))
            info.update(res.info)
            held_x0, held_q, held_r = [all_x0[take:]], [all_q[take:]], [all_r[take:]]
            n_held -= take
    n = torch.cat(exact).view(len(pairs), n_trials).sum(-1).cpu().tolist()
    out = [0] * len(pairs)
    for pos, i in enumerate(order):
        out[i] = int(n[pos])
    return out
