"""Basins of attraction by Monte Carlo: the recovery curve and the basin radius.

Both are written on ``corrupt`` and ``retrieve`` alone, so they run unchanged for every backend and every
``Dynamics`` (synchronous, asynchronous, Glauber, or a reverse-diffusion sampler).

* Recovery curve: at each corruption level, corrupt every target ``n_trials`` times, retrieve, and record the
  per-trial metrics of ``amtheory.core.metrics.retrieval_records`` (share of corrupted tokens restored, share of clean
  tokens broken, exact match, overlap, outcome). This is the paper's "basin size" at a fixed noise level
  (Pham et al. 2026, arXiv 2604.26841).
* Basin radius: for pattern ``xi``, the success curve ``s(r) = P(retrieve(corrupt(xi, r)) == xi)`` over the number
  ``r`` of changed tokens (exact-count corruption: a fixed Hamming distance). The radius at tolerance ``delta`` is

      R(xi) = max { r : s(r') >= 1 - delta for every r' <= r },

  the first-passage radius. ``R = -1`` when ``xi`` itself is not retrieved (``s(0) < 1 - delta``: not a fixed
  point of the dynamics). Success means the same pattern, never another memory or a spin-reversed copy.

How ``basin_radius`` finds R (each "round" is one batched ``retrieve`` over all patterns and trials):

1. Bracket: evaluate r = 0 and r = ``max_radius`` for every pattern. Failure at 0 gives R = -1. Success at
   ``max_radius`` means no failure was seen in range; the radius is censored at ``max_radius``.
2. Bisection on ``[lo, hi]`` with ``lo`` passing and ``hi`` failing, all patterns in one round per halving
   (``ceil(log2(max_radius))`` rounds). It ends at a ``lo`` that passes with ``lo + 1`` failing.
3. Scan (``scan=True``, the default): because ``s(r)`` need not be monotone, every level below ``lo`` that the
   bisection skipped is evaluated, in one more round. R is then exactly the first-passage radius of the estimated
   curve: one less than the first failing level. With ``scan=False`` R is the bisection answer, a radius at which
   the pattern passes with the next level failing, but levels below it are not all checked.

``monotone_violations`` counts, per pattern, the evaluated levels above R that pass: non-zero means the estimated
curve came back above threshold after its first failure (for V = 2 this happens near r = L, where queries
approach the spin-reversed pattern; there it counts as failure anyway).

A level passes when the Monte Carlo estimate ``n_success / n_trials >= 1 - delta`` (``criterion="estimate"``), or,
more conservatively, when the lower end of its Wilson score interval is (``criterion="wilson"``). Every evaluated
(pattern, r) comes back in ``BasinRadius.success`` with its Wilson interval (Wilson 1927).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
import torch

from amtheory.core._checks import check_beta, check_choice, check_float, check_generator, check_int, check_tokens
from amtheory.core.corruption import corrupt
from amtheory.core.dynamics import Async, Dynamics, Sync, make_dynamics, retrieve
from amtheory.core.interface import AssociativeMemory
from amtheory.core.metrics import records_to_frame, retrieval_records

# ---------------------------------------------------------------------------------------------------------------
# Wilson score interval
# ---------------------------------------------------------------------------------------------------------------


def wilson_interval(
    successes: int | np.ndarray | torch.Tensor | Iterable[int],
    trials: int | np.ndarray | torch.Tensor | Iterable[int],
    confidence: float = 0.95,
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    With ``p = s / n`` and ``z`` the two-sided standard-normal quantile of ``confidence``:

        center = (p + z^2 / (2n)) / (1 + z^2 / n),
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2)),

    and the interval is ``[center - half, center + half]`` (clipped to [0, 1] against rounding). Unlike the normal
    approximation it stays inside [0, 1] and is informative at ``p = 0`` and ``p = 1``. Scalars in give floats
    out; arrays broadcast and give arrays.
    """
    check_float("confidence", confidence, minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    scalar = np.ndim(successes) == 0 and np.ndim(trials) == 0
    s = _as_array("successes", successes)
    n = _as_array("trials", trials)
    if np.any(n < 1) or np.any(n != np.floor(n)):
        raise ValueError(f"trials: expected integers >= 1, got {n.tolist() if n.size < 10 else 'an array'}")
    if np.any(s < 0) or np.any(s != np.floor(s)):
        raise ValueError("successes: expected non-negative integers")
    if np.any(s > n):
        raise ValueError("successes: expected successes <= trials")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    z2 = z * z
    p = s / n
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z / denom * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At p = 0 (p = 1) the lower (upper) end is exactly 0 (1); set it so rounding cannot leave it a hair off.
    low = np.where(s == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    high = np.where(s == n, 1.0, np.clip(center + half, 0.0, 1.0))
    if scalar:
        return float(low), float(high)
    return low, high


def _as_array(name: str, v: object) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected an integer or an array of integers, got {type(v).__name__}") from e
    return a


# ---------------------------------------------------------------------------------------------------------------
# Shared validation
# ---------------------------------------------------------------------------------------------------------------


def _check_memory(memory: object) -> AssociativeMemory:
    if not isinstance(memory, AssociativeMemory):
        raise TypeError(f"memory: expected an AssociativeMemory, got {type(memory).__name__}")
    return memory


def _check_targets(memory: AssociativeMemory, targets: object) -> torch.Tensor:
    targets = memory.check_queries("targets", targets)
    if targets.shape[0] == 0:
        raise ValueError("targets: expected at least one target (shape [K, L] with K >= 1), got K = 0")
    return targets


def _dynamics(update: str | Dynamics, beta: float | None) -> Dynamics:
    if isinstance(update, Dynamics):
        if beta is not None:
            raise ValueError(f"beta: a Dynamics object carries its own beta; expected beta=None, got {beta!r}")
        return update
    if not isinstance(update, str):
        raise TypeError(f"update: expected 'sync', 'async' or a Dynamics object, got {type(update).__name__}")
    check_beta("beta", beta, allow_none=True)
    return make_dynamics(update, beta=beta)


def _info_columns(info: dict, taken: Iterable[str]) -> dict:
    """The dynamics description as constant table columns (non-scalars as text; clashing names prefixed)."""
    taken = set(taken)
    out = {}
    for k, v in info.items():
        name = k if k not in taken else f"dynamics_{k}"
        out[name] = v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
    return out


def _resolve_stored(
    targets: torch.Tensor, stored: torch.Tensor | None, target_index: torch.Tensor | None, vocab_size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The stored set and, per target, its row in it (-1: unseen); inferred by row matching when not given."""
    if stored is None:
        if target_index is not None:
            raise ValueError("target_index: only meaningful with stored; got target_index without stored")
        return None, None
    check_tokens("stored", stored, vocab_size=vocab_size, length=targets.shape[1], rank=2)
    if stored.device != targets.device:
        raise ValueError(f"stored: expected a tensor on the targets' device {targets.device}, got {stored.device}")
    if target_index is None:
        eq = (targets.unsqueeze(1) == stored.unsqueeze(0)).all(-1)  # [K, S]
        first = eq.long().argmax(-1)
        target_index = torch.where(eq.any(-1), first, torch.full_like(first, -1))
        return stored, target_index
    if not isinstance(target_index, torch.Tensor) or target_index.dtype != torch.long:
        raise TypeError(f"target_index: expected a torch.long tensor [K], got {type(target_index).__name__}")
    if target_index.shape != (targets.shape[0],):
        raise ValueError(f"target_index: expected shape ({targets.shape[0]},), got {tuple(target_index.shape)}")
    if target_index.numel() and (int(target_index.min()) < -1 or int(target_index.max()) >= stored.shape[0]):
        raise ValueError(f"target_index: expected values in [-1, {stored.shape[0]}), got out-of-range values")
    return stored, target_index.to(targets.device)


def _check_levels(levels: object, mode: str, length: int) -> list:
    if isinstance(levels, torch.Tensor):
        levels = levels.tolist()
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Iterable):
        raise TypeError(f"levels: expected a sequence of corruption levels, got {type(levels).__name__}")
    levels = list(levels)
    if not levels:
        raise ValueError("levels: expected at least one corruption level, got an empty sequence")
    if mode == "count":
        return [check_int("levels", lv, minimum=0, maximum=length) for lv in levels]
    return [check_float("levels", lv, minimum=0.0, maximum=1.0) for lv in levels]


# ---------------------------------------------------------------------------------------------------------------
# Recovery curve
# ---------------------------------------------------------------------------------------------------------------


def recovery_curve(
    memory: AssociativeMemory,
    targets: torch.Tensor,
    *,
    levels: Iterable[int] | Iterable[float],
    mode: Literal["count", "p"] = "count",
    n_trials: int,
    update: str | Dynamics = "sync",
    beta: float | None = None,
    max_steps: int = 100,
    generator: torch.Generator | None = None,
    stored: torch.Tensor | None = None,
    target_index: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Recovery at each corruption level: one row per (target, level, trial).

    For target ``x0``, query ``xq = corrupt(x0, level)`` and final state ``xf = retrieve(xq)``, each row holds the
    metrics of ``retrieval_records``: ``recovered = #{xq != x0, xf == x0} / #{xq != x0}``,
    ``broken = #{xq == x0, xf != x0} / #{xq == x0}``, ``exact``, ``overlap``, ``fraction_changed`` (and
    ``outcome`` when ``stored`` is given), plus ``target`` (row of ``targets``), ``trial``, ``level``, ``mode``,
    ``steps``, ``converged``, ``cycled`` and the dynamics description (``dynamics``, ``beta``, ``max_steps``, ...).
    Averaged over trials this is the recovery rate of perturbed tokens, the rate of broken clean tokens and the
    exact-match rate of Pham et al. (2026).

    ``mode``: "count" (``levels`` are numbers of changed tokens, exact-count corruption) or "p" (``levels`` are
    Bernoulli replacement probabilities, the uniform-diffusion forward kernel at ``1 - alpha_t = p``).
    ``stored``: the stored set ``[S, L]``, for the outcome column; ``target_index`` ``[K]`` names each target's
    row in it (-1: unseen) and is found by matching rows when left out. All trials of a level go through one
    ``retrieve`` call; ``generator`` drives both the corruption and stochastic dynamics.
    """
    _check_memory(memory)
    targets = _check_targets(memory, targets)
    check_choice("mode", mode, ("count", "p"))
    check_int("n_trials", n_trials, minimum=1)
    check_int("max_steps", max_steps, minimum=0)
    check_generator("generator", generator)
    K, L = targets.shape
    V = memory.vocab_size_
    levels = _check_levels(levels, mode, L)
    dyn = _dynamics(update, beta)
    stored, target_index = _resolve_stored(targets, stored, target_index, V)

    dev = targets.device
    # Row b holds target b // n_trials, trial b % n_trials.
    x0 = targets.repeat_interleave(n_trials, dim=0)
    target_col = torch.arange(K, device=dev).repeat_interleave(n_trials)
    trial_col = torch.arange(n_trials, device=dev).repeat(K)
    tidx = target_index.repeat_interleave(n_trials) if target_index is not None else None
    frames = []
    for level in levels:
        kw = {"n_changed": level} if mode == "count" else {"p": level}
        c = corrupt(x0, vocab_size=V, generator=generator, **kw)
        res = retrieve(memory, c.states, update=dyn, max_steps=max_steps, generator=generator)
        rec = retrieval_records(x0, c.states, res.states, vocab_size=V, stored=stored, target_index=tidx)
        rec.update(target=target_col, trial=trial_col, steps=res.steps, converged=res.converged, cycled=res.cycled)
        consts = {"level": level, "mode": mode}
        consts.update(_info_columns(res.info, list(rec) + list(consts)))
        frames.append(records_to_frame(rec, **consts))
    df = pd.concat(frames, ignore_index=True)
    first = ["target", "level", "trial", "mode"]
    return df[first + [c for c in df.columns if c not in first]]


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
    ``retrieve`` call (None: one call per round).
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
    dyn = _dynamics(update, beta)

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
    dyn: Dynamics,
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
    draws = not ((isinstance(dyn, Sync) or (isinstance(dyn, Async) and dyn.order == "sequential")) and dyn.beta is None)
    states = None
    if generator is not None and step < total and draws:
        states = []
        for r, rows in levels:
            states.append(generator.get_state())
            corrupt(targets[rows].repeat_interleave(n_trials, dim=0), vocab_size=V, n_changed=r, generator=generator)

    exact = []
    held_x0: list[torch.Tensor] = []
    held_q: list[torch.Tensor] = []
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
        n_held += x0.shape[0]
        last = j == len(levels) - 1
        while n_held >= step or (last and n_held > 0):
            all_x0, all_q = torch.cat(held_x0), torch.cat(held_q)
            take = min(step, n_held)
            res = retrieve(memory, all_q[:take], update=dyn, max_steps=max_steps, generator=generator)
            exact.append((res.states == all_x0[:take]).all(-1))
            info.update(res.info)
            held_x0, held_q = [all_x0[take:]], [all_q[take:]]
            n_held -= take
    n = torch.cat(exact).view(len(pairs), n_trials).sum(-1).cpu().tolist()
    out = [0] * len(pairs)
    for pos, i in enumerate(order):
        out[i] = int(n[pos])
    return out


def _bootstrap_median(
    radius: np.ndarray, n_boot: int, confidence: float, generator: torch.Generator | None
) -> tuple[float, tuple[float, float]]:
    """Median of the per-pattern radii and its percentile-bootstrap interval (patterns resampled with
    replacement; Efron and Tibshirani 1993)."""
    K = radius.shape[0]
    vals = radius.astype(np.float64)
    where = generator.device if generator is not None else torch.device("cpu")
    idx = torch.randint(0, K, (n_boot, K), generator=generator, device=where).cpu().numpy()
    meds = np.median(vals[idx], axis=1)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(meds, [a, 1.0 - a])
    return float(np.median(vals)), (float(lo), float(hi))


__all__ = ["BasinRadius", "basin_radius", "recovery_curve", "wilson_interval"]
