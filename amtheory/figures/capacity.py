"""Capacity curves of classical Hopfield networks from ``experiments/capacity.py`` results.

Rows: share of stored patterns that are fixed points, one-step bit error, wrong bits after retrieval; columns:
Hebbian, Storkey, pseudo-inverse; one line per N (mean over replicates, 95% bootstrap band). Theory: the one-step
error ``Phi(-1/sqrt(alpha))`` and ``alpha_c = 0.138`` (Amit, Gutfreund, Sompolinsky 1985) in the Hebbian column,
McEliece et al.'s (1987) exact-recall loads ``1/(2 ln N)`` (filled) and ``1/(4 ln N)`` (open) as markers,
Storkey's ``1/sqrt(2 ln N)`` and the pseudo-inverse limit alpha = 1. Columns are titled with the registry's labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.figures import style

REQUIRED = ("rule", "N", "alpha", "replicate", "load", "fixed_point", "one_step_error", "final_error")
#: The settings the figure draws (panels, lines, x) and averages over (replicates); any other must be single.
VARY = ("rule", "N", "alpha", "replicate")
RULES = ("hebbian", "storkey", "pseudoinverse")
METRICS = (
    ("fixed_point", "fixed-point share"),
    ("one_step_error", "one-step bit error"),
    ("final_error", "wrong bits after retrieval"),
)


def per_network(df: pd.DataFrame) -> pd.DataFrame:
    """One row per stored network (rule, N, alpha, replicate): the pattern averages of each metric."""
    cols = [m for m, _ in METRICS]
    return df.groupby(["rule", "N", "alpha", "replicate"], as_index=False).agg(
        {"load": "first", **{c: "mean" for c in cols}}
    )


def plot_capacity(results, out_dir: str | Path = "paper_figures/out", name: str = "capacity") -> list[Path]:
    """Draw the capacity figure from a results folder (or table); returns the PDF and PNG paths."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from amtheory.core import theory

    style.setup()
    df = per_network(style.read_results(results, REQUIRED, vary=VARY))
    rules = [r for r in RULES if r in set(df["rule"])]
    Ns = sorted(df["N"].unique())
    palette = dict(zip(Ns, sns.color_palette("viridis", len(Ns))))
    fig, axes = plt.subplots(3, len(rules), figsize=(4.6 * len(rules), 10), squeeze=False, sharex="col")
    for j, rule in enumerate(rules):
        d = df[df["rule"] == rule]
        xmax = float(d["load"].max()) * 1.03
        for i, (metric, label) in enumerate(METRICS):
            ax = axes[i, j]
            sns.lineplot(
                data=d,
                x="load",
                y=metric,
                hue="N",
                palette=palette,
                marker="o",
                markersize=4,
                errorbar=("ci", 95),
                n_boot=500,
                seed=0,
                ax=ax,
                legend=(i == 0 and j == 0),
            )
            ax.set_xlim(0, xmax)
            ax.set_xlabel(r"load $\alpha = K/N$" if i == 2 else "")
            ax.set_ylabel(label if j == 0 else "")
            if i == 0:
                ax.set_title(style.backend_label(rule))
                ax.set_ylim(-0.03, 1.05)
            if rule == "hebbian":
                ax.axvline(
                    theory.ALPHA_C, color="k", ls=":", lw=1, label=r"$\alpha_c=0.138$" if i == 1 else "_nolegend_"
                )
                if metric == "one_step_error":
                    a = np.linspace(0.005, xmax, 200)
                    ax.plot(a, [theory.one_step_error(x) for x in a], "k--", lw=1.2, label=r"$\Phi(-1/\sqrt{\alpha})$")
                    ax.legend(loc="upper left", fontsize=9)
                if metric == "fixed_point":
                    for N in Ns:
                        for all_fixed, face in ((False, palette[N]), (True, "none")):
                            a = theory.mceliece_capacity(int(N), all_fixed=all_fixed) / N
                            ax.plot([a], [1.0], marker="v", ms=9, color=palette[N], mfc=face, clip_on=False)
            if rule == "storkey" and metric == "fixed_point":
                for N in Ns:
                    ax.plot(
                        [theory.storkey_capacity(int(N)) / N], [1.0], marker="v", ms=9, color=palette[N], clip_on=False
                    )
            if rule == "pseudoinverse":
                ax.axvline(theory.PSEUDOINVERSE_ALPHA, color="k", ls=":", lw=1)
            if i > 0:
                # Errors are >= 0: start the axis at 0 and keep a visible range when all of them are 0.
                top = max(float(d[metric].max()), 0.02) * 1.08
                if rule == "hebbian" and metric == "one_step_error":
                    top = max(top, theory.one_step_error(xmax) * 1.08)
                ax.set_ylim(-0.02 * top, top)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if axes[0, 0].get_legend() is not None:
        axes[0, 0].get_legend().remove()
    from matplotlib.lines import Line2D

    handles += [
        Line2D(
            [], [], color="gray", marker="v", ls="", ms=8, label="McEliece $N/(2\\ln N)$; Storkey $N/\\sqrt{2\\ln N}$"
        ),
        Line2D([], [], color="gray", marker="v", mfc="none", ls="", ms=8, label="McEliece $N/(4\\ln N)$ (all fixed)"),
        Line2D([], [], color="k", ls=":", label=r"$\alpha_c = 0.138$ / pseudo-inverse limit $\alpha=1$"),
    ]
    labels = [f"N = {lab}" if lab.isdigit() else lab for lab in labels[: len(handles) - 3]] + [
        h.get_label() for h in handles[-3:]
    ]
    fig.legend(handles, labels, loc="outside upper center", ncol=min(4, len(handles)))
    style.footnote(fig, "Lines: mean over replicate networks; bands: 95% bootstrap intervals over them.")
    return style.save(fig, out_dir, name)
