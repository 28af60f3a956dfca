"""The memorization results page: the paper's claims one by one, each with its numbers, intervals and verdict
(computed by ``amtheory.studies.memorization.claims`` and ``.meetings`` from the data folder)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from amtheory.reports.memorization.numbers import (
    fmt,
    interval,
    log2_text,
    model_label,
    n_fmt,
    pm,
    section,
    size_interval,
    size_text,
    table,
    verdict_text,
)
from amtheory.studies.memorization import claims as cl
from amtheory.studies.memorization import meetings as mt
from amtheory.studies.memorization.summary import MemorizationData


@dataclass
class Findings:
    """Every number behind the claims, computed once per page."""

    data: MemorizationData
    ref_t: float
    budgets: list[int]
    memorized: pd.DataFrame
    basins: pd.DataFrame
    meetings: pd.DataFrame
    trends: pd.DataFrame
    shifts: pd.DataFrame
    entropy: pd.DataFrame
    nelbo: pd.DataFrame
    perplexity: pd.DataFrame
    precision: pd.DataFrame

    def label(self, model_size: str, steps) -> str:
        return model_label(model_size, steps, self.budgets)


def findings(data: MemorizationData, *, n_boot: int = 1000) -> Findings:
    return Findings(
        data=data, ref_t=mt.reference_t(data.uddm_recovery["t"]), budgets=data.budgets(),
        memorized=cl.memorized(data), basins=cl.basin_change(data), meetings=mt.meetings(data, n_boot=n_boot),
        trends=mt.trends(data, n_boot=n_boot), shifts=mt.budget_shifts(data, n_boot=n_boot),
        entropy=cl.entropy_change(data), nelbo=cl.nelbo_curve(data), perplexity=cl.perplexity_curve(data),
        precision=mt.precision(data),
    )  # fmt: skip


def _at_ref(df: pd.DataFrame, f: Findings) -> pd.DataFrame:
    return df[df["t"] == f.ref_t] if len(df) else df


def verdicts(f: Findings) -> dict[str, tuple[str, str]]:
    """Per claim: its overall verdict and how many rows gave which verdict."""

    def count(v) -> str:
        v = list(v)
        if not v:
            return "nothing to judge"
        parts = [f"{sum(x == k for x in v)} {k}" for k in (cl.REPRODUCED, cl.NOT_REPRODUCED, cl.UNDECIDED)]
        return ", ".join(p for p in parts if not p.startswith("0 "))

    out = {}
    for key, df in (("a", f.memorized), ("b", f.basins), ("c", _at_ref(f.meetings, f)), ("d", _at_ref(f.trends, f)),
                    ("e", f.entropy), ("f", f.perplexity), ("g", _at_ref(f.shifts, f))):  # fmt: skip
        v = list(df["verdict"]) if len(df) else []
        out[key] = (cl.combine(v), count(v))
    return out


CLAIMS = {
    "a": "small training sets are memorized: training recovery near 1, test recovery low, samples verbatim, the "
    "entropy on the model's own samples near 0",
    "b": "as the training set grows, the basins around training blocks shrink and those around test blocks grow",
    "c": "training and test recovery meet (per model size and step budget)",
    "d": "the meeting point grows with the model size",
    "e": "the conditional entropy on the model's own samples moves from near zero to finite across the transition",
    "f": "the test perplexity bound peaks near the meeting point",
    "g": "a longer training moves the meeting point to larger training sets",
}


def section_verdicts(f: Findings) -> str:
    v = verdicts(f)
    rows = [[f"({k})", text, verdict_text(v[k][0]), v[k][1]] for k, text in CLAIMS.items()]
    return section(
        "The claims at a glance",
        "Each verdict comes from the numbers by the rule stated in its section; a difference within noise is "
        "undecided. A claim judged per model size and step budget (and, for (c), (d) and (g), at the reference "
        f"t = {f.ref_t:g}) is reproduced when every row is, not reproduced when every row is not, else undecided.",
        table(["claim", "statement", "verdict", "rows"], rows),
    )  # fmt: skip


def section_memorized(f: Findings) -> str:
    rows = [
        [
            f.label(r["model_size"], r["steps"]),
            n_fmt(r["train_size"]),
            f"{pm(r['train'], r['train_se'])} (t = {r['worst_t']:g})",
            pm(r["test"], r["test_se"]),
            f"{pm(r['max_test'], r['max_test_se'])} (t = {r['max_test_t']:g})",
            f"{fmt(r['verbatim'], 2)} {interval(r['verbatim_low'], r['verbatim_high'], 2)} of {r['generated']}",
            pm(r["entropy"], r["entropy_se"]),
            verdict_text(r["verdict"]),
        ]
        for _, r in f.memorized.iterrows()
    ]
    return section(
        f"(a) {CLAIMS['a'].capitalize()}",
        f"At each model's smallest training set, for every t < 1 (at t = 1 the query is pure noise and says nothing "
        f"about its block): the lowest training recovery (pooled over blocks and seeds, ± one block-clustered "
        f"standard error) and the test recovery at that t, the largest test recovery over t, the share of generated "
        f"blocks that are a training block verbatim (95% Wilson interval) and the mean entropy of the prediction on "
        f"the model's own samples (nats per token ± standard error over blocks). Rule: reproduced when the training "
        f"recovery minus two standard errors is at least {cl.MEMORIZED:g} at every t, training exceeds test "
        f"recovery by more than two standard errors at every t, the verbatim share's interval lies above "
        f"{cl.VERBATIM:g} and the entropy plus two standard errors is at most {cl.NEAR_ZERO:g}; not reproduced "
        f"when any of these is decided the other way; else undecided.",
        table(["model", "blocks", "train recovery (lowest)", "test recovery", "test (largest)",
               "verbatim share", "entropy on own samples", "verdict"], rows),
    )  # fmt: skip


def _median(r, key: str, limit: int) -> str:
    """A median radius with its interval and block count; ≥ where it sits at the search limit (a lower bound)."""
    med = r[key]
    if not math.isfinite(med):
        return "–"
    mark = "≥ " if r[f"{key}_censored"] and med >= limit else ""
    return f"{mark}{fmt(med, 1)} [{fmt(r[f'{key}_low'], 0)}, {fmt(r[f'{key}_high'], 0)}] ({r[f'{key}_blocks']})"


def section_basins(f: Findings) -> str:
    L = int(f.data.run["data"]["length"])
    rows = [
        [
            f.label(r["model_size"], r["steps"]),
            f"{n_fmt(r['smallest'])} → {n_fmt(r['largest'])}",
            _median(r, "train_smallest", L // 2),
            _median(r, "train_largest", L // 2),
            _median(r, "test_smallest", L // 2),
            _median(r, "test_largest", L // 2),
            verdict_text(r["verdict"]),
        ]
        for _, r in f.basins.iterrows()
    ]
    return section(
        f"(b) {CLAIMS['b'].capitalize()}",
        f"Median basin radius (changed tokens out of L = {L}; -1: the block is not even a fixed point) over the "
        "basin blocks of every seed, with its 95% order-statistic interval and the number of blocks, at the smallest "
        f"and the largest training set; ≥ marks a median at the search limit L/2 = {L // 2}. Rule: reproduced when "
        "the training blocks' interval at the largest size lies below that at the smallest and the test blocks' lies "
        "above; not reproduced when either moved the other way beyond its intervals; else undecided.",
        table(["model", "blocks", "train: smallest", "train: largest", "test: smallest", "test: largest",
               "verdict"], rows),
    )  # fmt: skip


#: The difference at the smallest size, in words that are not a claim's verdict.
_FIRST = {"train > test": "train > test", "test > train": "test > train", "undecided": "within noise"}


def section_meetings(f: Findings) -> str:
    rows = [[f.label(r["model_size"], r["steps"]), f"{r['t']:g}", size_text(r["size"]),
             size_interval(r["low"], r["high"], r["seeds"]), r["seeds"], _FIRST.get(r["first"], r["first"]),
             f"{n_fmt(r['smallest'])} ... {n_fmt(r['largest'])} ({r['sizes']})", verdict_text(r["verdict"])]
            for _, r in f.meetings.sort_values(["model_size", "steps", "t"]).iterrows()]  # fmt: skip
    n_eval = f.data.settings.get("n_eval")
    sampled = isinstance(n_eval, int)  # (a data folder that names the evaluation's count)
    prec = [[f.label(r["model_size"], r["steps"]), f"{r['t']:g}",
             *(x for s in ("", "_sampled")[: 1 + sampled] for x in (
                 fmt(r[f"max_se{s}"], 4), n_fmt(r[f"at{s}"]), _within(r[f"max_se{s}"], r[f"within{s}"])))]
            for _, r in f.precision.iterrows()]  # fmt: skip
    within = ["largest SE", "at blocks", f"within {mt.SE_TARGET:g}"]
    census = (
        f" At a training set of at most {n_eval:,} blocks every training block is measured (each at least once), so "
        "that more evaluation blocks cannot lower the standard error there: it comes from the training blocks and "
        f"the seeds themselves, and falls with more seeds. The last three columns take the sizes of more than "
        f"{n_eval:,} blocks alone, where the evaluation's blocks are a sample of the training set."
        if sampled
        else ""
    )
    return section(
        f"(c) {CLAIMS['c'].capitalize()}",
        "Training and test recovery meet at the first training size from which training recovery exceeds test "
        "recovery (seeds pooled) by at most two standard errors at it and at every larger size. The test is "
        "one-sided: training and test blocks are different text, so a model that treats them alike can restore the "
        "test blocks a little better, and that is no gap left by memorization. The interval is the 95% percentile "
        "bootstrap over training seeds (each resample draws the seeds with replacement and sums their block "
        "statistics); \"beyond the sweep\": resamples that do not meet by the largest size. Rule: reproduced when "
        "training exceeds test recovery by more than two standard errors at the smallest size, the curves meet, and "
        "the whole interval meets within the sweep; not reproduced when they are apart at the smallest size and even "
        f"the interval's lower end is beyond the sweep; else undecided (also with one seed). The claim's verdict is "
        f"taken at t = {f.ref_t:g}.",
        table(["model", "t", "meeting size", "95% interval over seeds", "seeds", "at the smallest size",
               "sizes measured", "verdict"], rows),
        "The largest standard error of training minus test recovery over the training sizes (seeds pooled), against "
        f"the {mt.SE_TARGET:g} the sweep is sized for.{census}",
        table(["model", "t", *within, *([f"{w}, more than {n_eval:,} blocks" for w in within] if sampled else [])],
              prec),
    )  # fmt: skip


def _within(se: float, within: bool) -> str:
    return "–" if not math.isfinite(se) else "yes" if within else "no"


def _shift_rows(df: pd.DataFrame, first) -> list[list]:
    return [[*first(r), f"{r['t']:g}", log2_text(r["log2_ratio"]),
             "no interval" if not math.isfinite(r["low"]) else f"[{log2_text(r['low'])}, {log2_text(r['high'])}]",
             r["seeds"], verdict_text(r["verdict"])] for _, r in df.iterrows()]  # fmt: skip


def section_trends(f: Findings) -> str:
    lines = [f"## (d) {CLAIMS['d'].capitalize()}", ""]
    if f.trends.empty:
        return "\n".join([*lines, "One model size only: there is no trend to judge (undecided)."])
    rows = _shift_rows(f.trends, lambda r: [f"{int(r['steps']):,}", f"{r['smallest']} → {r['largest']}"])
    return "\n".join([
        *lines,
        "log2 of the largest model's meeting size over the smallest's (+inf: only the smaller meets within the "
        "sweep), with a 95% bootstrap interval that resamples each model's seeds independently. Rule: reproduced "
        "when the interval lies above 0, not reproduced when below, else undecided (also with one seed, and when "
        f"most resamples meet in neither model). The claim's verdict is taken at t = {f.ref_t:g}.",
        "",
        table(["steps", "models", "t", "log2 ratio", "95% interval", "seeds", "verdict"], rows),
    ])  # fmt: skip


def section_entropy(f: Findings) -> str:
    rows = []
    for _, r in f.entropy.iterrows():

        def ends(split: str, r=r) -> str:
            return (f"{pm(r[f'{split}_smallest'], r[f'{split}_smallest_se'])} → "
                    f"{pm(r[f'{split}_largest'], r[f'{split}_largest_se'])}")  # fmt: skip

        rows.append([f.label(r["model_size"], r["steps"]), f"{n_fmt(r['smallest'])} → {n_fmt(r['largest'])}",
                     ends("generated"), ends("train"), ends("test"), verdict_text(r["verdict"])])  # fmt: skip
    t = f.data.settings.get("entropy_t", float("nan"))
    return section(
        f"(e) {CLAIMS['e'].capitalize()}",
        f"Mean per-token entropy (nats) of p_theta(x_0 | x_t) at t = {t:g} on the model's generated blocks, and on "
        "training and test blocks, at the smallest and the largest training set (± standard error over the blocks "
        f"of every seed). Rule: reproduced when the generated blocks' entropy plus two standard errors is at most "
        f"{cl.NEAR_ZERO:g} at the smallest size and its value minus two standard errors at the largest exceeds both "
        f"{cl.NEAR_ZERO:g} and the smallest size's upper end; not reproduced when it is decided above "
        f"{cl.NEAR_ZERO:g} at the smallest size or decided below it at the largest; else undecided.",
        table(["model", "blocks", "generated", "train", "test", "verdict"], rows),
    )  # fmt: skip


def _peak_text(f: Findings, r) -> str:
    m = f.meetings
    m = m[(m["model_size"] == r["model_size"]) & (m["steps"] == r["steps"]) & (m["t"] == f.ref_t)]
    meet = m.iloc[0] if len(m) else None

    def relative(size: int, what: str) -> str:
        """Where ``size`` lies against the meeting point's interval."""
        if meet is None:
            return ""
        if meet["size"] is None:
            return f"; train and test recovery do not meet within the sweep (t = {f.ref_t:g})"
        lo = meet["low"] if meet["low"] is not None else math.inf
        hi = meet["high"] if meet["high"] is not None else math.inf
        rel = "below" if size < lo else "above" if size > hi else "within"
        return (
            f"; train and test recovery meet at {size_text(meet['size'])} blocks (t = {f.ref_t:g}, interval "
            f"{size_interval(meet['low'], meet['high'], meet['seeds'])}), so {what} lies {rel} that interval"
        )

    if r["peak"] is not None:
        return f"a peak at {n_fmt(r['peak'])} blocks (bound {r['peak_ppl']:,.1f}){relative(r['peak'], 'the peak')}"
    if r["seeds"] < 2:
        return "one seed: no interval, so no peak can be told from noise"
    return (
        f"no interior peak whose interval separates from both neighbours; the mean bound is largest at "
        f"{n_fmt(r['argmax'])} blocks, and {r['decided_steps']} of {r['sizes'] - 1} neighbouring sizes differ "
        f"beyond their intervals{relative(r['argmax'], 'the largest bound')}"
    )


