"""Figures of the memorization experiment (``amtheory.studies.memorization``), drawn from its data folder only
(``amtheory.studies.memorization.summary``; ``experiments/summarize_memorization.py --export`` writes it).

``make_figures(source, out)`` (``amtheory figures memorization``) takes a data folder, or a results folder that it
exports first, and writes:

* ``memorization_recovery`` — UDDM recovery of corrupted tokens against training-set size, solid train, dashed
  test, one colour per t, bands of two standard errors (blocks of every seed pooled), one panel per model size
  (columns) and step budget (rows); the meeting point marked;
* ``memorization_backends`` — the same at each t for every UDDM and the Hopfield family;
* ``memorization_basins`` — share of blocks that are fixed points and median basin radius (share of the block) over
  those fixed points against size, train and test, all backends (``amtheory.core.basins.fixed_point_radius``);
* ``memorization_entropy`` — mean conditional entropy at ``entropy_t`` on training, test and generated blocks
  against size, with bands of two standard errors;
* ``memorization_perplexity`` — test and training perplexity bound against size, with 95% intervals over seeds,
  the meeting point of train and test recovery marked;
* ``memorization_extraction`` — share of generated blocks that copy a training block verbatim, the longest span
  shared with the training set, the fixed-point share and the KL from the empirical denoiser, against size;
* ``memorization_trajectory`` — entropy and top-two gap of the prediction along the reverse chain from t = 1, per
  training size (``amtheory.figures.memorization_trajectory``);
* ``memorization_example`` — one block, corrupted and restored by the smallest and the largest training set's
  model, tokens coloured (restored, still wrong, broken) (``amtheory.figures.memorization_example``).

Every backend has its registered colour and label; the UDDM's model sizes are shades of the UDDM's colour, its
step budgets have their own markers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.core.basins import fixed_point_radius_table
from amtheory.figures import radius, style
from amtheory.figures.memorization_example import fig_example
from amtheory.figures.memorization_trajectory import fig_trajectory
from amtheory.figures.style import plt, save, setup, sns
from amtheory.studies.memorization.claims import nelbo_curve, rates
from amtheory.studies.memorization.meetings import meeting_points, reference_t
from amtheory.studies.memorization.summary import MemorizationData, open_data, pool_means

_MARKERS = ("o", "s", "^", "D", "v", "P")


def _uddm_colours(model_sizes) -> dict:
    """One shade of the UDDM's registered colour per model size, lightest for the first (smallest)."""
    sizes = list(model_sizes)
    return dict(zip(sizes, style.shades(style.backend_colour("uddm"), len(sizes))))


def uddm_series(data: MemorizationData) -> list[tuple[str, int, str, tuple, str]]:
    """Per UDDM model size and step budget: (model size, steps, label, colour, marker), one shade of the UDDM's
    colour each (lightest for the smallest model at its smallest budget); the budget is named in the label, and has
    its own marker, only when there are several."""
    budgets = data.budgets()
    keys = [(ms, steps) for ms in data.model_sizes() for steps in budgets]
    colours = _uddm_colours(keys)
    out = []
    for ms, steps in keys:
        label = f"{style.backend_label('uddm')} {ms}" + (f", {steps:,} steps" if len(budgets) > 1 else "")
        out.append((ms, steps, label, colours[(ms, steps)], _MARKERS[budgets.index(steps) % len(_MARKERS)]))
    return out


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


def _band(ax, x, y, se, colour, ls="-", marker="o", label=None, clip=(-np.inf, np.inf)) -> None:
    """A curve with a band of two standard errors around it, clipped to ``clip`` (the range the quantity takes)."""
    x, y, se = (np.asarray(v, dtype=float) for v in (x, y, se))
    ax.plot(x, y, ls, color=colour, marker=marker, ms=4, label=label)
    ok = np.isfinite(se)
    lo, hi = np.clip(y - 2 * se, *clip), np.clip(y + 2 * se, *clip)
    ax.fill_between(x[ok], lo[ok], hi[ok], color=colour, alpha=0.15, lw=0)


