"""Capacity of dense associative memories against N.

    python -m paper_figures.dense_scaling --results results/dense_scaling --out paper_figures/out

The drawing is ``amtheory.figures.dense_scaling.plot_dense_scaling``; this script is its command line."""

from __future__ import annotations

from amtheory.figures.dense_scaling import plot_dense_scaling
from amtheory.figures.style import cli


def main(argv: list[str] | None = None):
    args = cli(__doc__.splitlines()[0], "results/dense_scaling").parse_args(argv)
    paths = plot_dense_scaling(args.results, args.out)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