def section_perplexity(f: Findings) -> str:
    lines = [f"## (f) {CLAIMS['f'].capitalize()}", ""]
    sizes = sorted(set(f.nelbo["train_size"]))
    rows = []
    for (ms, steps), g in f.nelbo.groupby(["model_size", "steps"]):
        g = g.set_index("train_size")
        rows.append([f.label(ms, steps)] + [
            f"{g.loc[n, 'ppl_mean']:,.1f} {interval(g.loc[n, 'ppl_low'], g.loc[n, 'ppl_high'], 1)}" if n in g.index
            else "–" for n in sizes])  # fmt: skip
    lines += [
        "Test perplexity bound exp(NELBO per token) in the compacted vocabulary: exp of the mean over seeds of each "
        "seed's mean test NELBO, with exp of its 95% t interval over seeds. Rule: a peak is an interior training "
        "size whose interval lies above both neighbours' intervals; reproduced when there is one, not reproduced "
        "when every pair of neighbouring sizes is separated and none is a peak, else undecided (also with one seed "
        "or fewer than three sizes).",
        "",
        table(["model"] + [n_fmt(n) for n in sizes], rows),
        "",
    ]
    for _, r in f.perplexity.iterrows():
        lines.append(f"- {f.label(r['model_size'], r['steps'])}: {_peak_text(f, r)} — {verdict_text(r['verdict'])}.")
    return "\n".join(lines)


