"""The main job (``amtheory run``): the Hopfield family side by side, then the diffusion LM's memorization sweep,
each from its preset, with their result tables, a ``SUMMARY.md`` and figures under one folder.

``run_main_job`` runs the parts and writes ``SUMMARY.md``; ``format_summary`` turns the memorization sweep's
numbers (``amtheory.studies.memorization.summarize``) into its text. Figures are drawn by a ``figures`` hook that
the caller passes (``amtheory.cli`` passes the paper figures), because this layer does not import figure code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["SUMMARY_LEGEND", "FigureHook", "format_summary", "run_main_job"]

#: ``figures(part, tables_folder, figures_folder)`` draws the figures of ``part`` ("hopfield" or "memorization")
#: and returns their paths; an ImportError (the plot extra missing) skips them with a note.
FigureHook = Callable[[str, Path, Path], list[Path]]


def _draw(figures: FigureHook | None, part: str, tables: Path, dest: Path) -> None:
    if figures is None:
        return
    try:
        for p in figures(part, tables, dest):
            print("figure:", p)
    except ImportError as e:  # the plot extra is optional
        print(f"(figures skipped: {e})")


def _peak_memory(device: str) -> str:
    """The peak memory PyTorch allocated on ``device`` since the last reset, as text ("" off CUDA)."""
    if not device.startswith("cuda"):
        return ""
    import torch

    return f", peak allocated {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"


def _reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def _run_hopfield(
    preset: str,
    out: Path,
    device: str,
    progress: bool,
    lines: list[str],
    max_memory: int | None = None,
    figures: FigureHook | None = None,
) -> None:
    import pandas as pd

    from amtheory.core.basins import RADIUS_CONVENTION
    from amtheory.studies.hopfield import compare

    t0 = time.perf_counter()
    _reset_peak_memory(device)
    print(f"== Hopfield family side by side (preset {preset}, {device}) ==", flush=True)
    rec, rad = compare.run(preset, out=str(out / "hopfield"), device=device, progress=progress, max_memory=max_memory)
    took = f"{time.perf_counter() - t0:.0f} s on {device}{_peak_memory(device)}"
    print(f"Hopfield family: {took}", flush=True)
    exact, radius = compare.summary_tables(rec, rad)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(f"\nbasin radius / N (rows: backend, N; columns: load K/N); each entry: {RADIUS_CONVENTION}")
        print(radius.to_string())
        print("\nexact retrieval rate (columns: load, fraction of tokens corrupted)")
        print(exact.to_string())
    lines += [
        f"## Hopfield family, preset {preset} ({took})",
        "",
        f"Basin radius / N (delta = 0.1), rows backend and N, columns load K/N; each entry: {RADIUS_CONVENTION}:",
        "",
        radius.to_markdown() if _has_tabulate() else "```\n" + radius.to_string() + "\n```",
        "",
    ]
    _draw(figures, "hopfield", out / "hopfield", out / "figures")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


#: One line per column of the diffusion summary (SUMMARY.md prints them above the numbers).
SUMMARY_LEGEND = (
    "How to read the diffusion numbers:",
    "- t: the noise time of the corruption; the forward kernel redraws each token with probability (1 - 1e-3) t.",
    "- K: the evaluation blocks behind the training / test rates of a row (the first K training blocks, all of "
    "them when there are fewer; as many test and random blocks); a rate pools the changed tokens of its blocks.",
    "- recovered (train / test / random): the share of corrupted ordinary tokens (never the [CLS]/[SEP] frame or "
    "other special tokens) that the reverse chain restores, as rate ± standard error (clustered by block).",
    "- delta: training minus test recovery ± its standard error; '>' or '<' when it exceeds two standard "
    "errors, '=' (undecided) when it is within them.",
    "- meet: the first training size from which delta is not '>' at it and every larger size (a test split "
    "ahead is no gap left by memorization: the two splits are different text); 'not in range' when training "
    "recovery is still ahead at the largest.",
    "- entropy: the mean per-token entropy of the model's prediction of the clean block from a clean block "
    "(t = 1e-5), in nats ± standard error over blocks; near 0 the model is sure of every token (it memorized), "
    "finite values mean it spreads its prediction (it generalizes). 'generated': on its own samples.",
    "- entropy of the prediction at the corrupted query: the mean entropy of p_theta(x_0 | x_t = query) at the "
    "query's own t over the changed ordinary tokens the chain restored, and over those it did not.",
    "- test perplexity bound: exp(test NELBO per token), in the compacted vocabulary.",
)
#: The thresholds the summary's verdicts use: memorization at the smallest size.
MEMORIZED_RECOVERY = 0.95
MEMORIZED_ENTROPY = 0.05


def _pm(v: float | None, se: float | None, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    se_s = "?" if se is None or not math.isfinite(se) else f"{se:.{digits}f}"
    return f"{v:.{digits}f} ± {se_s}"


def _verdicts(ms: str, summary: dict) -> list[str]:
    """Plain statements of what the run shows for model size ``ms``: memorization at the smallest size, agreement
    at the largest, and where the curves meet. A difference or a threshold counts only beyond ``Z_MEET`` standard
    errors, the study's own rule (``amtheory.studies.memorization.rates``)."""
    from amtheory.studies.memorization.rates import Z_MEET

    rec = summary.get("recovery", {}).get(ms, {})
    if not rec:
        return []
    sizes = sorted({n for rows in rec.values() for n in rows})
    lo, hi = sizes[0], sizes[-1]
    out = []
    cells = [(rows[lo]["train"], rows[lo].get("train_se", 0.0), t) for t, rows in rec.items() if lo in rows]
    worst = min(cells)
    ent = summary.get("entropy", {}).get(ms, {}).get("smallest", {})
    h, h_se = ent.get("train"), ent.get("train_se") or 0.0
    # Each criterion is decided only beyond two standard errors of its threshold; within them the run cannot say.
    against = any(r + Z_MEET * e < MEMORIZED_RECOVERY for r, e, _ in cells) or (
        h is not None and h - Z_MEET * h_se >= MEMORIZED_ENTROPY
    )
    meets = all(r - Z_MEET * e >= MEMORIZED_RECOVERY for r, e, _ in cells) and (
        h is not None and h + Z_MEET * h_se < MEMORIZED_ENTROPY
    )
    word = "does not memorize" if against else "memorizes" if meets else "may or may not memorize"
    out.append(
        f"- At {lo} blocks the model {word} its training blocks by the criteria training recovery >= "
        f"{MEMORIZED_RECOVERY} at every t (lowest: {_pm(worst[0], worst[1])} at t={worst[2]:g}) and training entropy "
        f"< {MEMORIZED_ENTROPY} nats ({'–' if h is None else _pm(h, ent.get('train_se'), 3)})"
        + (", each decided beyond two standard errors." if against or meets else
           ": undecided, a measure is within two standard errors of its threshold.")
    )  # fmt: skip
    apart = [
        f"t={t:g}" for t, rows in sorted(rec.items()) if rows.get(hi, {}).get("verdict", "undecided") != "undecided"
    ]
    out.append(
        f"- At {hi} blocks training and test recovery "
        + (f"still differ by more than two standard errors at {', '.join(apart)}." if apart else
           "agree within two standard errors at every t.")
    )  # fmt: skip
    rises = [
        f"t={t:g} ({rows[lo]['test']:.2f} to {rows[hi]['test']:.2f})"
        for t, rows in sorted(rec.items())
        if lo in rows
        and hi in rows
        and rows[hi]["test"] - rows[lo]["test"] > Z_MEET * math.hypot(rows[hi]["test_se"], rows[lo]["test_se"])
    ]
    out.append(
        f"- Test recovery from {lo} to {hi} blocks "
        + (f"rises beyond two standard errors at {', '.join(rises)}." if rises else
           "does not rise beyond two standard errors at any t: where the curves meet, training recovery has fallen "
           "to the test level; this run does not show recovery of unseen blocks.")
    )  # fmt: skip
    ent = summary.get("entropy", {}).get(ms, {})
    e0, e1 = ent.get("smallest", {}), ent.get("largest", {})
    if e0.get("generated") is not None and e1.get("generated") is not None:
        out.append(
            f"- Entropy on the model's own samples: {_pm(e0['generated'], e0.get('generated_se'), 3)} nats at "
            f"{e0['train_size']} blocks, {_pm(e1['generated'], e1.get('generated_se'), 3)} at {e1['train_size']}."
        )
    peak = summary.get("perplexity_peak", {}).get(ms)
    if peak:
        where = "an inner size" if lo < peak["train_size"] < hi else "an end of the sweep, not at a transition"
        out.append(f"- The test perplexity bound peaks at {peak['train_size']} blocks ({where}).")
    return out


