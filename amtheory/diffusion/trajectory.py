"""The denoiser's prediction along the reverse chain from uniform noise: its entropy and its top-two gap per step.

Generation starts from uniform noise at ``t = 1`` and runs the reverse chain to 0 (``amtheory.diffusion.sampler``).
At every reverse step ``t_k`` the chain asks the denoiser for ``p(x_0 | x_t)``; this module records two numbers of
that prediction per position, averaged over the positions of each sequence:

* the entropy ``H = -sum_v p(v) log p(v)`` in nats (``amtheory.core.entropy.entropy_from_log_probs``);
* the gap ``p_(1) - p_(2)`` between the largest and the second-largest probability, in [0, 1]: 1 where the
  prediction has settled on one token, 0 where two tokens tie for first place.

Pham et al. (2026) record both along the trajectory (their public code calls the second the "spectral gap"; it is the
margin of the per-token prediction, not an eigenvalue gap of a transition matrix). docs/theory.md, "The prediction
along the reverse trajectory", says why this definition is the one used. In the memorization regime the entropy
falls to 0 and the gap rises to 1 as ``t -> 0``: the chain has fallen into the basin of one stored sequence.

The trajectory is the one generation runs (the sampler's ``observe`` hook, the same steps and draws as
``generate``), followed by one more prediction on the finished samples at ``t_end`` (the time of the conditional
entropy probe).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
import torch

from amtheory.core._checks import check_float, check_generator, check_int
from amtheory.core.entropy import entropy_from_log_probs
from amtheory.diffusion.denoiser import Denoiser

__all__ = ["group_prediction_trajectory", "prediction_gap", "prediction_trajectory", "trajectory_summary"]


def prediction_gap(log_x: torch.Tensor) -> torch.Tensor:
    """``p_(1) - p_(2)``: the largest minus the second-largest probability of ``exp(log_x)`` over the last axis
    (float64, one value per row)."""
    if not isinstance(log_x, torch.Tensor) or not log_x.is_floating_point() or log_x.dim() < 1:
        raise TypeError(f"log_x: expected a floating-point tensor of log-probabilities, got {type(log_x).__name__}")
    if log_x.shape[-1] < 2:
        raise ValueError(f"log_x: expected at least 2 tokens on the last axis, got {log_x.shape[-1]}")
    # The two largest in the input's dtype, then float64: the same numbers as a float64 copy's, without the copy.
    top = torch.topk(log_x, 2, dim=-1).values.double().exp()
    return top[..., 0] - top[..., 1]


def trajectory_summary(rows: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per ``(*by, step, t)``: the mean over sequences of ``entropy`` and ``gap`` (per-sequence rows, as
    ``prediction_trajectory(..., per_sequence=True)`` gives) with their standard errors ``std / sqrt(n)`` (sample
    standard deviation) and ``n_sequences``. Every group needs at least 2 sequences for a standard error."""
    need = {*by, "step", "t", "entropy", "gap"}
    if not isinstance(rows, pd.DataFrame) or not need <= set(rows.columns):
        raise ValueError(f"rows: expected a DataFrame with the columns {sorted(need)}")
    keys = [*by, "step", "t"]
    grouped = rows.groupby(keys, sort=True)
    out = grouped[["entropy", "gap"]].mean()
    sd = grouped[["entropy", "gap"]].std(ddof=1)
    n = grouped.size()
    if len(n) and int(n.min()) < 2:
        raise ValueError(f"rows: expected at least 2 sequences per step for a standard error, got {int(n.min())}")
    root_n = n.astype(float) ** 0.5
    out["entropy_se"] = sd["entropy"] / root_n
    out["gap_se"] = sd["gap"] / root_n
    out["n_sequences"] = n
    out = out.reset_index()
    if not by:
        out = out.sort_values("step", kind="stable").reset_index(drop=True)
    return out[[*keys, "entropy", "entropy_se", "gap", "gap_se", "n_sequences"]]


def _check_positions(positions: object, length: int) -> torch.Tensor | None:
    if positions is None:
        return None
    if not isinstance(positions, torch.Tensor) or positions.dtype != torch.bool or tuple(positions.shape) != (length,):
        got = f"{positions.dtype} {tuple(positions.shape)}" if isinstance(positions, torch.Tensor) else positions
        raise ValueError(f"positions: expected a bool tensor of shape [{length}] (the positions counted), got {got}")
    if not bool(positions.any()):
        raise ValueError("positions: expected at least one position counted, got none")
    return positions


