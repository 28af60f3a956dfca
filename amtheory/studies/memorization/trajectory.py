"""The memorization study's ``trajectory`` measurement: the UDDM's prediction along the reverse chain from uniform
noise (``amtheory.diffusion.trajectory``), one row per (generated sequence, reverse step)."""

from __future__ import annotations

import pandas as pd
import torch

from amtheory.diffusion.trajectory import prediction_trajectory

__all__ = ["uddm_trajectory"]


def uddm_trajectory(uddm, cell, sets, generator, device) -> pd.DataFrame:
    """``n_generate`` sequences from uniform noise on the ``n_steps`` grid (the ``generation`` measurement's recipe:
    ancestral steps, argmax last step), with the per-sequence mean over the positions inside the ``[CLS]`` /
    ``[SEP]`` frame of the entropy and the top-two gap of ``p_theta(x_0 | x_t)`` at every step ``t_k``, then on the
    samples at ``entropy_t``. Columns ``split`` ("generated"), ``step``, ``t``, ``sequence``, ``entropy``, ``gap``;
    ``amtheory.diffusion.trajectory.trajectory_summary`` gives the means with their standard errors."""
    s = cell.settings
    L = uddm.length_
    inside = torch.zeros(L, dtype=torch.bool)
    inside[1 : L - 1] = True
    rows = prediction_trajectory(
        uddm, s.n_generate, n_steps=s.n_steps, t_end=s.entropy_t, positions=inside if L > 2 else None,
        generator=generator, per_sequence=True,
    )  # fmt: skip
    rows.insert(0, "split", "generated")
    return rows
