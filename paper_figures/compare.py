"""Every Hopfield-family backend side by side (the main job's tables).

    python -m paper_figures.compare --results results/main/hopfield --out paper_figures/out

The drawing is ``amtheory.figures.compare.figure``; this script is its command line."""

from __future__ import annotations

from amtheory.figures.compare import figure
from amtheory.figures.style import cli


def main(argv: list[str] | None = None):
    args = cli(__doc__.splitlines()[0], "results/main/hopfield").parse_args(argv)
    paths = figure(args.results, args.out)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