def format_summary(summary: dict) -> str:
    """The memorization sweep's headline numbers as plain text, every rate with its standard error, after a legend
    of the columns and the run's verdicts."""
    lines = list(SUMMARY_LEGEND) + [""]
    for ms, by_t in summary.get("meeting", {}).items():
        lines += [f"{ms}:", *_verdicts(ms, summary), ""]
        for t, rows in sorted(summary.get("recovery", {}).get(ms, {}).items()):
            v = by_t.get(t)
            meet = "not in range" if v is None else f"{v:.0f} blocks"
            ci = summary.get("meeting_interval", {}).get(ms, {}).get(t)
            if ci and ci.get("low") is not None:
                hi = "beyond the sweep" if ci["high"] is None else f"{ci['high']:.0f}"
                meet += f" (bootstrap over {ci['seeds']} seeds: {ci['low']:.0f} to {hi})"
            lines.append(f"  t={t:g}: meet at {meet}")
            lines.append(f"    {'blocks':>7}  {'K':>7}  {'train':>11}  {'test':>11}  {'random':>11}  delta")
            for n, r in sorted(rows.items()):
                sign = {"train > test": ">", "test > train": "<"}.get(r.get("verdict", ""), "=")
                lines.append(
                    f"    {n:>7}  {str(r.get('train_blocks', 0)) + '/' + str(r.get('test_blocks', 0)):>7}  "
                    f"{_pm(r.get('train'), r.get('train_se')):>11}  "
                    f"{_pm(r.get('test'), r.get('test_se')):>11}  {_pm(r.get('random'), r.get('random_se')):>11}  "
                    f"{_pm(r.get('diff'), r.get('diff_se'))} {sign}"
                )
        ent = summary.get("entropy", {}).get(ms)
        if ent:
            for end in ("smallest", "largest"):
                e = ent.get(end, {})
                if e:
                    lines.append(
                        f"  entropy at {e['train_size']} blocks (nats/token): train "
                        f"{_pm(e.get('train'), e.get('train_se'), 3)}, "
                        f"test {_pm(e.get('test'), e.get('test_se'), 3)}, generated "
                        f"{_pm(e.get('generated'), e.get('generated_se'), 3)}"
                    )
        tok = summary.get("token_entropy", {}).get(ms, {})
        for n in sorted(tok)[:1] + sorted(tok)[1:][-1:]:
            e = tok[n]
            lines.append(
                f"  entropy of the prediction at the corrupted query, {n} blocks (nats/token): restored tokens "
                f"{_pm(e['recovered']['mean'], e['recovered']['se'], 3)}, unrestored "
                f"{_pm(e['unrecovered']['mean'], e['unrecovered']['se'], 3)}"
            )
        peak = summary.get("perplexity_peak", {}).get(ms)
        if peak:
            lines.append(
                f"  test perplexity bound peaks at {peak['train_size']} blocks ({peak['perplexity_bound']:.1f}; "
                f"NELBO {_pm(peak.get('nelbo'), peak.get('nelbo_se'))} nats/token)"
            )
    for t, tr in sorted(summary.get("meeting_trend", {}).items()):
        interval = (
            "no interval with one seed" if tr["seeds"] < 2 else f"95% interval {tr['low']:.2f} to {tr['high']:.2f}"
        )
        lines.append(
            f"meeting size from {tr['smallest']} to {tr['largest']} at t={t:g}: log2 ratio {tr['log2_ratio']:.2f} "
            f"({interval}; {tr['verdict']})"
        )
    return "\n".join(lines)


