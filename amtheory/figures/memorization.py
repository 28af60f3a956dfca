"""Figures of the memorization experiment (``amtheory.studies.memorization``), drawn from its tables only.

``make_figures(results, out)`` (``amtheory figures memorization``) writes:

* ``memorization_recovery`` — UDDM recovery of corrupted tokens against training-set size, solid train, dashed
  test, one colour per t, one panel per model size; the meeting point marked;
* ``memorization_backends`` — the same at each t for every backend (UDDM sizes, empirical denoiser, dense, modern);
* ``memorization_basins`` — share of blocks that are fixed points and median basin radius (share of the block) over
  those fixed points against size, train and test, all backends (``amtheory.core.basins.fixed_point_radius``);
* ``memorization_entropy`` — histograms of per-block conditional entropy, training vs generated, across sizes;
* ``memorization_perplexity`` — test perplexity bound against size, with the meeting point of train and test
  recovery marked;
* ``memorization_extraction`` — share of generated blocks that copy a training block verbatim, and the longest
  span shared with the training set, against size; with the fixed-point share and the KL from the empirical
  denoiser;
* ``memorization_trajectory`` — entropy and top-two gap of the prediction along the reverse chain from t = 1, per
  training size (``amtheory.figures.memorization_trajectory``);
* ``memorization_example`` — one block, corrupted and restored by the smallest and the largest training set's
  model, tokens coloured (restored, still wrong, broken) (``amtheory.figures.memorization_example``).

Every backend has its registered colour and label; the UDDM's model sizes are shades of the UDDM's colour.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.core.basins import fixed_point_radius_table
from amtheory.figures import radius, style
from amtheory.figures.memorization_example import fig_example as _fig_example
from amtheory.figures.memorization_trajectory import fig_trajectory as _fig_trajectory
from amtheory.figures.style import plt, save, setup, sns


def _uddm_colours(model_sizes) -> dict:
    """One shade of the UDDM's registered colour per model size, lightest for the smallest."""
    sizes = sorted(model_sizes)
    return dict(zip(sizes, style.shades(style.backend_colour("uddm"), len(sizes))))


def _uddm_label(model_size: str) -> str:
    return f"{style.backend_label('uddm')} {model_size}"


def _read(root: Path, name: str) -> pd.DataFrame:
    """The checked tables of ``root/name``, of one setting (``amtheory.studies.memorization.analysis.read_table``)."""
    from amtheory.studies.memorization.analysis import read_table

    df = read_table(root / name)
    if not len(df.columns):
        raise FileNotFoundError(f"results: expected tables in {root / name}, found none; run the experiment first")
    if "applicable" in df:
        df = df[df["applicable"].astype(bool)]
    return df


def _short_count(n: int) -> str:
    """A tick label that stays narrow on a log axis: 512, 2k, 16k, 53k (thousands rounded; tables give exact sizes)."""
    return str(n) if n < 1000 else f"{round(n / 1000)}k"


def _sizes_axis(ax, sizes) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(int(s) for s in sizes)))
    ax.get_xaxis().set_major_formatter(plt.FuncFormatter(lambda v, _: _short_count(int(v))))
    ax.minorticks_off()
    ax.set_xlabel("training blocks")


def _t_palette(ts) -> dict:
    ts = sorted(ts)
    return dict(zip(ts, sns.color_palette("viridis", len(ts))))


def _meeting(rec: pd.DataFrame, model_size: str, t: float) -> float:
    """Where training and test recovery meet (the two-standard-error rule of ``rates.meeting_of_rows``); NaN where
    they do not within the sweep."""
    from amtheory.studies.memorization.rates import meeting_of_rows

    g = rec[(rec["backend"] == "uddm") & (rec["model_size"] == model_size) & (rec["t"] == t)]
    if not {"train", "test"} <= set(g["split"]):
        return math.nan
    m = meeting_of_rows(g)
    return math.nan if m is None else m


def _recovery_legend(axes) -> None:
    """The y label and one legend for recovery panels: the colours of the first panel plus solid train / dashed
    test."""
    axes[0][0].set_ylabel("corrupted tokens restored")
    h, lab = axes[0][0].get_legend_handles_labels()
    h += [plt.Line2D([], [], color="k", ls="-"), plt.Line2D([], [], color="k", ls="--")]
    lab += ["train", "test"]
    style.legend_outside(axes[0][0].figure, h, lab)