def section_budgets(f: Findings) -> str:
    lines = [f"## (g) {CLAIMS['g'].capitalize()}", ""]
    if f.shifts.empty:
        return "\n".join([*lines, "One step budget only: there is nothing to compare (undecided)."])
    m = f.meetings.set_index(["model_size", "steps", "t"])

    def first(r):
        a, b = m.loc[(r["model_size"], r["before"], r["t"])], m.loc[(r["model_size"], r["after"], r["t"])]
        return [r["model_size"], f"{size_text(a['size'])} {size_interval(a['low'], a['high'], a['seeds'])}",
                f"{size_text(b['size'])} {size_interval(b['low'], b['high'], b['seeds'])}"]  # fmt: skip

    b0, b1 = int(f.shifts["before"].min()), int(f.shifts["after"].max())
    return "\n".join([
        *lines,
        f"Meeting size (with its interval over seeds) at {b0:,} and at {b1:,} training steps side by side, and log2 of "
        "their ratio with a 95% bootstrap interval (each budget's seeds resampled independently). Rule: reproduced "
        "when the interval lies above 0, not reproduced when below, else undecided. The claim's verdict is taken at "
        f"t = {f.ref_t:g}.",
        "",
        table(["model", f"{b0:,} steps", f"{b1:,} steps", "t", "log2 ratio", "95% interval", "seeds", "verdict"],
              _shift_rows(f.shifts, first)),
    ])  # fmt: skip
