"""The memorization experiment's trajectory figure: along the reverse chain from uniform noise (t = 1) to the
samples, the mean per-token entropy of the model's prediction ``p_theta(x_0 | x_t)`` (top row) and the gap between
its two largest probabilities (bottom row), one curve per training-set size, one column per model size, each with a
band of one standard error over the generated sequences (``amtheory.diffusion.trajectory``).

A model that memorized its training set is sure of every token early in the chain (entropy near 0, gap near 1 well
before t = 0); one that generalizes keeps a finite entropy until late.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from amtheory.diffusion.trajectory import trajectory_summary
from amtheory.figures import style
from amtheory.figures.style import plt, save, sns


def trajectory_axes(rows: pd.DataFrame):
    """The figure of a ``trajectory`` table (per-sequence rows with ``model_size``, ``train_size``, ``step``,
    ``t``, ``entropy``, ``gap``; or their means with ``entropy_se`` and ``gap_se``, as ``trajectory_summary``
    gives): returns ``(fig, axes)``, axes ``[2, n_model_sizes]`` (one column per ``model_size`` value); time runs
    right to left on a log axis, from t = 1 to the samples."""
    missing = [c for c in ("model_size", "train_size", "step", "t", "entropy", "gap") if c not in rows]
    if missing:
        raise ValueError(f"rows: expected the columns of a trajectory table, missing {missing}")
    summarized = {"entropy_se", "gap_se"} <= set(rows.columns)
    summary = rows if summarized else trajectory_summary(rows, by=("model_size", "train_size"))
    models = sorted(summary["model_size"].unique())
    sizes = sorted(int(n) for n in summary["train_size"].unique())
    colours = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 6.4), squeeze=False, sharex=True)
    for j, ms in enumerate(models):
        for n in sizes:
            d = summary[(summary["model_size"] == ms) & (summary["train_size"] == n)].sort_values("step")
            if d.empty:
                continue
            for i, (col, se) in enumerate((("entropy", "entropy_se"), ("gap", "gap_se"))):
                ax = axes[i][j]
                ax.plot(d["t"], d[col], "-", color=colours[n], label=f"{n:,} blocks")
                ax.fill_between(d["t"], d[col] - d[se], d[col] + d[se], color=colours[n], alpha=0.25, lw=0)
        axes[0][j].set_title(f"{style.backend_label('uddm')} {ms}")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xscale("log")
            if not ax.xaxis_inverted():
                ax.invert_xaxis()
        axes[1][j].set_xlabel("t (reverse chain runs left to right)")
    axes[0][0].set_ylabel("entropy of p(x0 | x_t), nats / token")
    axes[1][0].set_ylabel("largest minus second-largest\nprobability of p(x0 | x_t)")
    style.legend_outside(fig)
    style.footnote(
        fig, "Bands: one standard error over the generated sequences. The last point is the prediction on the "
        "finished samples.",
    )  # fmt: skip
    return fig, axes


def fig_trajectory(data, out: Path) -> list[Path]:
    """The trajectory figure from a data folder's ``trajectory.csv`` (``summary.read_data``): the sequences of every
    seed pooled, one column per model size (and step budget, when there are several)."""
    from amtheory.studies.memorization.summary import pool_means

    tr = data.trajectory
    if tr.empty:
        return []
    by = ["model_size", "steps", "train_size", "step", "t"]
    parts = [pool_means(tr.rename(columns={f"{q}_mean": "mean", f"{q}_sd": "sd"}), by)[[*by, "mean", "se"]]
             .rename(columns={"mean": q, "se": f"{q}_se"}) for q in ("entropy", "gap")]  # fmt: skip
    summary = parts[0].merge(parts[1], on=by)
    if summary["steps"].nunique() > 1:
        summary["model_size"] = summary["model_size"] + ", " + summary["steps"].map(lambda s: f"{int(s):,} steps")
    fig, _ = trajectory_axes(summary.drop(columns="steps"))
    return save(fig, out, "memorization_trajectory")
