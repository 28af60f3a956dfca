"""Command line of the memorization study: parse the options, run the sweep, draw the figures, print the summary.

Every option has its help and default in :func:`command_parser`; :func:`run_command` runs what they describe. The
figures come from a function the caller hands in (``make_figures(results, folder)``), as they are drawn by a layer
above the studies.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from amtheory.studies.memorization.cells import MEASURES
from amtheory.studies.memorization.presets import PRESET_NAMES

#: ``make_figures(results_folder, figures_folder)`` -> the files written.
FigureMaker = Callable[[str, str], list]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose every user error (unknown option included) raises ``argparse.ArgumentError`` when
    ``exit_on_error`` is False."""

    def error(self, message: str):  # type: ignore[override]
        if self.exit_on_error:
            super().error(message)
        raise argparse.ArgumentError(None, message)


def command_parser(prog: str | None = None, exit_on_error: bool = True) -> argparse.ArgumentParser:
    """The options of the study, each with its help and default."""
    p = _Parser(
        prog=prog,
        description="Memorization to generalization on real text: UDDMs and the Hopfield family side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        exit_on_error=exit_on_error,
    )
    p.add_argument("--preset", choices=PRESET_NAMES, default="tiny", help="grid size and time budget")
    p.add_argument("--out", default="results/memorization", help="results folder (tables, checkpoints)")
    p.add_argument("--data", default=None, help="prepared corpus folder (None: the preset's)")
    p.add_argument("--device", default=None, help="cpu or cuda (None: cuda when available)")
    p.add_argument("--steps", type=int, default=None, help="training steps of every model (None: the preset's)")
    p.add_argument("--sizes", default=None, help="training sizes, e.g. 32,512,8192 (None: the preset's)")
    p.add_argument("--seeds", default=None, help="training seeds, e.g. 0,1,2 (None: the preset's)")
    p.add_argument("--budgets", default=None, help="step multipliers, e.g. 1,4 (None: the preset's)")
    p.add_argument("--lr", default=None, help="peak learning rate of every model, e.g. 3e-3 (None: the preset's)")
    p.add_argument("--batch-size", default=None, help="training blocks a step, e.g. 128 (None: the preset's)")
    p.add_argument("--precision", default=None, help="training precision, fp32 or bf16 (None: the preset's)")
    p.add_argument(
        "--models",
        default=None,
        help="the preset's model sizes to run, e.g. gpu-small,gpu-quick, or 'none' (None: all; a part of the sweep, "
        "for one job of several; 'none' runs the Hopfield family alone)",
    )
    p.add_argument(
        "--hopfield",
        default=None,
        help="the Hopfield-family backends to run beside the models, e.g. empirical,modern, or 'none' "
        "(None: the preset's; 'none' for a part of a sweep whose Hopfield cells another part runs)",
    )
    p.add_argument(
        "--measures",
        default=None,
        help="the measurements to run, e.g. recovery (None: all; recovery alone is a quick probe of memorization)",
    )
    p.add_argument(
        "--short-budget-measures",
        default=None,
        help="the measurements of the models of the shorter step budgets, e.g. recovery,nelbo, or 'all' (None: the "
        "preset's; the longest budget gets every measurement)",
    )
    p.add_argument(
        "--measure-lock",
        default=None,
        help="a file held locked while the models, trained in groups, are measured (their groups, then the Hopfield "
        "family), so that runs sharing one GPU measure one at a time (None: no lock)",
    )
    p.add_argument("--workers", default=None, help="None (this process), 'auto' (one process per GPU) or an int")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: torch's own)")
    p.add_argument("--figures", default="paper_figures/out", help="folder for the figures ('' to skip them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _int_list(option: str, text: str | None, example: str, minimum: int) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise ValueError(f"{option}: expected a comma list of ints such as {example}, got {text!r}") from None
    if not values or min(values) < minimum:
        raise ValueError(f"{option}: expected ints >= {minimum}, got {text!r}")
    return values


def _training(lr: str | None, batch_size: str | None, precision: str | None = None) -> dict[str, float | int | bool]:
    """The preset fields ``--lr``, ``--batch-size`` and ``--precision`` set (only those given)."""
    import math

    def parsed(option: str, text: str, convert, ok, expected: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise ValueError(f"{option}: expected {expected}, got {text!r}")
        return value

    out: dict[str, float | int | bool] = {}
    if lr is not None:
        out["lr"] = parsed("--lr", lr, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
    if batch_size is not None:
        out["batch_size"] = parsed("--batch-size", batch_size, int, lambda v: v >= 1, "an int >= 1")
    if precision is not None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"--precision: expected 'fp32' or 'bf16', got {precision!r}")
        out["bf16"] = precision == "bf16"
    return out


def _sizes(text: str | None) -> tuple[int, ...] | None:
    return _int_list("--sizes", text, "32,512,8192", 1)


def _names(option: str, text: str, known: list[str], what: str, *, none: bool = False) -> set[str]:
    """The names in the comma list ``text``, each one of ``known`` (the preset's ``what``); with ``none``, the
    text "none" names none of them."""
    if none and text == "none":
        return set()
    names = text.split(",")
    if not all(names) or any(n not in known for n in names):
        either = "'none' or " if none else ""
        raise ValueError(f"{option}: expected {either}a comma list of the preset's {what} {known}, got {text!r}")
    return set(names)


def _workers(text: str | None) -> int | str | None:
    if text is None or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--workers: expected 'auto' or an int, got {text!r}") from None


def format_report(summary: dict) -> str:
    """The summary's recovery, entropy and perplexity figures as plain text."""
    none = "" if summary["recovery"] else " no model in this run"
    lines = [f"recovery of corrupted tokens, train / test (UDDM):{none}"]
    for ms, by_t in summary["recovery"].items():
        for t, by_n in by_t.items():
            cells = "  ".join(f"{n}: {v['train']:.2f}/{v['test']:.2f}" for n, v in by_n.items())
            meet = summary["meeting"][ms].get(t)
            meet_s = f"{meet:.0f}" if meet is not None else "not within the sweep"
            lines.append(f"  {ms} t={t}: {cells}   meet at {meet_s}")
    for ms, e in summary["entropy"].items():
        parts = []
        for k in ("smallest", "largest"):
            v = e[k]
            fmt = {s: ("nan" if v.get(s) is None else f"{v[s]:.3f}") for s in ("train", "test", "generated")}
            parts.append(f"{k} n={v['train_size']}: train {fmt['train']}, test {fmt['test']}, gen {fmt['generated']}")
        lines.append(f"  entropy {ms}: " + "; ".join(parts))
    for ms, pk in summary["perplexity_peak"].items():
        lines.append(f"  test perplexity bound {ms}: peak {pk['perplexity_bound']:.1f} at {pk['train_size']} blocks")
    return "\n".join(lines)


def run_command(args: argparse.Namespace, make_figures: FigureMaker | None = None) -> dict:
    """Run the sweep the parsed options describe, draw its figures with ``make_figures`` (when given and
    ``--figures`` is not empty), write ``summary.json`` in the results folder, print the summary and return it."""
    from amtheory.core._checks import resolve_device
    from amtheory.studies.memorization import run_experiment, summarize
    from amtheory.studies.memorization.presets import preset

    device = resolve_device("--device", args.device)
    sizes, workers = _sizes(args.sizes), _workers(args.workers)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    pr = preset(args.preset, data=args.data, steps=args.steps, sizes=sizes)
    seeds, budgets = _int_list("--seeds", args.seeds, "0,1,2", 0), _int_list("--budgets", args.budgets, "1,4", 1)
    if seeds is not None or budgets is not None:
        pr = dataclasses.replace(pr, seeds=seeds or pr.seeds, budgets=budgets or pr.budgets)
    pr = dataclasses.replace(pr, **_training(args.lr, args.batch_size, args.precision))
    if args.measures is not None:
        names = _names("--measures", args.measures, list(MEASURES), "measurements")
        pr = dataclasses.replace(pr, measures=tuple(m for m in MEASURES if m in names))
    if args.short_budget_measures is not None:
        short = None  # "all": every measurement at every budget
        if args.short_budget_measures != "all":
            names = _names("--short-budget-measures", args.short_budget_measures, list(MEASURES), "measurements")
            short = tuple(m for m in MEASURES if m in names)
        pr = dataclasses.replace(pr, short_budget_measures=short)
    if args.models is not None:
        names = _names("--models", args.models, [a.name for a in pr.archs], "model sizes", none=True)
        pr = dataclasses.replace(pr, archs=tuple(a for a in pr.archs if a.name in names))
    if args.hopfield is not None:
        names = _names("--hopfield", args.hopfield, list(pr.backends), "backends", none=True)
        pr = dataclasses.replace(pr, backends=tuple(b for b in pr.backends if b in names))
    t0 = time.perf_counter()
    print(f"[memorization] preset {pr.name} on {device}: {len(pr.train_cells())} models, sizes {pr.sizes}", flush=True)
    run_experiment(pr, args.out, device=device, progress=not args.no_progress, workers=workers,
                   measure_lock=args.measure_lock)  # fmt: skip
    if args.figures and make_figures is not None:
        t1 = time.perf_counter()
        paths = make_figures(args.out, args.figures)
        print(f"[memorization] figures: {time.perf_counter() - t1:.1f} s, {len(paths)} files in {args.figures}")
    summary = summarize(args.out)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(format_report(summary))
    print(f"[memorization] total {time.perf_counter() - t0:.1f} s; tables in {os.path.abspath(args.out)}")
    return summary


def main(argv: list[str] | None = None, make_figures: FigureMaker | None = None) -> dict:
    return run_command(command_parser().parse_args(argv), make_figures)
