"""Side by side: every Hopfield-family backend on the same patterns and corruptions (the main job's tables).

    python -m paper_figures.compare --results results/main/hopfield --out paper_figures/out

One row per network size N. Left: exact-retrieval rate against the fraction of corrupted tokens, one panel per
load. Right: median basin radius (fraction of N, bootstrap interval) against load. The tables must hold one
setting otherwise (``amtheory.core.sweep.check_single_setting``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from paper_figures import style

#: The settings the figure draws (rows, panels, lines, x) and averages over (replicates); any other must be single.
VARY = ("backend", "n", "load", "replicate")


def figure(results: str | Path, out: str | Path) -> list[Path]:
    style.setup()
    rec = style.read_results(Path(results) / "recovery", ("backend", "n", "load", "rho", "exact"), vary=VARY)
    rad = style.read_results(Path(results) / "radius", ("backend", "n", "load", "median_fraction"), vary=VARY)
    ns = sorted(rec["n"].unique())
    loads = sorted(rec["load"].unique())
    # Registered backends in registration order, then any other name the table holds: none is left out.
    present = set(rec["backend"])
    backends = [b for b in style.BACKEND_COLORS if b in present] + sorted(present - set(style.BACKEND_COLORS))
    palette = {b: style.backend_colour(b) for b in backends}
    fig, axes = plt.subplots(
        len(ns), len(loads) + 1, figsize=(3.3 * (len(loads) + 1), 3.4 * len(ns)), constrained_layout=True, squeeze=False
    )
    per_cell = rad.groupby(["backend", "n", "load", "replicate"], as_index=False)[
        ["median_fraction", "median_ci_low", "median_ci_high"]
    ].first()
    # One row per network size: curves of different N are never averaged into one line.
    for row, n in zip(axes, ns):
        for ax, load in zip(row[:-1], loads):
            d = rec[(rec["n"] == n) & (rec["load"] == load)]
            if d.empty:
                ax.set_visible(False)
                continue
            d = d.groupby(["backend", "rho"], as_index=False)["exact"].mean()
            sns.lineplot(
                d, x="rho", y="exact", hue="backend", hue_order=backends, palette=palette, marker="o", ax=ax,
                legend=False,
            )  # fmt: skip
            ax.set(
                title=f"N = {n}, load K/N = {load:g}",
                xlabel="fraction of tokens corrupted",
                ylabel="exact retrieval",
                ylim=(-0.03, 1.03),
            )
        ax = row[-1]
        for b in backends:
            d = per_cell[(per_cell["backend"] == b) & (per_cell["n"] == n)]
            d = d.groupby("load", as_index=False).mean(numeric_only=True)
            ax.plot(d["load"], d["median_fraction"], "o-", color=palette[b], label=style.backend_label(b))
            ax.fill_between(d["load"], d["median_ci_low"], d["median_ci_high"], color=palette[b], alpha=0.15)
        ax.set(title=f"N = {n}, basin radius", xlabel="load K/N", ylabel="median radius / N")
        ax.legend(fontsize=8, loc="lower left")
    return style.save(fig, out, "compare_hopfield")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/main/hopfield")
    ap.add_argument("--out", default="paper_figures/out")
    args = ap.parse_args(argv)
    for p in figure(args.results, args.out):
        print(p)


if __name__ == "__main__":
    main()
