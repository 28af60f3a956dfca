"""The recovery curve: per-trial retrieval metrics at each corruption level."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import pandas as pd
import torch

from amtheory.core._checks import check_choice, check_generator, check_int
from amtheory.core.basins.inputs import (
    _check_levels,
    _check_memory,
    _check_targets,
    _dynamics,
    _info_columns,
    _resolve_stored,
)
from amtheory.core.corruption import corrupt
from amtheory.core.dynamics import Dynamics, retrieve
from amtheory.core.interface import AssociativeMemory
from amtheory.core.metrics import records_to_frame, retrieval_records

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
