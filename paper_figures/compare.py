"""Side by side: every Hopfield-family backend on the same patterns and corruptions (the main job's tables).

    python -m paper_figures.compare --results results/main/hopfield --out paper_figures/out

Left: exact-retrieval rate against the fraction of corrupted tokens, one panel per load. Right: median basin
radius (fraction of N, bootstrap interval) against load.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from paper_figures import style


def figure(results: str | Path, out: str | Path) -> list[Path]:
    style.setup()
    rec = style.read_results(Path(results) / "recovery", ("backend", "load", "rho", "exact"))
    rad = style.read_results(Path(results) / "radius", ("backend", "load", "median_fraction"))
    loads = sorted(rec["load"].unique())
    backends = [b for b in style.BACKEND_COLORS if b in set(rec["backend"])]
    palette = {b: style.BACKEND_COLORS[b] for b in backends}
    fig, axes = plt.subplots(1, len(loads) + 1, figsize=(3.3 * (len(loads) + 1), 3.4), constrained_layout=True)
    for ax, load in zip(axes[:-1], loads):
        d = rec[rec["load"] == load].groupby(["backend", "rho"], as_index=False)["exact"].mean()
        sns.lineplot(
            d, x="rho", y="exact", hue="backend", hue_order=backends, palette=palette, marker="o", ax=ax, legend=False
        )
        ax.set(
            title=f"load K/N = {load:g}",
            xlabel="fraction of tokens corrupted",
            ylabel="exact retrieval",
            ylim=(-0.03, 1.03),
        )
    ax = axes[-1]
    per_cell = rad.groupby(["backend", "load", "replicate"], as_index=False)[
        ["median_fraction", "median_ci_low", "median_ci_high"]
    ].first()
    for b in backends:
        d = per_cell[per_cell["backend"] == b].groupby("load", as_index=False).mean(numeric_only=True)
        ax.plot(d["load"], d["median_fraction"], "o-", color=palette[b], label=style.BACKEND_LABELS.get(b, b))
        ax.fill_between(d["load"], d["median_ci_low"], d["median_ci_high"], color=palette[b], alpha=0.15)
    ax.set(title="basin radius", xlabel="load K/N", ylabel="median radius / N")
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
