"""The memorization results page: the measurements behind the claims, table by table (recovery rates, the
Hopfield family, basins, fixed points, extraction, the KL from the memorization limit, the reverse trajectory) and
the figures."""

from __future__ import annotations

import pandas as pd

from amtheory.core.basins import fixed_point_radius_table, wilson_interval
from amtheory.reports.memorization.claims import Findings
from amtheory.reports.memorization.numbers import fmt, interval, n_fmt, pm, section, table
from amtheory.studies.memorization.claims import rates
from amtheory.studies.memorization.summary import pool_means

HOPFIELD_NAMES = {
    "empirical": "EmpiricalDenoiser",
    "dense_exp": "DenseAM (exp)",
    "modern": "ModernHopfield",
    "classical": "ClassicalHopfield",
}
FIGURES = (
    ("memorization_recovery", "UDDM recovery of corrupted tokens against training-set size (solid train, dashed test)"),
    ("memorization_backends", "the same beside the Hopfield family, one panel per t"),
    ("memorization_basins", "share of fixed points and median basin radius against size, every backend"),
    ("memorization_entropy", "conditional entropy on training, test and generated blocks against size"),
    ("memorization_perplexity", "test and training perplexity bound against size, meeting point marked"),
    ("memorization_extraction", "verbatim copies, longest shared span, fixed-point shares, KL from the empirical "
     "denoiser"),
    ("memorization_trajectory", "entropy and top-two gap of the prediction along the reverse chain"),
    ("memorization_example", "one training and one test block corrupted and restored, smallest vs largest training "
     "set"),
)  # fmt: skip
_BY = ["model_size", "steps", "train_size", "split"]


def _models(f: Findings):
    """(model size, steps, label) of every UDDM, smallest model and budget first."""
    return [(ms, s, f.label(ms, s)) for ms in f.data.model_sizes() for s in f.budgets]


def section_recovery(f: Findings) -> str:
    r = rates(f.data)
    u = r[r["backend"] == "uddm"].set_index(["model_size", "steps", "train_size", "t", "split"])
    ts = sorted(r.loc[r["backend"] == "uddm", "t"].unique())
    lines = [
        "## Recovery rates",
        "",
        "Share of the changed ordinary tokens restored, pooled over the blocks of every seed (± one block-clustered "
        "standard error), on training / test / random blocks:",
        "",
    ]
    for ms, steps, label in _models(f):
        sizes = sorted({k[2] for k in u.index if k[0] == ms and k[1] == steps})
        if not sizes:
            continue
        rows = []
        for n in sizes:
            row = [n_fmt(n)]
            for t in ts:
                row.append(
                    " / ".join(
                        pm(u.loc[(ms, steps, n, t, s), "rate"], u.loc[(ms, steps, n, t, s), "se"])
                        if (ms, steps, n, t, s) in u.index
                        else "–"
                        for s in ("train", "test", "random")
                    )
                )
            rows.append(row)
        lines += [f"**{label}**", "", table(["blocks"] + [f"t = {t:g}" for t in ts], rows), ""]
    return "\n".join(lines).rstrip()


def section_exact_broken(f: Findings) -> str:
    """Blocks restored whole (Wilson interval) and clean tokens broken (± standard error over blocks) at the
    reference t."""
    r = f.data.uddm_recovery
    r = r[r["t"] == f.ref_t].assign(exact_k=lambda d: d["exact_mean"] * d["evaluated"])
    ex = r.groupby(_BY)[["exact_k", "evaluated"]].sum()
    br = pool_means(r, _BY, prefix="broken_").set_index(_BY)
    rows = []
    for ms, steps, label in _models(f):
        for n in sorted({k[2] for k in br.index if k[0] == ms and k[1] == steps}):
            row = [label, n_fmt(n)]
            for s in ("train", "test", "random"):
                k = (ms, steps, n, s)
                e = ex.loc[k] if k in ex.index else None
                whole = "–" if e is None else _wilson(e["exact_k"] / e["evaluated"], e["evaluated"], 2)
                row.append(f"{whole}; {pm(br.loc[k, 'mean'], br.loc[k, 'se'])}" if k in br.index else "–")
            rows.append(row)
    return section(
        "Whole blocks restored, and clean tokens broken",
        f"At t = {f.ref_t:g}: the share of blocks restored whole (95% Wilson interval, blocks of every seed); then the "
        "share of their clean ordinary tokens that the reverse chain breaks (± standard error over blocks):",
        table(["model", "blocks", "train", "test", "random"], rows),
    )  # fmt: skip


