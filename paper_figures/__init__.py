"""Figures of the paper, each drawn only from result tables (folders of per-cell parquet files written by
``amtheory.core.sweep.run_sweep``). One command per figure, e.g.
``python -m paper_figures.capacity --results results/capacity --out paper_figures/out``."""
