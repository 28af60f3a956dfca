"""Basin radius against load for every backend, from ``experiments/basins_vs_load.py`` results.

One axis: the median basin radius over all target patterns of all replicates (as a fraction of N; a pattern that is
not a fixed point counts as radius 0) against the load K/N on a log axis, with 95% percentile-bootstrap bands.
Theory: the exponential memory corrects a fraction ``rho*`` of flipped bits up to the load exponent
``ln K / N = (ln 2 - H(rho*)) / 2`` (Demircigil et al. 2017), drawn at the experiment's N; the Hebbian
``alpha_c = 0.138`` for orientation.

Command: ``python -m paper_figures.basins --results results/basins_vs_load --out paper_figures/out``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paper_figures import style

REQUIRED = ("backend", "N", "K", "replicate", "radius", "load")
#: The settings the figure draws (panels, lines, x) and pools (replicates); any other must be single.
VARY = ("backend", "N", "K", "replicate")


def pooled_medians(df: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, N, K): the median radius fraction over every target of every replicate, with its interval."""
    rows = []
    for (backend, N, K), d in df.groupby(["backend", "N", "K"]):
        frac = np.clip(d["radius"].to_numpy(dtype=float), 0.0, None) / N
        med, lo, hi = style.bootstrap_median(frac)
        rows.append(dict(backend=backend, N=N, K=K, load=K / N, median=med, lo=lo, hi=hi, n=len(frac)))
    return pd.DataFrame(rows)


def plot_basins(results, out_dir: str | Path = "paper_figures/out", name: str = "basins_vs_load") -> list[Path]:
    """Draw the basin-radius figure from a results folder (or table); returns the PDF and PNG paths."""
    import matplotlib.pyplot as plt

    from amtheory.core import theory

    style.setup()
    raw = style.read_results(results, REQUIRED, vary=VARY)
    med = pooled_medians(raw)
    delta = f"{raw['delta'].iloc[0]:g}" if "delta" in raw else r"\delta"
    Ns = sorted(med["N"].unique())
    fig, axes = plt.subplots(1, len(Ns), figsize=(7.5 * len(Ns), 5.2), squeeze=False)
    present = set(med["backend"])
    order = [b for b in style.BACKEND_COLORS if b in present] + sorted(present - set(style.BACKEND_COLORS))
    order += sorted(set(med["backend"]) - set(order))
    for ax, N in zip(axes[0], Ns):
        m = med[med["N"] == N]
        for b in order:
            d = m[m["backend"] == b].sort_values("load")
            if d.empty:
                continue
            c = style.backend_colour(b)
            ax.plot(d["load"], d["median"], marker="o", ms=5, color=c, label=style.backend_label(b))
            ax.fill_between(d["load"], d["lo"], d["hi"], color=c, alpha=0.15, lw=0)
        loads = np.geomspace(m["load"].min(), m["load"].max(), 200)
        rate = np.log(loads * N) / N
        ok = rate < theory.EXP_ALPHA_MAX
        rho = [theory.exp_basin_radius(float(r)) if r > 0 else 0.5 for r in rate[ok]]
        ax.plot(
            loads[ok],
            rho,
            ls="--",
            color=style.BACKEND_COLORS["exp"],
            lw=1.2,
            label=r"$e^{z}$ theory: $\ln K/N = (\ln 2 - H(\rho^*))/2$",
        )
        ax.axvline(theory.ALPHA_C, color="k", ls=":", lw=1, label=r"$\alpha_c = 0.138$")
        ax.set_xscale("log")
        ax.set_ylim(-0.01, 0.52)
        ax.set_xlabel(r"load $K/N$")
        ax.set_ylabel(r"median basin radius $\rho$ (flipped share)")
        ax.set_title(f"N = {N}, synchronous updates, success $\\geq$ 1 - {delta}")
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=10)
    fig.tight_layout()
    return style.save(fig, out_dir, name)


def main(argv=None) -> list[Path]:
    args = style.cli(__doc__.splitlines()[0], "results/basins_vs_load").parse_args(argv)
    paths = plot_basins(args.results, args.out)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