def section_hopfield(f: Findings) -> str:
    r = rates(f.data)
    rec = f.data.recovery
    ts = sorted(r["t"].unique())
    rows = []
    for b, name in HOPFIELD_NAMES.items():
        g = r[r["backend"] == b].set_index(["train_size", "t", "split"])
        ex = rec[(rec["backend"] == b) & rec["applicable"]].set_index(["train_size", "t", "split"])
        for n in sorted({k[0] for k in g.index}):
            row = [name, n_fmt(n)]
            for t in ts:
                cell = [pm(g.loc[(n, t, s), "rate"], g.loc[(n, t, s), "se"]) if (n, t, s) in g.index else "–"
                        for s in ("train", "test")]  # fmt: skip
                exact = [_wilson(ex.loc[(n, t, s), "exact_mean"], ex.loc[(n, t, s), "evaluated"], 2)
                         if (n, t, s) in ex.index else "–" for s in ("train", "test")]  # fmt: skip
                row.append(" / ".join(cell) + f" (exact {' / '.join(exact)})")
            rows.append(row)
    lines = ["## The Hopfield family on the same blocks and corruptions", ""]
    if not rows:
        return "\n".join([*lines, "No Hopfield-family memory was measured."])
    lines += [
        "Recovered share train / test (± block-clustered standard error; in brackets the share of blocks restored "
        "whole, train / test, with its 95% Wilson interval):",
        "",
        table(["memory", "blocks stored"] + [f"t = {t:g}" for t in ts], rows),
        "",
    ]
    na = rec[~rec["applicable"]][["backend", "train_size", "reason"]].drop_duplicates()
    for b, name in HOPFIELD_NAMES.items():
        for reason, x in na[na["backend"] == b].groupby("reason"):
            lines.append(f"- {name} not applicable at {', '.join(n_fmt(n) for n in sorted(x['train_size']))} blocks: "
                         f"{reason}.")  # fmt: skip
    return "\n".join(lines).rstrip()


def _radius_cells(t: pd.Series) -> list[str]:
    med = "–" if pd.isna(t["median"]) else (f"{'≥ ' if t['median_censored'] else ''}{fmt(t['median'], 1)} "
                                            f"{interval(t['median_low'], t['median_high'], 0)}")  # fmt: skip
    return [f"{fmt(t['fixed_share'], 2)} {interval(t['fixed_share_low'], t['fixed_share_high'], 2)}", med]


def section_basin_table(f: Findings) -> str:
    b = f.data.basins[f.data.basins["applicable"]].astype({"radius": float})
    series = [
        (label, b[(b["backend"] == "uddm") & (b["model_size"] == ms) & (b["steps"] == s)])
        for ms, s, label in _models(f)
    ]
    series += [(name, b[b["backend"] == k]) for k, name in HOPFIELD_NAMES.items()]
    rows = []
    for label, g in series:
        if g.empty:
            continue
        t = fixed_point_radius_table(g, ["train_size", "split"]).set_index(["train_size", "split"])
        for n in sorted({k[0] for k in t.index}):
            row = [label, n_fmt(n)]
            for split in ("train", "test"):
                row += _radius_cells(t.loc[(n, split)]) if (n, split) in t.index else ["–", "–"]
            rows.append(row)
    L = int(f.data.run["data"]["length"])
    return section(
        "Basin radius against training-set size",
        f"Per memory and size, over the basin blocks of every seed: the share of blocks that are fixed points (95% "
        f"Wilson interval) and the median radius over those fixed points (changed tokens out of L = {L}, 95% "
        f"order-statistic interval; ≥: at the search limit L/2 = {L // 2}):",
        table(["memory", "blocks", "train: fixed", "train: median radius", "test: fixed", "test: median radius"],
              rows),
    )  # fmt: skip


def _wilson(mean, count, digits: int = 3) -> str:
    """A share of ``count`` blocks with its 95% Wilson interval and the count."""
    if not count or pd.isna(count):
        return "–"
    k, n = int(round(mean * count)), int(count)
    return f"{fmt(mean, digits)} {interval(*wilson_interval(k, n), 2)} of {n}"


def section_fixed_points(f: Findings) -> str:
    fp = pool_means(f.data.measure("fixed_points", "fixed"), _BY).set_index(_BY)
    rows = []
    for ms, steps, label in _models(f):
        for n in sorted({k[2] for k in fp.index if k[0] == ms and k[1] == steps}):
            rows.append(
                [label, n_fmt(n)]
                + [
                    _wilson(fp.loc[(ms, steps, n, s), "mean"], fp.loc[(ms, steps, n, s), "count"])
                    if (ms, steps, n, s) in fp.index
                    else "–"
                    for s in ("train", "test", "random")
                ]
            )
    return section(
        "Fixed points (argmax dynamics from t = 1 started at the clean block)",
        "Share of blocks returned unchanged, every seed pooled (95% Wilson interval, blocks):",
        table(["model", "blocks", "train", "test", "random"], rows),
    )  # fmt: skip


