"""Figures of the memorization experiment (``amtheory.studies.memorization``), drawn from its tables only.

``python -m paper_figures.memorization --results results/memorization --out paper_figures/out`` writes:

* ``memorization_recovery`` — UDDM recovery of corrupted tokens against training-set size, solid train, dashed
  test, one colour per t, one panel per model size; the meeting point marked;
* ``memorization_backends`` — the same at each t for every backend (UDDM sizes, empirical denoiser, dense, modern);
* ``memorization_basins`` — median basin radius (share of the block) against size, train and test, all backends;
* ``memorization_entropy`` — histograms of per-block conditional entropy, training vs generated, across sizes;
* ``memorization_perplexity`` — test perplexity bound against size, with the meeting point of train and test
  recovery marked;
* ``memorization_extraction`` — share of generated blocks that copy a training block verbatim, and the longest
  span shared with the training set, against size; with the fixed-point share and the KL from the empirical
  denoiser;
* ``memorization_example`` — one block, corrupted and restored by the smallest and the largest training set's
  model, tokens coloured (restored, still wrong, broken).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from paper_figures import style
from paper_figures.style import cli, plt, save, setup, sns

UDDM_COLORS = ["#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


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
    from amtheory.studies.memorization import meeting_point

    g = rec[(rec["backend"] == "uddm") & (rec["model_size"] == model_size) & (rec["t"] == t)]
    piv = g.groupby(["train_size", "split"])["recovered"].mean().unstack()
    if not {"train", "test"} <= set(piv.columns):
        return math.nan
    return meeting_point(piv.index.to_numpy(), piv["train"].to_numpy(), piv["test"].to_numpy())


def _recovery_legend(axes) -> None:
    """The y label and one legend for recovery panels: the colours of the first panel plus solid train / dashed
    test."""
    axes[0][0].set_ylabel("corrupted tokens restored")
    h, lab = axes[0][0].get_legend_handles_labels()
    h += [plt.Line2D([], [], color="k", ls="-"), plt.Line2D([], [], color="k", ls="--")]
    lab += ["train", "test"]
    axes[0][-1].legend(h, lab, loc="center left", bbox_to_anchor=(1.0, 0.5))


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
    fig.suptitle("UDDM recovery against training-set size (thin lines: where train and test meet)", y=1.02)
    return save(fig, out, "memorization_recovery")


def _backend_lines(df: pd.DataFrame):
    """(label, colour, sub-table) per backend line: one per UDDM size, one per Hopfield backend."""
    lines = []
    for i, ms in enumerate(sorted(df.loc[df["backend"] == "uddm", "model_size"].unique())):
        lines.append(
            (f"UDDM {ms}", UDDM_COLORS[i % len(UDDM_COLORS)], df[(df["backend"] == "uddm") & (df["model_size"] == ms)])
        )
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
    fig.suptitle("Same blocks, same corruptions: only a generalizing model restores unseen text", y=1.02)
    return save(fig, out, "memorization_backends")


def fig_basins(root: Path, out: Path) -> list[Path]:
    bas = _read(root, "basins")
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0), sharey=True)
    for ax, split in zip(axes, ("train", "test")):
        d = bas[bas["split"] == split]
        for lab, col, sub in _backend_lines(d):
            # A radius of -1 (the block is not even a fixed point) is drawn below zero, at -1 / L, and marked
            # with an open symbol, so that it is not mistaken for a fixed point with no basin.
            g = sub.assign(frac=sub["radius"] / sub["length"]).groupby("train_size")["frac"].median()
            ax.plot(g.index, g.values, "-", color=col, label=lab)
            fixed = g.values >= 0
            ax.plot(g.index[fixed], g.values[fixed], "o", color=col, ms=4)
            ax.plot(g.index[~fixed], g.values[~fixed], "o", mfc="white", color=col, ms=5)
        _sizes_axis(ax, d["train_size"])
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_title(f"{split} blocks (open: not a fixed point)")
    axes[0].set_ylabel("median basin radius (share of block)")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
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
        fig.legend(handles, labels, loc="upper right", ncol=len(labels))
    fig.suptitle("Conditional entropy at t = 1e-5: training vs generated blocks", y=1.02)
    return save(fig, out, "memorization_entropy")


def fig_perplexity(root: Path, out: Path) -> list[Path]:
    nel = _read(root, "nelbo")
    rec = _read(root, "recovery")
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    t_mark = 0.25 if 0.25 in set(rec["t"]) else sorted(rec["t"].unique())[len(rec["t"].unique()) // 2]
    for i, ms in enumerate(sorted(nel["model_size"].unique())):
        col = UDDM_COLORS[i % len(UDDM_COLORS)]
        for split, ls in (("test", "-"), ("train", ":")):
            g = nel[(nel["model_size"] == ms) & (nel["split"] == split)].groupby("train_size")["nelbo"].mean()
            ax.plot(g.index, np.exp(g.values), ls, marker="o", ms=4, color=col, label=f"{ms}, {split}")
        m = _meeting(rec, ms, t_mark)
        if np.isfinite(m):
            ax.axvline(m, color=col, lw=1.2, ls="-.", label=f"{ms}: train = test recovery (t={t_mark:g})")
    _sizes_axis(ax, nel["train_size"])
    ax.set_yscale("log")
    ax.set_ylabel("perplexity bound exp(NELBO / token)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, out, "memorization_perplexity")


def fig_extraction(root: Path, out: Path) -> list[Path]:
    gen = _read(root, "generation")
    g = gen[gen["split"] == "generated"]
    fp = _read(root, "fixed_points")
    kl = _read(root, "kl")
    L = int(max(len(x) for x in g["tokens"])) if len(g) else 1
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    for i, ms in enumerate(sorted(g["model_size"].unique())):
        col = UDDM_COLORS[i % len(UDDM_COLORS)]
        d = g[g["model_size"] == ms].groupby("train_size")
        axes[0].plot(d["verbatim"].mean().index, d["verbatim"].mean().values, "-o", color=col, label=ms)
        axes[1].plot(d["longest_span"].mean().index, d["longest_span"].mean().values / L, "-o", color=col, label=ms)
        for split, ls in (("train", "-"), ("test", "--"), ("random", ":")):
            f = fp[(fp["model_size"] == ms) & (fp["split"] == split)].groupby("train_size")["fixed"].mean()
            axes[2].plot(f.index, f.values, ls, marker="o", ms=3, color=col, label=f"{ms}, {split}")
        for split, ls in (("train", "-"), ("test", "--")):
            k = kl[(kl["model_size"] == ms) & (kl["split"] == split)].groupby("train_size")["kl"].mean()
            axes[3].plot(k.index, k.values, ls, marker="o", ms=3, color=col, label=f"{ms}, {split}")
    axes[0].set_ylabel("generated blocks copying a training block")
    axes[1].set_ylabel("longest span shared with training (share of block)")
    axes[2].set_ylabel("fixed points of argmax dynamics from t = 1")
    axes[3].set_ylabel("KL(empirical || UDDM), nats / token")
    axes[3].set_yscale("log")
    for ax in axes:
        _sizes_axis(ax, g["train_size"] if len(g) else [1])
    for ax in axes[:2]:
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend()
    axes[2].legend(fontsize=7)
    axes[3].legend(fontsize=7)
    return save(fig, out, "memorization_extraction")


_TOKEN_COLORS = {"restored": "#a6dba0", "wrong": "#f4a582", "broken": "#ca0020", "clean": "#f0f0f0",
                 "corrupted": "#92c5de"}  # fmt: skip


def _token_row(ax, y: float, words: list[str], kinds: list[str], label: str, width: float) -> float:
    """Draw one row of coloured tokens at height ``y``, wrapping at ``width``; returns the next free height."""
    ax.text(-0.01, y, label, ha="right", va="center", fontsize=8, fontweight="bold", transform=ax.transData)
    x = 0.0
    for w, k in zip(words, kinds):
        w = w if len(w) <= 14 else w[:13] + "…"
        dx = 0.0063 * len(w) + 0.011
        if x + dx > width:
            x = 0.0
            y -= 0.11
        ax.text(x, y, w, ha="left", va="center", fontsize=7.5, family="monospace",
                bbox={"boxstyle": "square,pad=0.15", "fc": _TOKEN_COLORS[k], "ec": "none"})  # fmt: skip
        x += dx
    return y - 0.17


def fig_example(root: Path, out: Path) -> list[Path]:
    from amtheory.studies.memorization.data import load_decoder

    rec = _read(root, "recovery")
    u = rec[rec["backend"] == "uddm"]
    ms = sorted(u["model_size"].unique())[-1]
    u = u[u["model_size"] == ms]
    t = 0.25 if 0.25 in set(u["t"]) else sorted(u["t"].unique())[-1]
    sizes = sorted(u["train_size"].unique())
    vocab = _vocab_of(root)
    decode = load_decoder(root, vocab)
    panels = [(n, split) for n in (sizes[0], sizes[-1]) for split in ("train", "test")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.3 * len(panels)))
    for ax, (n, split) in zip(np.atleast_1d(axes), panels):
        row = u[(u["train_size"] == n) & (u["split"] == split) & (u["t"] == t)].sort_values("sequence").iloc[0]
        x0, xq, xf = (np.asarray(row[c]) for c in ("x0", "xq", "xf"))
        changed = xq != x0
        right = xf == x0
        kinds_q = ["corrupted" if c else "clean" for c in changed]
        kinds_f = [
            ("restored" if r else "wrong") if c else ("clean" if r else "broken") for c, r in zip(changed, right)
        ]
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")
        y = 0.85
        y = _token_row(ax, y, decode(x0), ["clean"] * len(x0), "original", 1.0)
        y = _token_row(ax, y, decode(xq), kinds_q, "corrupted", 1.0)
        _token_row(ax, y, decode(xf), kinds_f, "restored", 1.0)
        ax.set_title(
            f"{ms} trained on {n:,} blocks, a {split} block at t = {t:g}: "
            f"{int(changed.sum())} corrupted, {int((changed & right).sum())} restored, "
            f"{int((~changed & ~right).sum())} broken",
            fontsize=9, loc="left",
        )  # fmt: skip
    handles = [plt.Rectangle((0, 0), 1, 1, fc=c) for c in _TOKEN_COLORS.values()]
    labels = ["restored", "still wrong", "broken (was clean)", "clean", "corrupted"]
    fig.legend(handles, labels, loc="lower center", ncol=5, frameon=False)
    fig.subplots_adjust(hspace=0.35, bottom=0.06)
    return save(fig, out, "memorization_example")


def _vocab_of(root: Path) -> int | None:
    maps = sorted((root / "vocab").glob("mapping-*.json"))
    if not maps:
        return None
    return int(maps[0].stem.split("-", 1)[1])


FIGURES = (fig_recovery, fig_backends, fig_basins, fig_entropy, fig_perplexity, fig_extraction, fig_example)


def make_figures(results: str | Path, out: str | Path) -> list[Path]:
    """Draw every figure from the tables in ``results`` into ``out`` (PDF and PNG); returns the paths."""
    setup()
    root = Path(results)
    paths: list[Path] = []
    for f in FIGURES:
        paths += f(root, Path(out))
    return paths


def main(argv: list[str] | None = None) -> list[Path]:
    a = cli("Figures of the memorization experiment", "results/memorization").parse_args(argv)
    paths = make_figures(a.results, a.out)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