def _recovery_legend(axes) -> None:
    """The y label and one legend for recovery panels: the colours of the first panel plus solid train / dashed
    test."""
    axes[0][0].set_ylabel("corrupted tokens restored")
    h, lab = axes[0][0].get_legend_handles_labels()
    h += [plt.Line2D([], [], color="k", ls="-"), plt.Line2D([], [], color="k", ls="--")]
    lab += ["train", "test"]
    style.legend_outside(axes[0][0].figure, h, lab)


def fig_recovery(data: MemorizationData, out: Path) -> list[Path]:
    r = rates(data)
    u = r[r["backend"] == "uddm"]
    models, budgets = data.model_sizes(), data.budgets()
    pal = _t_palette(u["t"].unique())
    meet = meeting_points(data)
    fig, axes = plt.subplots(len(budgets), len(models), figsize=(5.2 * len(models), 4.0 * len(budgets)),
                             squeeze=False, sharey=True)  # fmt: skip
    for i, steps in enumerate(budgets):
        for j, ms in enumerate(models):
            ax = axes[i][j]
            g = u[(u["model_size"] == ms) & (u["steps"] == steps)]
            ax.set_title(f"{ms}, {steps:,} steps")
            if g.empty:  # trained at this budget, never measured (a run cut short)
                ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="0.4")
                ax.set_xticks([])
                continue
            for t, col in pal.items():
                for split, ls in (("train", "-"), ("test", "--")):
                    d = g[(g["t"] == t) & (g["split"] == split)].sort_values("train_size")
                    _band(
                        ax,
                        d["train_size"],
                        d["rate"],
                        d["se"],
                        col,
                        ls,
                        label=f"t={t:g}" if split == "train" else None,
                        clip=(0.0, 1.0),
                    )
                m = meet.get((ms, steps, float(t)), math.nan)
                if np.isfinite(m):
                    ax.axvline(m, color=col, lw=0.8, alpha=0.5)
            _sizes_axis(ax, g["train_size"])
            ax.set_ylim(-0.02, 1.02)
    _recovery_legend(axes)
    # The explanation goes under the panels, wrapped to their width: a one-line title as wide as three panels
    # would leave a narrow figure mostly blank.
    fig.suptitle(f"{style.backend_label('uddm')} recovery against training-set size")
    style.footnote(fig, "Bands: two standard errors. Thin vertical lines: where train and test meet.")
    return save(fig, out, "memorization_recovery")


def _backend_lines(data: MemorizationData, r: pd.DataFrame):
    """(label, colour, marker, rows) per line: one per UDDM model size and budget, one per Hopfield backend."""
    lines = []
    for ms, steps, label, col, marker in uddm_series(data):
        rows = r[(r["backend"] == "uddm") & (r["model_size"] == ms) & (r["steps"] == steps)]
        if len(rows):  # a model size and budget trained but never measured gets no line (nor a legend entry)
            lines.append((label, col, marker, rows))
    from amtheory.studies.memorization.cells import BACKENDS

    for b in BACKENDS:
        sub = r[r["backend"] == b]
        if len(sub):
            lines.append((style.backend_label(b), style.backend_colour(b), "o", sub))
    return lines


def fig_backends(data: MemorizationData, out: Path) -> list[Path]:
    r = rates(data)
    r = r[r["split"].isin(["train", "test"])]
    ts = sorted(r["t"].unique())
    fig, axes = plt.subplots(1, len(ts), figsize=(4.4 * len(ts), 4.0), squeeze=False, sharey=True)
    for ax, t in zip(axes[0], ts):
        d = r[r["t"] == t]
        for lab, col, marker, sub in _backend_lines(data, d):
            for split, ls in (("train", "-"), ("test", "--")):
                s = sub[sub["split"] == split].sort_values("train_size")
                ax.plot(s["train_size"], s["rate"], ls, color=col, marker=marker, ms=3,
                        label=lab if split == "train" else None)  # fmt: skip
        _sizes_axis(ax, d["train_size"])
        ax.set_title(f"t = {t:g}")
        ax.set_ylim(-0.02, 1.02)
    _recovery_legend(axes)
    family = bool((r["backend"] != "uddm").any())
    fig.suptitle("Same blocks, same corruptions: the UDDMs beside the Hopfield family" if family
                 else "Same blocks, same corruptions: the UDDMs (no Hopfield-family memory measured)")  # fmt: skip
    return save(fig, out, "memorization_backends")