def section_extraction(f: Findings) -> str:
    by = _BY[:3]
    verb = pool_means(f.data.measure("generation", "verbatim"), by).set_index(by)
    span = pool_means(f.data.measure("generation", "longest_span"), by).set_index(by)
    rows = []
    for key in verb.index:
        v, s = verb.loc[key], span.loc[key] if key in span.index else None
        rows.append(
            [
                f.label(key[0], key[1]),
                n_fmt(key[2]),
                _wilson(v["mean"], v["count"]),
                "–" if s is None else pm(s["mean"], s["se"], 1),
                "–" if s is None else fmt(s["max"], 0),
            ]
        )
    L = int(f.data.run["data"]["length"])
    return section(
        "Memorization as extraction",
        f"Generated blocks that reproduce a training block verbatim (share, 95% Wilson interval, samples of every "
        f"seed), and the longest token span a generated block shares with any training block (L = {L}; mean ± "
        "standard error, maximum):",
        table(["model", "blocks", "verbatim share", "longest span", "span max"], rows),
    )  # fmt: skip


def section_kl(f: Findings) -> str:
    by = [*_BY, "t"]
    kl = pool_means(f.data.measure("kl", "kl"), by).set_index(by)
    diff = pool_means(f.data.measure("kl", "argmax_differs"), by).set_index(by)
    ts = sorted({k[4] for k in kl.index})
    rows = []
    for ms, steps, label in _models(f):
        for n in sorted({k[2] for k in kl.index if k[0] == ms and k[1] == steps}):
            row = [label, n_fmt(n)]
            for t in ts:
                a, b = (ms, steps, n, "train", t), (ms, steps, n, "test", t)
                row.append(
                    f"{pm(kl.loc[a, 'mean'], kl.loc[a, 'se'])} / {pm(kl.loc[b, 'mean'], kl.loc[b, 'se'])} "
                    f"({pm(diff.loc[a, 'mean'], diff.loc[a, 'se'], 2)})"
                    if a in kl.index and b in kl.index
                    else "–"
                )
            rows.append(row)
    return section(
        "Distance from the memorization limit: KL(EmpiricalDenoiser || UDDM)",
        "Per-token KL in nats (± standard error over blocks), train / test blocks (in brackets: share of training-"
        "block tokens whose most probable clean token differs between the two, ± standard error over blocks):",
        table(["model", "blocks"] + [f"t = {t:g}" for t in ts], rows),
    )  # fmt: skip


def section_trajectory(f: Findings) -> str:
    tr = f.data.trajectory
    if tr.empty:
        return "## The prediction along the reverse chain\n\nNot measured."
    by = ["model_size", "steps", "train_size", "step", "t"]
    parts = {q: pool_means(tr.rename(columns={f"{q}_mean": "mean", f"{q}_sd": "sd"}), by).set_index(by)
             for q in ("entropy", "gap")}  # fmt: skip
    steps_kept = sorted(set(tr["step"]))
    picks = sorted({steps_kept[0], steps_kept[len(steps_kept) // 2], steps_kept[-1]})
    t_of = tr.drop_duplicates("step").set_index("step")["t"]
    rows = []
    for ms, steps, label in _models(f):
        for n in sorted({k[2] for k in parts["entropy"].index if k[0] == ms and k[1] == steps}):
            row = [label, n_fmt(n)]
            for s in picks:
                k = (ms, steps, n, s, t_of[s])
                e, g = parts["entropy"], parts["gap"]
                row.append(
                    f"{pm(e.loc[k, 'mean'], e.loc[k, 'se'])} / {pm(g.loc[k, 'mean'], g.loc[k, 'se'])}"
                    if k in e.index
                    else "–"
                )
            rows.append(row)
    return section(
        "The prediction along the reverse chain",
        "Entropy (nats per token) / top-two probability gap of p_theta(x_0 | x_t) along the reverse chain from "
        "uniform noise, mean ± standard error over the generated sequences of every seed, at the first step, the "
        "middle one and on the samples:",
        table(["model", "blocks"] + [f"t = {t_of[s]:.3g}" for s in picks], rows),
    )  # fmt: skip


def section_figures(fig_dir: str, drawn: set[str] | None = None) -> str:
    lines = ["## Figures", ""]
    for name, caption in FIGURES:
        if drawn is not None and name not in drawn:
            continue
        lines += [f"![{caption}]({fig_dir}/{name}.png)", "", f"*{name}*: {caption}.", ""]
    return "\n".join(lines).rstrip()
