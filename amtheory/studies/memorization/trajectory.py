"""The memorization study's ``trajectory`` measurement: the UDDM's prediction along the reverse chain from uniform
noise (``amtheory.diffusion.trajectory``), one row per (generated sequence, reverse step)."""

from __future__ import annotations

import pandas as pd
import torch

from amtheory.diffusion.trajectory import prediction_trajectory

__all__ = ["frame_positions", "uddm_trajectory"]


def uddm_trajectory(uddm, cell, sets, generator, device, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """``n_generate`` sequences from uniform noise on the ``n_steps`` grid (the ``generation`` measurement's recipe:
    ancestral steps, argmax last step), with the per-sequence mean over the positions inside the ``[CLS]`` /
    ``[SEP]`` frame (:func:`frame_positions`) of the entropy and the top-two gap of ``p_theta(x_0 | x_t)`` at every
    step ``t_k``, then on the samples at ``entropy_t``. Columns ``split`` ("generated"), ``step``, ``t``,
    ``sequence``, ``entropy``, ``gap``; ``amtheory.diffusion.trajectory.trajectory_summary`` gives the means with
    their standard errors. ``rows``: those per-sequence rows where a measured group found them for this cell with its
    draws (``group_prediction_trajectory``)."""
    s = cell.settings
    if rows is None:
        rows = prediction_trajectory(
            uddm, s.n_generate, n_steps=s.n_steps, t_end=s.entropy_t, positions=frame_positions(uddm.length_),
            generator=generator, per_sequence=True,
        )  # fmt: skip
    rows = rows.copy()
    rows.insert(0, "split", "generated")
    return rows


def frame_positions(length: int) -> torch.Tensor | None:
    """The positions inside the ``[CLS]`` / ``[SEP]`` frame of a block of ``length`` tokens (None: all, for blocks
    of at most two)."""
    if length <= 2:
        return None
    inside = torch.zeros(length, dtype=torch.bool)
    inside[1 : length - 1] = True
    return inside
