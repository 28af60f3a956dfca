"""Per-token entropy of the denoiser's prediction on the memorization study's recovery queries, split by whether the
reverse chain restored the token (``amtheory.studies.memorization.evaluation``, measurement ``recovery``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from amtheory.studies.memorization.cells import DataSpec
from amtheory.studies.memorization.data import ordinary_positions

__all__ = ["entropies_from_chains", "entropy_by_outcome"]


def entropy_by_outcome(
    uddm, df: pd.DataFrame, data: DataSpec, device: str, batch: int, *, entropies: dict | None = None
) -> pd.DataFrame:
    """Add ``entropy_recovered`` and ``entropy_unrecovered`` to a UDDM recovery table: per row, the mean entropy
    (nats) of the denoiser's prediction ``p_theta(x_0 | x_t = query)`` at the corruption's own ``t``, over the
    changed ordinary tokens that the reverse chain restored and over those it did not (NaN where there are none).
    ``entropies``: the per-token entropies ``[rows, L]`` of each t's rows (in table order) where the caller
    computed them (a group of models measured at once); else ``uddm.entropy`` computes them, ``batch`` rows at a
    time."""
    rec = np.full(len(df), np.nan)
    unrec = np.full(len(df), np.nan)
    for t in df["t"].unique():
        rows = np.flatnonzero(df["t"].to_numpy() == t)
        x0 = torch.as_tensor(np.stack(df["x0"].to_numpy()[rows]))
        xq = torch.as_tensor(np.stack(df["xq"].to_numpy()[rows]))
        xf = torch.as_tensor(np.stack(df["xf"].to_numpy()[rows]))
        if entropies is not None:
            h = entropies[float(t)].double().cpu()
            if tuple(h.shape) != tuple(xq.shape):
                raise ValueError(f"entropies: expected [{xq.shape[0]}, {xq.shape[1]}] at t = {t}, got {tuple(h.shape)}")
        else:
            xq_dev = xq.to(device)
            h = torch.cat([uddm.entropy(xq_dev[i : i + batch], t=float(t)) for i in range(0, len(rows), batch)])
            h = h.double().cpu()
        changed = (xq != x0) & ordinary_positions(data, x0)
        right = xf == x0
        for out, sel in ((rec, changed & right), (unrec, changed & ~right)):
            n = sel.sum(-1)
            out[rows] = torch.where(n > 0, (h * sel).sum(-1) / n.clamp_min(1), torch.nan).numpy()
    df["entropy_recovered"] = rec
    df["entropy_unrecovered"] = unrec
    return df


def entropies_from_chains(finals: dict | None, splits: list[str], ts) -> dict | None:
    """The per-token entropies ``[rows, L]`` of each t's recovery rows (split by split, in the order of
    ``splits``, as the recovery table has them) from a group's batched chains (``finals[("entropy", split, t)]``),
    or None where the caller ran none."""
    if finals is None or not all(("entropy", split, float(t)) in finals for split in splits for t in ts):
        return None
    return {float(t): torch.cat([finals[("entropy", split, float(t))] for split in splits]) for t in ts}