def fig_recovery(root: Path, out: Path) -> list[Path]:
    rec = _read(root, "recovery")
    u = rec[rec["backend"] == "uddm"]
    sizes = sorted(u["model_size"].unique())
    pal = _t_palette(u["t"].unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 4.2), squeeze=False, sharey=True)
    for ax, ms in zip(axes[0], sizes):
        g = u[u["model_size"] == ms].groupby(["t", "split", "train_size"])["recovered"].mean().reset_index()
        for t, col in pal.items():
            for split, ls in (("train", "-"), ("test", "--")):
                d = g[(g["t"] == t) & (g["split"] == split)]
                ax.plot(d["train_size"], d["recovered"], ls, color=col, marker="o", ms=4,
                        label=f"t={t:g}" if split == "train" else None)  # fmt: skip
            m = _meeting(rec, ms, t)
            if np.isfinite(m):
                ax.axvline(m, color=col, lw=0.8, alpha=0.5)
        _sizes_axis(ax, g["train_size"])
        ax.set_title(ms)
        ax.set_ylim(-0.02, 1.02)
    _recovery_legend(axes)
    fig.suptitle(
        f"{style.backend_label('uddm')} recovery against training-set size (thin lines: where train and test meet)"
    )
    return save(fig, out, "memorization_recovery")


def _backend_lines(df: pd.DataFrame):
    """(label, colour, sub-table) per backend line: one per UDDM size, one per Hopfield backend."""
    lines = []
    for ms, col in _uddm_colours(df.loc[df["backend"] == "uddm", "model_size"].unique()).items():
        lines.append((_uddm_label(ms), col, df[(df["backend"] == "uddm") & (df["model_size"] == ms)]))
    # The study's own backend names, in their registered colours and labels ("dense_exp" and "classical" are
    # registered aliases of "exp" and "hebbian"); imported here, as the study's tables are read, not with the module.
    from amtheory.studies.memorization.cells import BACKENDS

    for b in BACKENDS:
        sub = df[df["backend"] == b]
        if len(sub):
            lines.append((style.backend_label(b), style.backend_colour(b), sub))
    return lines


def fig_backends(root: Path, out: Path) -> list[Path]:
    rec = _read(root, "recovery")
    rec = rec[rec["split"].isin(["train", "test"])]
    ts = sorted(rec["t"].unique())
    fig, axes = plt.subplots(1, len(ts), figsize=(4.4 * len(ts), 4.0), squeeze=False, sharey=True)
    for ax, t in zip(axes[0], ts):
        d = rec[rec["t"] == t]
        for lab, col, sub in _backend_lines(d):
            g = sub.groupby(["split", "train_size"])["recovered"].mean().reset_index()
            for split, ls in (("train", "-"), ("test", "--")):
                s = g[g["split"] == split]
                ax.plot(s["train_size"], s["recovered"], ls, color=col, marker="o", ms=3,
                        label=lab if split == "train" else None)  # fmt: skip
        _sizes_axis(ax, d["train_size"])
        ax.set_title(f"t = {t:g}")
        ax.set_ylim(-0.02, 1.02)
    _recovery_legend(axes)
    fig.suptitle("Same blocks, same corruptions: only a generalizing model restores unseen text")
    return save(fig, out, "memorization_backends")


def fig_basins(root: Path, out: Path) -> list[Path]:
    bas = _read(root, "basins")
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 7.0), sharex=True, sharey="row", height_ratios=(1, 1.5))
    any_censored = False
    for j, split in enumerate(("train", "test")):
        d = bas[bas["split"] == split]
        for lab, col, sub in _backend_lines(d):
            t = fixed_point_radius_table(sub, ["train_size"], length="length")
            art = radius.draw_radius(axes[0, j], axes[1, j], t, "train_size", colour=col, label=lab)
            any_censored |= art["censored"] is not None
        for ax in axes[:, j]:
            _sizes_axis(ax, d["train_size"])
        axes[0, j].set_xlabel("")
        axes[0, j].set_title(f"{split} blocks")
        axes[0, j].set_ylim(-0.03, 1.03)
    axes[0, 0].set_ylabel("blocks that are fixed points")
    axes[1, 0].set_ylabel("median radius / block\nover fixed points")
    h, lab = axes[1, 0].get_legend_handles_labels()
    keep = [(a, b) for a, b in zip(h, lab) if not b.startswith("_")]
    if any_censored:
        keep.append((radius.censored_handle(), "at the search limit"))
    style.legend_outside(fig, [a for a, _ in keep], [b for _, b in keep])
    style.footnote(fig, radius.RADIUS_NOTE.replace("radius / N", "radius / block"))
    return save(fig, out, "memorization_basins")


