"""Figures of the memorization experiment.

    python -m paper_figures.memorization --results results/memorization --out paper_figures/out

``--results``: a results folder of experiments/memorization.py, or the data folder exported from one
(``experiments/summarize_memorization.py --export``).

The drawing is ``amtheory.figures.memorization.make_figures``; this script is its command line."""

from __future__ import annotations

from amtheory.figures.memorization import make_figures
from amtheory.figures.style import cli


def main(argv: list[str] | None = None):
    args = cli(__doc__.splitlines()[0], "results/memorization").parse_args(argv)
    paths = make_figures(args.results, args.out)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