def prediction_trajectory(
    denoiser: Denoiser,
    n: int,
    *,
    n_steps: int = 1000,
    sampler: Literal["ancestral", "argmax"] = "ancestral",
    final: Literal["posterior", "argmax"] = "argmax",
    t_end: float = 1e-5,
    positions: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    per_sequence: bool = False,
) -> pd.DataFrame:
    """Generate ``n`` sequences from uniform noise (``generate`` with these arguments) and record the denoiser's
    prediction at every reverse step: the per-sequence mean over ``positions`` (a ``[L]`` bool mask; None: all) of
    the entropy (nats) and of the top-two gap of ``p(x_0 | x_t)``.

    Steps ``0 .. n_steps - 1`` are the chain's (``t = 1, (n_steps - 1) / n_steps, ..., 1 / n_steps``; the last one
    is the final noise removal); step ``n_steps`` is the prediction on the finished samples at ``t = t_end``.
    Returns ``trajectory_summary`` of the rows (columns ``step``, ``t``, ``entropy``, ``entropy_se``, ``gap``,
    ``gap_se``, ``n_sequences``), or with ``per_sequence`` the rows themselves (``step``, ``t``, ``sequence``,
    ``entropy``, ``gap``). ``n`` must be at least 2 (a standard error over sequences).
    """
    from amtheory.diffusion.sampler import generate

    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser: expected an amtheory.diffusion Denoiser, got {type(denoiser).__name__}")
    check_generator("generator", generator)

    def chain(record):
        return generate(denoiser, n, n_steps=n_steps, sampler=sampler, final=final, generator=generator, observe=record)

    entropy, gap, times = _recorded(denoiser, denoiser.length_, (), chain, n, n_steps, t_end, positions)
    table = _table(entropy, gap, times)
    return table if per_sequence else trajectory_summary(table)


def group_prediction_trajectory(
    denoiser,
    n: int,
    *,
    n_steps: int = 1000,
    sampler: Literal["ancestral", "argmax"] = "ancestral",
    final: Literal["posterior", "argmax"] = "argmax",
    t_end: float = 1e-5,
    positions: torch.Tensor | None = None,
    generators=None,
) -> list[pd.DataFrame]:
    """:func:`prediction_trajectory` (``per_sequence=True``) of every member of a
    :class:`~amtheory.diffusion.group_eval.GroupDenoiser` at once: one table per member, member ``g``'s that of
    ``prediction_trajectory(member_g, n, ..., generator=generators[g], per_sequence=True)`` (its noise and draws
    from its own generator; the predictions up to float rounding of the batched products)."""
    from amtheory.diffusion.group_eval import GroupDenoiser, group_generate

    if not isinstance(denoiser, GroupDenoiser):
        raise TypeError(f"denoiser: expected a GroupDenoiser, got {type(denoiser).__name__}")

    def chain(record):
        return group_generate(
            denoiser, n, n_steps=n_steps, sampler=sampler, final=final, generators=generators, observe=record
        )  # fmt: skip

    G = denoiser.n_members
    entropy, gap, times = _recorded(denoiser, denoiser.config.length, (G,), chain, n, n_steps, t_end, positions)
    return [_table(entropy[g], gap[g], times) for g in range(G)]


def _recorded(denoiser, length: int, lead: tuple[int, ...], chain, n: int, n_steps: int, t_end: float, positions):
    """The entropies and gaps ``[*lead, n_steps + 1, n]`` (float64) and the times ``[n_steps + 1]`` of a trajectory:
    ``chain(record)`` generates the ``[*lead, n, L]`` samples, calling ``record`` at every reverse step (the
    sampler's ``observe``), then the denoiser's prediction on the samples at ``t_end``, ``batch_size`` at a time.
    ``lead``: ``()`` for one denoiser, ``(G,)`` for a group's members."""
    check_int("n", n, minimum=2)
    check_int("n_steps", n_steps, minimum=1)
    t_end = check_float("t_end", t_end, minimum=0.0, maximum=1.0, strict_min=True)
    mask = _check_positions(positions, length)
    # The per-sequence mean over the counted positions.
    weight = torch.ones(length, dtype=torch.float64) if mask is None else mask.double()
    weight = (weight / weight.sum()).to(denoiser.device)
    entropy = torch.full((*lead, n_steps + 1, n), float("nan"), dtype=torch.float64)
    gap = torch.full_like(entropy, float("nan"))
    times = torch.full((n_steps + 1,), float("nan"), dtype=torch.float64)

    def record(step: int, rows: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor, log_x: torch.Tensor) -> None:
        entropy[..., step, rows] = (entropy_from_log_probs(log_x) @ weight).cpu()
        gap[..., step, rows] = (prediction_gap(log_x) @ weight).cpu()
        times[step] = float(t[0])

    samples = chain(record)
    step = denoiser.batch_size or n
    for lo in range(0, n, step):
        rows = torch.arange(lo, min(lo + step, n))
        chunk = samples[..., rows.to(samples.device), :]
        record(n_steps, rows, torch.tensor([t_end], dtype=torch.float64), chunk, denoiser.log_posterior(chunk, t_end))
    return entropy, gap, times


def _table(entropy: torch.Tensor, gap: torch.Tensor, times: torch.Tensor) -> pd.DataFrame:
    """The per-sequence rows of a trajectory from its ``[n_steps + 1, n]`` entropies and gaps."""
    if bool(torch.isnan(entropy).any()):
        raise RuntimeError("the reverse chain skipped a step for some sequences; expected every step for every one")
    steps, n = entropy.shape
    return pd.DataFrame(
        {
            "step": torch.arange(steps).repeat_interleave(n).numpy(),
            "t": times.repeat_interleave(n).numpy(),
            "sequence": torch.arange(n).repeat(steps).numpy(),
            "entropy": entropy.reshape(-1).numpy(),
            "gap": gap.reshape(-1).numpy(),
        }
    )
