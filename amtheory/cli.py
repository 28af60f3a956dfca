"""The ``amtheory`` command.

    amtheory run [--preset auto|tiny|gpu] [--out results/main] [--device auto|cpu|cuda] [--part all|hopfield|diffusion]
                 [--max-memory 40GiB]
    amtheory probe CHECKPOINT [--n 64] [--steps 1000] [--device auto]
    amtheory prepare ...   (= python -m amtheory.diffusion.prepare)
    amtheory train ...     (= python -m amtheory.diffusion.train)

``run`` is the main job: every backend side by side on the embedded default (a tiny preset on a CPU, the GPU
preset when a GPU is present), writing result tables, a summary and figures; finished cells are reused, so a killed
run resumes where it stopped. ``--max-memory`` caps the working memory of the batched computations
(``amtheory.core.budget``; bytes or text such as "40GiB"); the results do not depend on it. On CUDA each part
reports the peak memory PyTorch allocated.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


class UsageError(SystemExit):
    """Exit status 2 (as argparse's own errors), with the message as the exception's text."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _fail(message: str) -> UsageError:
    """Print ``message`` as one line on stderr and return the exception that ends the command with status 2."""
    message = " ".join(str(message).split())
    print(f"amtheory: error: {message}", file=sys.stderr)
    return UsageError(message)


def _version() -> str:
    try:
        return version("amtheory")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _device(arg: str) -> str:
    from amtheory.core._checks import resolve_device

    try:
        return resolve_device("--device", arg)
    except ValueError as e:
        raise _fail(str(e)) from None


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
    preset: str, out: Path, device: str, progress: bool, lines: list[str], max_memory: int | None = None
) -> None:
    import pandas as pd

    from amtheory.studies.hopfield import compare

    t0 = time.perf_counter()
    _reset_peak_memory(device)
    print(f"== Hopfield family side by side (preset {preset}, {device}) ==", flush=True)
    rec, rad = compare.run(preset, out=str(out / "hopfield"), device=device, progress=progress, max_memory=max_memory)
    took = f"{time.perf_counter() - t0:.0f} s on {device}{_peak_memory(device)}"
    print(f"Hopfield family: {took}", flush=True)
    exact, radius = compare.summary_tables(rec, rad)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print("\nmedian basin radius / N (rows: backend, N; columns: load K/N)")
        print(radius.to_string())
        print("\nexact retrieval rate (columns: load, fraction of tokens corrupted)")
        print(exact.to_string())
    lines += [
        f"## Hopfield family, preset {preset} ({took})",
        "",
        "Median basin radius / N (delta = 0.1), rows backend and N, columns load K/N:",
        "",
        radius.to_markdown() if _has_tabulate() else "```\n" + radius.to_string() + "\n```",
        "",
    ]
    try:
        from paper_figures import compare as fig

        for p in fig.figure(out / "hopfield", out / "figures"):
            print("figure:", p)
    except ImportError as e:  # the plot extra is optional
        print(f"(figures skipped: {e})")


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
    "- meet: the first training size from which delta stays within two standard errors at every larger size; "
    "'not in range' when it still differs at the largest.",
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
#: Standard errors a difference must exceed to be called one (``amtheory.studies.memorization.rates.Z_MEET``).
MEET_Z = 2.0