def fig_basins(data: MemorizationData, out: Path) -> list[Path]:
    bas = data.basins[data.basins["applicable"]].astype({"radius": float})
    length = float(data.run["data"]["length"])
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 7.0), sharex=True, sharey="row", height_ratios=(1, 1.5))
    any_censored = False
    for j, split in enumerate(("train", "test")):
        d = bas[bas["split"] == split]
        for lab, col, _, sub in _backend_lines(data, d):
            if sub.empty:
                continue
            t = fixed_point_radius_table(sub, ["train_size"], length=length)
            art = radius.draw_radius(axes[0, j], axes[1, j], t, "train_size", colour=col, label=lab)
            any_censored |= art["censored"] is not None
        for ax in axes[:, j]:
            _sizes_axis(ax, d["train_size"] if len(d) else [1])
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


def fig_entropy(data: MemorizationData, out: Path) -> list[Path]:
    e = pool_means(data.measure("generation", "entropy"), ["model_size", "steps", "train_size", "split"])
    models, budgets = data.model_sizes(), data.budgets()
    colours = {"train": "#1f77b4", "test": "#2ca02c", "generated": "#d62728"}
    fig, axes = plt.subplots(1, len(models), figsize=(5.0 * len(models), 4.0), squeeze=False, sharey=True)
    for ax, ms in zip(axes[0], models):
        for i, steps in enumerate(budgets):
            for split, col in colours.items():
                d = e[(e["model_size"] == ms) & (e["steps"] == steps) & (e["split"] == split)].sort_values("train_size")
                label = split + (f", {steps:,} steps" if len(budgets) > 1 else "")
                _band(
                    ax,
                    d["train_size"],
                    d["mean"],
                    d["se"],
                    col,
                    ("-", "--", ":")[i % 3],
                    _MARKERS[i % 6],
                    label,
                    clip=(0.0, np.inf),
                )
        _sizes_axis(ax, e["train_size"])
        ax.set_title(ms)
    axes[0][0].set_ylabel("entropy of p(x0 | x_t), nats / token")
    style.legend_outside(fig, *axes[0][0].get_legend_handles_labels())
    t = data.settings.get("entropy_t", 1e-5)
    fig.suptitle(f"Conditional entropy at t = {t:g}")
    style.footnote(fig, "On training, test and generated blocks. Bands: two standard errors.")
    return save(fig, out, "memorization_entropy")


def fig_perplexity(data: MemorizationData, out: Path) -> list[Path]:
    # Wide enough that ten size labels fit under the axes beside the legend.
    fig, ax = plt.subplots(figsize=(12.0, 4.6))
    t_mark = reference_t(data.uddm_recovery["t"])
    means: list[float] = []
    meet = meeting_points(data)
    curves = {split: nelbo_curve(data, split) for split in ("test", "train")}
    for ms, steps, label, col, marker in uddm_series(data):
        for split, ls in (("test", "-"), ("train", ":")):
            c = curves[split]
            g = c[(c["model_size"] == ms) & (c["steps"] == steps)].sort_values("train_size")
            if g.empty:  # trained, never measured: no line, and no legend entry for one
                continue
            y = g["ppl_mean"].to_numpy(float)
            means += list(y[np.isfinite(y)])
            err = np.vstack([y - g["ppl_low"].to_numpy(float), g["ppl_high"].to_numpy(float) - y])
            ax.errorbar(g["train_size"], y, yerr=np.where(np.isfinite(err), err, 0.0), fmt=ls, marker=marker, ms=4,
                        color=col, capsize=2, label=f"{label}, {split}")  # fmt: skip
        m = meet.get((ms, steps, t_mark), math.nan)
        if np.isfinite(m):
            ax.axvline(m, color=col, lw=1.0, ls="-.", label=f"{label}: train = test recovery (t={t_mark:g})")
    _sizes_axis(ax, data.uddm_recovery["train_size"])
    ax.set_yscale("log")
    if means:  # intervals of a few seeds can span decades: the means set the range
        ax.set_ylim(min(means) / 3, max(means) * 3)
    ax.set_ylabel("perplexity bound exp(NELBO / token)")
    style.legend_outside(fig)
    style.footnote(fig, "Error bars: 95% t interval over training seeds (none with one seed).")
    return save(fig, out, "memorization_perplexity")