def _run_diffusion(
    preset: str, out: Path, device: str, progress: bool, lines: list[str], figures: FigureHook | None = None
) -> None:
    from amtheory.studies import memorization
    from amtheory.studies.memorization.presets import main_job_preset

    t0 = time.perf_counter()
    _reset_peak_memory(device)
    print(f"\n== Diffusion LM: memorization to generalization (preset {preset}, {device}) ==", flush=True)
    root = out / "memorization"
    memorization.run_experiment(main_job_preset(preset), root, device=device, progress=progress)
    took = f"{time.perf_counter() - t0:.0f} s on {device}{_peak_memory(device)}"
    text = format_summary(memorization.summarize(root))
    print(text)
    print(f"Diffusion LM: {took}", flush=True)
    lines += [f"## Diffusion LM, preset {preset} ({took})", "", text, ""]
    _draw(figures, "memorization", root, out / "figures")


def run_main_job(
    preset: str,
    out: Path,
    device: str,
    *,
    part: str = "all",
    progress: bool = True,
    max_memory: int | None = None,
    max_memory_text: str | None = None,
    figures: FigureHook | None = None,
) -> Path:
    """Run the main job's ``part`` ("all", "hopfield" or "diffusion") with ``preset`` ("tiny" or "gpu") on
    ``device`` into ``out``, within the working-memory cap ``max_memory`` (bytes; ``max_memory_text`` is how it was
    given, for the summary); returns the path of the ``SUMMARY.md`` it wrote."""
    from amtheory.core import budget

    if part not in ("all", "hopfield", "diffusion"):
        raise ValueError(f"part: expected 'all', 'hopfield' or 'diffusion', got {part!r}")
    cap = max_memory
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# amtheory run: preset {preset}, device {device}", ""]
    if cap is not None:
        lines += [f"Working memory capped at {cap / 2**30:.2f} GiB (--max-memory {max_memory_text}).", ""]
    t0 = time.perf_counter()
    with budget.memory_budget(cap):
        if part in ("all", "hopfield"):
            _run_hopfield(preset, out, device, progress, lines, cap, figures)
        if part in ("all", "diffusion"):
            _run_diffusion(preset, out, device, progress, lines, figures)
    (out / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print(
        f"\nwrote {out}/SUMMARY.md, tables under {out}, figures under {out}/figures ({time.perf_counter() - t0:.0f} s)"
    )
    return out / "SUMMARY.md"
