"""The ``amtheory`` command.

    amtheory run [--preset auto|tiny|gpu] [--out results/main] [--device auto|cpu|cuda] [--part all|hopfield|diffusion]
                 [--max-memory 40GiB]
    amtheory probe CHECKPOINT [--n 64] [--steps 1000] [--device auto]
    amtheory sweep capacity|basins-vs-load|dense-scaling|memorization [options]   (amtheory sweep NAME --help)
    amtheory figures NAME [--results FOLDER] [--out figures]
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
import sys
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


def _paper_figures(part: str, tables: Path, dest: Path) -> list[Path]:
    """The main job's figure hook: the paper figures of ``part`` drawn from the tables in ``tables``."""
    if part == "hopfield":
        from amtheory.figures import compare as fig

        return fig.figure(tables, dest)
    from amtheory.figures import memorization as fig

    return fig.make_figures(tables, dest)


def cmd_run(args: argparse.Namespace) -> None:
    from amtheory.core import budget
    from amtheory.studies.main_job import run_main_job

    device = _device(args.device)
    try:
        cap = None if args.max_memory is None else budget.parse_bytes("--max-memory", args.max_memory)
    except (TypeError, ValueError) as e:
        raise _fail(str(e)) from None
    preset = args.preset if args.preset != "auto" else ("gpu" if device.startswith("cuda") else "tiny")
    run_main_job(
        preset,
        Path(args.out),
        device,
        part=args.part,
        progress=not args.no_progress,
        max_memory=cap,
        max_memory_text=args.max_memory,
        figures=_paper_figures,
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


#: ``amtheory sweep NAME``: the studies whose sweep the subcommand runs.
SWEEPS = ("capacity", "basins-vs-load", "dense-scaling", "memorization")


def _memorization_figures(results: str, folder: str) -> list:
    try:
        from amtheory.figures.memorization import make_figures
    except ImportError as e:  # the plot extra is optional
        print(f"(figures skipped: {e})")
        return []
    return make_figures(results, folder)


def cmd_sweep(args: argparse.Namespace) -> None:
    """Parse the study's own options (one definition, shared with its script) and run its sweep."""
    import re

    from amtheory.studies.hopfield import basins_vs_load, capacity, dense_scaling
    from amtheory.studies.memorization import command as memorization

    studies = dict(zip(SWEEPS, (capacity, basins_vs_load, dense_scaling, memorization)))
    if args.study not in studies:
        raise _fail(f"sweep: expected a study among {', '.join(SWEEPS)}, got {args.study!r}")
    prog = f"amtheory sweep {args.study}"
    try:
        options = studies[args.study].command_parser(prog=prog, exit_on_error=False).parse_args(args.options)
    except argparse.ArgumentError as e:
        message = re.sub(r'Parser key "([^"]+)"', r"--\1", str(e))  # name the option as typed
        raise _fail(f"{prog}: {message}") from None
    extra = {"make_figures": _memorization_figures} if args.study == "memorization" else {}
    studies[args.study].run_command(options, **extra)


def cmd_figures(args: argparse.Namespace) -> None:
    from amtheory.figures import draw

    try:
        paths = draw(args.name, args.results, args.out)
    except ImportError as e:
        raise _fail(f"figures need matplotlib and seaborn (pip install 'amtheory[plot]'): {e}") from None
    for p in paths:
        print(p)


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
    w = sub.add_parser("sweep", help="run one study's sweep (amtheory sweep NAME --help)", formatter_class=fmt)
    w.add_argument("study", metavar="{" + ",".join(SWEEPS) + "}", help="the study")
    w.add_argument("options", nargs=argparse.REMAINDER, help="the study's options (see amtheory sweep NAME --help)")
    w.set_defaults(fn=cmd_sweep)
    from amtheory.figures import FIGURES

    f = sub.add_parser(
        "figures", help="draw a figure (PDF and PNG) from a results folder", formatter_class=fmt,
        description="Draw a figure from a results folder: "
        + "; ".join(f"{k}: {v.help} (reads {v.results})" for k, v in FIGURES.items()),
    )  # fmt: skip
    f.add_argument("name", choices=tuple(FIGURES), help="which figure")
    f.add_argument("--results", default=None, help="results folder (None: the figure's own, e.g. results/capacity)")
    f.add_argument("--out", default="figures", help="folder for the PDF and PNG files")
    f.set_defaults(fn=cmd_figures)
    sub.add_parser("prepare", help="build a token corpus folder: Brown + State of the Union, or your own --text files")
    sub.add_parser("train", help="train a diffusion LM (see --help there)")
    args = ap.parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise _fail(str(e)) from None


if __name__ == "__main__":
    main()
