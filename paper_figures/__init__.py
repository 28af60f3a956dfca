"""The paper's figure scripts: each a few lines over ``amtheory.figures``, which draws every figure from result
tables (``amtheory figures <name>`` does the same without this folder). One command per figure, e.g.
``python -m paper_figures.capacity --results results/capacity --out paper_figures/out``."""