def fig_entropy(root: Path, out: Path) -> list[Path]:
    gen = _read(root, "generation")
    sizes_m = sorted(gen["model_size"].unique())
    ns = sorted(gen["train_size"].unique())
    fig, axes = plt.subplots(len(sizes_m), len(ns), figsize=(3.0 * len(ns), 2.6 * len(sizes_m)), squeeze=False,
                             sharex=True)  # fmt: skip
    hi = float(np.nanquantile(gen["entropy"], 0.99)) if len(gen) else 1.0
    bins = np.linspace(0.0, max(hi, 1e-3) * 1.05, 25)
    colors = {"train": "#1f77b4", "test": "#2ca02c", "generated": "#d62728"}
    for r, ms in enumerate(sizes_m):
        for c, n in enumerate(ns):
            ax = axes[r][c]
            d = gen[(gen["model_size"] == ms) & (gen["train_size"] == n)]
            for split in ("train", "generated"):
                v = d.loc[d["split"] == split, "entropy"].to_numpy()
                if v.size:
                    ax.hist(v, bins=bins, alpha=0.55, color=colors[split], label=split)
            ax.set_title(f"{ms}, n = {n:,}", fontsize=9)
            if r == len(sizes_m) - 1:
                ax.set_xlabel("entropy (nats/token)")
    axes[0][0].set_ylabel("blocks")
    # The legend comes from any panel that has data (a model may lack some training sizes).
    handles, labels = next(
        (h, lab) for h, lab in (ax.get_legend_handles_labels() for row in axes for ax in row) if h
    ) if len(gen) else ([], [])  # fmt: skip
    if handles:
        style.legend_outside(fig, handles, labels)
    fig.suptitle("Conditional entropy at t = 1e-5: training vs generated blocks")
    return save(fig, out, "memorization_entropy")


def fig_perplexity(root: Path, out: Path) -> list[Path]:
    nel = _read(root, "nelbo")
    rec = _read(root, "recovery")
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    t_mark = 0.25 if 0.25 in set(rec["t"]) else sorted(rec["t"].unique())[len(rec["t"].unique()) // 2]
    for ms, col in _uddm_colours(nel["model_size"].unique()).items():
        for split, ls in (("test", "-"), ("train", ":")):
            g = nel[(nel["model_size"] == ms) & (nel["split"] == split)].groupby("train_size")["nelbo"].mean()
            ax.plot(g.index, np.exp(g.values), ls, marker="o", ms=4, color=col, label=f"{_uddm_label(ms)}, {split}")
        m = _meeting(rec, ms, t_mark)
        if np.isfinite(m):
            ax.axvline(m, color=col, lw=1.2, ls="-.", label=f"{_uddm_label(ms)}: train = test recovery (t={t_mark:g})")
    _sizes_axis(ax, nel["train_size"])
    ax.set_yscale("log")
    ax.set_ylabel("perplexity bound exp(NELBO / token)")
    style.legend_outside(fig)
    return save(fig, out, "memorization_perplexity")


def fig_extraction(root: Path, out: Path) -> list[Path]:
    gen = _read(root, "generation")
    g = gen[gen["split"] == "generated"]
    fp = _read(root, "fixed_points")
    kl = _read(root, "kl")
    L = int(max(len(x) for x in g["tokens"])) if len(g) else 1
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    for ms, col in _uddm_colours(g["model_size"].unique()).items():
        d = g[g["model_size"] == ms].groupby("train_size")
        axes[0].plot(d["verbatim"].mean().index, d["verbatim"].mean().values, "-o", color=col, label=_uddm_label(ms))
        axes[1].plot(d["longest_span"].mean().index, d["longest_span"].mean().values / L, "-o", color=col, label=ms)
        for split, ls in (("train", "-"), ("test", "--"), ("random", ":")):
            f = fp[(fp["model_size"] == ms) & (fp["split"] == split)].groupby("train_size")["fixed"].mean()
            axes[2].plot(f.index, f.values, ls, marker="o", ms=3, color=col, label=f"{_uddm_label(ms)}, {split}")
        for split, ls in (("train", "-"), ("test", "--")):
            k = kl[(kl["model_size"] == ms) & (kl["split"] == split)].groupby("train_size")["kl"].mean()
            axes[3].plot(k.index, k.values, ls, marker="o", ms=3, color=col, label=f"{_uddm_label(ms)}, {split}")
    axes[0].set_ylabel("generated blocks\ncopying a training block")
    axes[1].set_ylabel("longest span shared with\ntraining (share of block)")
    axes[2].set_ylabel("fixed points of argmax\ndynamics from t = 1")
    axes[3].set_ylabel(f"KL(empirical || {style.backend_label('uddm')}),\nnats / token")
    axes[3].set_yscale("log")
    for ax in axes:
        _sizes_axis(ax, g["train_size"] if len(g) else [1])
    for ax in axes[:2]:
        ax.set_ylim(-0.02, 1.02)
    # Legends under their panels, so that they cover no data (constrained layout makes room).
    for ax in (axes[0], axes[2], axes[3]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return save(fig, out, "memorization_extraction")


def fig_example(root: Path, out: Path) -> list[Path]:
    return _fig_example(root, out, _read)


def fig_trajectory(root: Path, out: Path) -> list[Path]:
    return _fig_trajectory(root, out, _read)


FIGURES = (
    fig_recovery,
    fig_backends,
    fig_basins,
    fig_entropy,
    fig_perplexity,
    fig_extraction,
    fig_example,
    fig_trajectory,
)


def make_figures(results: str | Path, out: str | Path) -> list[Path]:
    """Draw every figure from the tables in ``results`` into ``out`` (PDF and PNG); returns the paths."""
    setup()
    root = Path(results)
    paths: list[Path] = []
    for f in FIGURES:
        paths += f(root, Path(out))
    return paths