def _line(ax, d: pd.DataFrame, y, *args, **kwargs) -> None:
    """``ax.plot(d["train_size"], y, ...)`` where ``d`` has rows: a model size and budget without any (trained, not
    measured) draws nothing and gets no legend entry."""
    if len(d):
        ax.plot(d["train_size"], y, *args, **kwargs)


def fig_extraction(data: MemorizationData, out: Path) -> list[Path]:
    by = ["model_size", "steps", "train_size", "split"]
    verb = pool_means(data.measure("generation", "verbatim"), by)
    span = pool_means(data.measure("generation", "longest_span"), by)
    fixed = pool_means(data.measure("fixed_points", "fixed"), by)
    kl = pool_means(data.measure("kl", "kl"), by)
    L = float(data.run["data"]["length"])
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    for ms, steps, label, col, marker in uddm_series(data):

        def sel(df, split=None, ms=ms, steps=steps):
            d = df[(df["model_size"] == ms) & (df["steps"] == steps)]
            return (d if split is None else d[d["split"] == split]).sort_values("train_size")

        v, s = sel(verb), sel(span)
        _line(axes[0], v, v["mean"], "-", marker=marker, color=col, label=label)
        _line(axes[1], s, s["mean"] / L, "-", marker=marker, color=col, label=label)
        for split, ls in (("train", "-"), ("test", "--"), ("random", ":")):
            f = sel(fixed, split)
            _line(axes[2], f, f["mean"], ls, marker=marker, ms=3, color=col, label=f"{label}, {split}")
        for split, ls in (("train", "-"), ("test", "--")):
            k = sel(kl, split)
            _line(axes[3], k, k["mean"], ls, marker=marker, ms=3, color=col, label=f"{label}, {split}")
    axes[0].set_ylabel("generated blocks\ncopying a training block")
    axes[1].set_ylabel("longest span shared with\ntraining (share of block)")
    axes[2].set_ylabel("fixed points of argmax\ndynamics from t = 1")
    axes[3].set_ylabel(f"KL(empirical || {style.backend_label('uddm')}),\nnats / token (mean over t)")
    axes[3].set_yscale("log")
    for ax in axes:
        _sizes_axis(ax, data.uddm_recovery["train_size"])
    for ax in axes[:2]:
        ax.set_ylim(-0.02, 1.02)
    # Legends under their panels, so that they cover no data (constrained layout makes room).
    for ax in (axes[0], axes[2], axes[3]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return save(fig, out, "memorization_extraction")


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


def draw_figures(data: MemorizationData, out: str | Path) -> list[Path]:
    """Draw every figure of a data folder's tables (``summary.read_data``) into ``out``; returns the paths."""
    setup()
    paths: list[Path] = []
    for f in FIGURES:
        paths += f(data, Path(out))
    return paths


def make_figures(source: str | Path, out: str | Path) -> list[Path]:
    """Draw every figure from a data folder, or from a results folder exported first (``summary.open_data``),
    into ``out`` (PDF and PNG); returns the paths."""
    return draw_figures(open_data(source), out)
