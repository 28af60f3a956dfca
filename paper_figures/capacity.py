"""Capacity curves of classical Hopfield networks.

    python -m paper_figures.capacity --results results/capacity --out paper_figures/out

The drawing is ``amtheory.figures.capacity.plot_capacity``; this script is its command line."""

from __future__ import annotations

from amtheory.figures.capacity import plot_capacity
from amtheory.figures.style import cli


def main(argv: list[str] | None = None):
    args = cli(__doc__.splitlines()[0], "results/capacity").parse_args(argv)
    paths = plot_capacity(args.results, args.out)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
