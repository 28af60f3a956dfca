"""From memorization to generalization on real text: uniform-diffusion LMs and the Hopfield family side by side.

The experiment of Pham, Zaki, Ambrogioni, Krotov and Negri (2026, "Language Diffusion Models are Associative
Memories Capable of Retrieving Unseen Data", arXiv 2604.26841) on Brown + State of the Union: UDDMs of a few sizes
are trained for the same number of steps on nested training sets of packed token blocks whose size grows
log-spaced. Each trained model is then measured on its own training blocks, on held-out test blocks and on random
blocks; the training recovery of corrupted tokens falls and the test recovery rises with the training-set size
until the two meet (the memorization-to-generalization transition).

Cells (frozen dataclasses in ``amtheory.studies.memorization.cells``, re-exported here; every stage goes through
``amtheory.core.sweep.run_sweep``, so finished cells are skipped, a killed run is resumed by running it again, and
every table is tidy parquet, one file per cell):

* ``TrainCell`` — one UDDM: data (``DataSpec``: corpus, block length, vocabulary compaction), architecture
  (``ModelSpec``), training-set size, steps, batch, learning rate, seed. Its checkpoint goes to
  ``out/checkpoints/<cell key>/``; an interrupted training resumes from its newest checkpoint. Table ``out/train``.
  Cells that differ only in ``steps`` (the step budgets) train once: on one device the shorter ones are read off
  the longest run at their steps (``amtheory.studies.memorization.budgets``).
* ``EvalCell`` — one measurement (``measure``) of one trained model (``train``) with ``EvalSettings``; the
  measurements and their tables are described in ``amtheory.studies.memorization.evaluation``.
* ``HopfieldCell`` — a Hopfield-family memory storing the same training blocks (``memory`` in ``empirical``,
  ``dense_exp``, ``modern``, ``classical``), measured on the same sequences with the same corruptions; its rows go
  into the same ``recovery`` and ``basins`` tables as the UDDM's (column ``backend``).

Every evaluation table carries the columns ``backend`` ("uddm", "empirical", "dense_exp", "modern",
"classical"), ``model_size`` (the UDDM's architecture name; "" for the Hopfield family, whose result does not
depend on it) and ``train_size`` (training blocks seen or stored).

The Hopfield family on text (what each backend materialises, and the choices made for it):

* ``EmpiricalDenoiser`` — the exact posterior of a denoiser that memorized the training blocks (the memorization
  limit: it can only return training sequences). It keeps the token ids and their one-hot indicator as a sparse
  ``[K, L V]`` matrix; one reverse step builds ``[B, K]`` agreements and weights and ``[B, L, V]`` float64
  posteriors (the weights summed by token in one sparse product). It runs the very dynamics of the UDDM (the
  reverse chain, with its own step count ``EvalSettings.empirical_steps``, because each step costs O(B L K)).
* ``DenseAM("exp")`` — the categorical exponential dense memory ``E = -log sum_mu exp(beta m_mu)`` over agreement
  counts (the memorizing denoiser's energy at a fixed inverse temperature). Its scores sum ``[B, K]`` float64
  weights by token into ``[B, L, V]`` with the same sparse indicator, queries in chunks of
  ``EvalSettings.hopfield_batch``; no dense one-hot embedding is formed, any V works.
  Deterministic synchronous updates to a fixed point (at most ``hopfield_max_iter`` steps).
* ``ModernHopfield`` — Ramsauer et al.'s continuous network on one-hot tokens: it stores ``X`` of shape
  ``[K, L V]`` float32, ``4 K L V`` bytes (K = 2048 blocks of 64 tokens at V = 8192: 4.3 GB). It is run only
  where that is at most ``EvalSettings.modern_max_bytes``; above it the cell records "not applicable" with the
  size it would need. That is why every preset compacts the vocabulary (top-M ids plus ``[UNK]``).
* ``ClassicalHopfield`` (Hebbian, Potts coding) — its features have dimension ``L V``; the weight form holds
  ``(L V)^2`` couplings and the pattern form ``K L V`` features. On text blocks ``L V`` is tens of thousands or
  more (L = 32, V = 2048: 65,536, a 17 GB weight matrix), far past anything useful, so it applies only when
  ``L V <= EvalSettings.classical_max_features`` (default 4096); otherwise the cell records "not applicable"
  and the reason. None of the presets meets the condition: pairwise couplings on one-hot text are not a
  practical memory for this task, which is itself a result of the comparison.

The named sweeps (``tiny``, ``gpu``, ``large``, ``paper``) are in ``amtheory.studies.memorization.presets``; a
run on one device goes model by model (:func:`run_model`), ``experiments/slurm_memorization.py`` sends the same models
to a Slurm job array (``amtheory.studies.memorization.slurm``).

``summarize(results_dir)`` gives the numbers of a results page: every UDDM recovery rate (over ordinary tokens,
pooled over blocks) with its standard error and Wilson interval, for each model size the training-set size from
which training recovery exceeds test recovery by at most two standard errors (per t;
``amtheory.studies.memorization.rates``),
the conditional entropy at the smallest and largest sizes, and where the test perplexity bound peaks.
The results page and the figures use the same rule.

The results page and the figures are computed from a small data folder rather than the results folder:
``export.export_results(results, data)`` reduces a results folder to six per-cell summary tables (recovery rates as
sufficient statistics, means over blocks, basin radii, the reverse trajectory, the run's settings), which
``summary.read_data`` reads back; ``claims`` and ``meetings`` judge the paper's claims from them.
"""

from __future__ import annotations

from amtheory.studies.memorization.analysis import (
    longest_shared_span,
    recovery_summary,
    summarize,
)
from amtheory.studies.memorization.cells import (
    BACKENDS,
    MEASURES,
    DataSpec,
    EvalCell,
    EvalSettings,
    HopfieldCell,
    ModelSpec,
    Preset,
    TrainCell,
)
from amtheory.studies.memorization.data import embedded_corpus_path, eval_sequences, load_data
from amtheory.studies.memorization.run import run_experiment, run_model
from amtheory.studies.memorization.training import checkpoint_dir, train_cell

__all__ = [
    "BACKENDS",
    "MEASURES",
    "DataSpec",
    "EvalCell",
    "EvalSettings",
    "HopfieldCell",
    "ModelSpec",
    "Preset",
    "TrainCell",
    "checkpoint_dir",
    "embedded_corpus_path",
    "eval_sequences",
    "load_data",
    "longest_shared_span",
    "recovery_summary",
    "run_experiment",
    "run_model",
    "summarize",
    "train_cell",
]