def _pm(v: float | None, se: float | None, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    se_s = "?" if se is None or not math.isfinite(se) else f"{se:.{digits}f}"
    return f"{v:.{digits}f} ± {se_s}"


def _verdicts(ms: str, summary: dict) -> list[str]:
    """Plain statements of what the run shows for model size ``ms``: memorization at the smallest size, agreement
    at the largest, and where the curves meet."""
    rec = summary.get("recovery", {}).get(ms, {})
    if not rec:
        return []
    sizes = sorted({n for rows in rec.values() for n in rows})
    lo, hi = sizes[0], sizes[-1]
    out = []
    worst = min((rows[lo]["train"], t) for t, rows in rec.items() if lo in rows)
    ent = summary.get("entropy", {}).get(ms, {}).get("smallest", {})
    h = ent.get("train")
    mem = worst[0] >= MEMORIZED_RECOVERY and h is not None and h < MEMORIZED_ENTROPY
    out.append(
        f"- At {lo} blocks the model {'memorizes' if mem else 'does not memorize'} its training blocks by the "
        f"criteria training recovery >= {MEMORIZED_RECOVERY} at every t (lowest: {worst[0]:.2f} at t={worst[1]:g}) "
        f"and training entropy < {MEMORIZED_ENTROPY} nats ({'–' if h is None else f'{h:.3f}'})."
    )
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
        and rows[hi]["test"] - rows[lo]["test"] > MEET_Z * math.hypot(rows[hi]["test_se"], rows[lo]["test_se"])
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
    return "\n".join(lines)


def _run_diffusion(preset: str, out: Path, device: str, progress: bool, lines: list[str]) -> None:
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
    try:
        from paper_figures import memorization as fig

        for p in fig.make_figures(root, out / "figures"):
            print("figure:", p)
    except ImportError as e:
        print(f"(figures skipped: {e})")


def cmd_run(args: argparse.Namespace) -> None:
    from amtheory.core import budget

    device = _device(args.device)
    try:
        cap = None if args.max_memory is None else budget.parse_bytes("--max-memory", args.max_memory)
    except (TypeError, ValueError) as e:
        raise _fail(str(e)) from None
    preset = args.preset if args.preset != "auto" else ("gpu" if device.startswith("cuda") else "tiny")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# amtheory run: preset {preset}, device {device}", ""]
    if cap is not None:
        lines += [f"Working memory capped at {cap / 2**30:.2f} GiB (--max-memory {args.max_memory}).", ""]
    t0 = time.perf_counter()
    with budget.memory_budget(cap):
        if args.part in ("all", "hopfield"):
            _run_hopfield(preset, out, device, not args.no_progress, lines, cap)
        if args.part in ("all", "diffusion"):
            _run_diffusion(preset, out, device, not args.no_progress, lines)
    (out / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print(
        f"\nwrote {out}/SUMMARY.md, tables under {out}, figures under {out}/figures ({time.perf_counter() - t0:.0f} s)"
    )


def cmd_probe(args: argparse.Namespace) -> None:
    from amtheory.diffusion.probe import probe_checkpoint

    device = _device(args.device)
    try:
        report = probe_checkpoint(args.checkpoint, n=args.n, n_steps=args.steps, device=device, seed=args.seed)
    except (ValueError, OSError) as e:
        # A bad checkpoint or a model with non-finite outputs: one line and a non-zero exit status, no report.
        raise SystemExit(f"amtheory probe: {' '.join(str(e).split())}") from None
    print(report.text)


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default ``sys.argv``) and run the subcommand. A user error (a bad value, a missing file) ends
    the process with one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from amtheory.diffusion.train import main as train_main

        train_main(argv[1:])
        return
    if argv and argv[0] == "prepare":
        import runpy

        sys.argv = [f"amtheory {argv[0]}", *argv[1:]]
        runpy.run_module("amtheory.diffusion.prepare", run_name="__main__")
        return
    fmt = argparse.ArgumentDefaultsHelpFormatter
    ap = argparse.ArgumentParser(prog="amtheory", description="Associative memories side by side.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run", help="the main job: every backend side by side on the embedded default", formatter_class=fmt
    )
    r.add_argument("--preset", choices=("auto", "tiny", "gpu"), default="auto", help="grid size (auto: gpu on CUDA)")
    r.add_argument("--out", default="results/main", help="results folder (tables, SUMMARY.md, figures)")
    r.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda[:i]")
    r.add_argument("--part", choices=("all", "hopfield", "diffusion"), default="all", help="which part to run")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument(
        "--max-memory",
        default=None,
        help="cap on the working memory of the batched computations, in bytes or as text such as 40GiB or 80GB "
        "(None: half the device memory still free at each call on CUDA, 1 GiB per call on a CPU)",
    )
    r.set_defaults(fn=cmd_run)
    p = sub.add_parser(
        "probe", help="conditional entropy of a trained diffusion LM on its own samples", formatter_class=fmt
    )
    p.add_argument("checkpoint", help="checkpoint file or run folder")
    p.add_argument("--n", type=int, default=64, help="sequences to generate")
    p.add_argument("--steps", type=int, default=1000, help="reverse steps of generation")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda[:i]")
    p.add_argument("--seed", type=int, default=0, help="seed of the generation")
    p.set_defaults(fn=cmd_probe)
    sub.add_parser("prepare", help="build the Brown + State of the Union token corpus (see --help there)")
    sub.add_parser("train", help="train a diffusion LM (see --help there)")
    args = ap.parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise _fail(str(e)) from None


if __name__ == "__main__":
    main()
