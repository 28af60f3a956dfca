"""Basin radius against load for every backend.

    python -m paper_figures.basins --results results/basins_vs_load --out paper_figures/out

The drawing is ``amtheory.figures.basins.plot_basins``; this script is its command line."""

from __future__ import annotations

from amtheory.figures.basins import plot_basins
from amtheory.figures.style import cli


def main(argv: list[str] | None = None):
    args = cli(__doc__.splitlines()[0], "results/basins_vs_load").parse_args(argv)
    paths = plot_basins(args.results, args.out)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
