"""Memorization to generalization on real text: UDDMs and the Hopfield family side by side (Pham et al. 2026).

Run: ``python experiments/memorization.py --preset tiny|gpu|large --out results/memorization [--data DIR]
[--device cuda]`` (``--help`` for every option). The study is :mod:`amtheory.studies.memorization`; this script is
its command line, with the figures of :mod:`paper_figures.memorization`.
"""

from amtheory.studies.memorization.command import main


def make_figures(results: str, folder: str) -> list:
    from paper_figures.memorization import make_figures as draw

    return draw(results, folder)


if __name__ == "__main__":
    main(make_figures=make_figures)
