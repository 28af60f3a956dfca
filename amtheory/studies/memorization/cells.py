"""The cells of the memorization experiment (:mod:`amtheory.studies.memorization`): what one UDDM to train, one
measurement of it, and one Hopfield-family memory beside it are, as frozen dataclasses, with the data, model and
evaluation settings they share and the named collection of them that a sweep runs (``Preset``). A cell's
identity (its key in the sweep's results) is its type name and field values, so the cells can live in this module
and still find the results written when they were defined in :mod:`amtheory.studies.memorization`, which
re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amtheory.core._checks import check_choice, check_float, check_int

__all__ = [
    "BACKENDS",
    "BATCHED_MEASURES",
    "MEASURES",
    "SPLITS",
    "DataSpec",
    "EvalCell",
    "EvalSettings",
    "HopfieldCell",
    "ModelSpec",
    "Preset",
    "TrainCell",
]

#: Evaluation tables, one folder each under the results folder.
MEASURES = ("recovery", "basins", "fixed_points", "generation", "nelbo", "kl", "trajectory")
#: The measurements whose work a group of models measured together runs batched over its members
#: (``amtheory.studies.memorization.group_evaluation``); each member's outcome reaches its cell as ``chains``.
BATCHED_MEASURES = ("recovery", "fixed_points", "generation", "nelbo", "trajectory")
#: Hopfield-family backends put beside the UDDM, by the names its tables and cell keys use: each is a registered
#: backend name or alias (``amtheory.core.registry``: "dense_exp" is "exp", "classical" is "hebbian"), which
#: gives its label and colour; the names stay as they are because a cell's key, and so its cached table, holds them.
BACKENDS = ("empirical", "dense_exp", "modern", "classical")
#: Splits every model is measured on.
SPLITS = ("train", "test", "random")


# ---------------------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """Where the blocks come from: ``source`` ("embedded" or a prepared corpus folder), packed blocks of
    ``length`` tokens (``[CLS]`` + ``length - 2`` stream tokens + ``[SEP]``), and ``vocab``: the compacted
    vocabulary size (the ``vocab - 5`` most frequent ordinary ids plus the 5 special tokens, all other ids become
    ``[UNK]``), or None for the full bert-base-uncased ids."""

    source: str = "embedded"
    length: int = 32
    vocab: int | None = 2048

    def __post_init__(self):
        if not isinstance(self.source, str) or not self.source:
            raise TypeError(f"source: expected 'embedded' or a corpus folder path, got {self.source!r}")
        check_int("length", self.length, minimum=3)
        if self.vocab is not None:
            check_int("vocab", self.vocab, minimum=6)


@dataclass(frozen=True)
class ModelSpec:
    """A DiT architecture with a name (the ``model_size`` column); ``ModelSpec.preset`` reads
    ``amtheory.diffusion.model.PRESETS``."""

    name: str
    d_model: int
    n_blocks: int
    n_heads: int
    cond_dim: int = 128
    dropout: float = 0.1

    @staticmethod
    def preset(name: str, **overrides: Any) -> ModelSpec:
        """The DiT preset ``name`` (e.g. "cpu-micro", "gpu-quick", "tiny"), with field overrides."""
        from amtheory.diffusion.model import PRESETS

        if name not in PRESETS:
            raise ValueError(f"name: expected one of {tuple(PRESETS)}, got {name!r}")
        return ModelSpec(name=name, **{**PRESETS[name], **overrides})

    def config(self, vocab_size: int, length: int):
        """The ``DiTConfig`` for a vocabulary and block length."""
        from amtheory.diffusion.model import DiTConfig

        return DiTConfig(
            vocab_size=vocab_size,
            length=length,
            d_model=self.d_model,
            n_blocks=self.n_blocks,
            n_heads=self.n_heads,
            cond_dim=self.cond_dim,
            dropout=self.dropout,
        )


@dataclass(frozen=True)
class TrainCell:
    """One UDDM: ``arch`` trained on the first ``n_train`` training blocks of ``data`` for ``steps`` optimizer
    steps of ``batch_size`` blocks (drawn with replacement; the same steps at every size)."""

    data: DataSpec
    arch: ModelSpec
    n_train: int
    steps: int
    batch_size: int
    lr: float = 3e-4
    warmup: int = 100
    ema: float = 0.9999
    seed: int = 0
    bf16: bool = True
    compile: bool = False
    chunk_rows: int = 2048

    def __post_init__(self):
        check_int("n_train", self.n_train, minimum=1)
        check_int("steps", self.steps, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_float("lr", self.lr, minimum=0.0, strict_min=True)


@dataclass(frozen=True)
class EvalSettings:
    """How a model is measured (see ``amtheory.studies.memorization.evaluation`` for each measurement).

    ``n_eval`` sequences per split (training: the first ``n_eval`` training blocks); recovery at the noise levels
    ``ts`` with ancestral reverse sampling on the global ``n_steps`` grid and the posterior final step; basin radius
    of ``n_basin`` blocks per split from ``basin_trials`` exact-count corruptions per level, tolerance
    ``basin_delta``, under argmax reverse dynamics on a local ``basin_steps`` grid that start at ``basin_t_start``
    (None: at the time matched to each query's corruption, ``amtheory.diffusion.schedule.time_for_changed_fraction``);
    the fixed-point test on the ``n_steps`` grid; ``n_generate`` samples for entropy (at ``entropy_t``) and
    extraction; the test NELBO from ``nelbo_ts`` stratified times per sequence; the KL from the empirical
    denoiser at ``kl_ts``. The Hopfield family: ``empirical_steps`` reverse-grid steps, ``hopfield_max_iter``
    synchronous steps, inverse temperatures ``dense_beta`` and ``modern_beta``, ``hopfield_batch`` queries per
    call, and the applicability limits ``modern_max_bytes`` and ``classical_max_features``. ``fill_train``: a
    training set of fewer than ``n_eval`` blocks still gives ``n_eval`` recovery queries, its blocks in turn, each
    with its own corruption (the standard errors cluster by block), so that the smallest sets' rates are as
    precise as the others'.
    """

    n_eval: int = 8
    ts: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    n_steps: int = 50
    n_basin: int = 4
    basin_trials: int = 4
    basin_delta: float = 0.25
    basin_t_start: float | None = None
    basin_steps: int = 5
    n_generate: int = 8
    entropy_t: float = 1e-5
    nelbo_ts: int = 4
    kl_ts: tuple[float, ...] = (0.1, 0.5)
    batch_size: int = 256
    empirical_steps: int = 50
    hopfield_max_iter: int = 20
    dense_beta: float = 1.0
    modern_beta: float = 1.0
    hopfield_batch: int = 64
    modern_max_bytes: int = 2**30
    classical_max_features: int = 4096
    fill_train: bool = False

    def __post_init__(self):
        if not isinstance(self.fill_train, bool):
            raise TypeError(f"fill_train: expected a bool, got {type(self.fill_train).__name__}")
        for name in ("n_eval", "n_steps", "n_basin", "basin_trials", "basin_steps", "n_generate", "nelbo_ts"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("empirical_steps", "hopfield_max_iter", "batch_size", "hopfield_batch"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("ts", "kl_ts"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not v:
                raise TypeError(f"{name}: expected a non-empty tuple of times in (0, 1], got {v!r}")
            for t in v:
                check_float(name, t, minimum=0.0, maximum=1.0, strict_min=True)
        if self.basin_t_start is not None:
            check_float("basin_t_start", self.basin_t_start, minimum=0.0, maximum=1.0, strict_min=True)
        check_float("entropy_t", self.entropy_t, minimum=0.0, maximum=1.0, strict_min=True)
        check_float("basin_delta", self.basin_delta, minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)


@dataclass(frozen=True)
class EvalCell:
    """One measurement (``measure``, one of ``MEASURES``) of the model that ``train`` produced."""

    train: TrainCell
    measure: str
    settings: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self):
        check_choice("measure", self.measure, MEASURES)


@dataclass(frozen=True)
class HopfieldCell:
    """A Hopfield-family ``memory`` (one of ``BACKENDS``) storing the first ``n_stored`` training blocks of
    ``data``; ``measure`` is "recovery" or "basins"."""

    memory: str
    data: DataSpec
    n_stored: int
    measure: str
    settings: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self):
        check_choice("memory", self.memory, BACKENDS)
        check_choice("measure", self.measure, ("recovery", "basins"))
        check_int("n_stored", self.n_stored, minimum=1)


# ---------------------------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------------------------
def _check_measure_names(name: str, names: object, *, optional: bool = False) -> None:
    """``names`` must be a non-empty tuple of distinct names from ``MEASURES`` (or None, where ``optional``)."""
    if optional and names is None:
        return
    if (
        not isinstance(names, tuple)
        or not names
        or len(set(names)) != len(names)
        or any(x not in MEASURES for x in names)
    ):
        either = "None or " if optional else ""
        raise ValueError(f"{name}: expected {either}a non-empty tuple of distinct names from {MEASURES}, got {names!r}")


def _check_distinct_ints(name: str, values: object, what: str, *, minimum: int) -> None:
    """``values``: a non-empty tuple of distinct ints >= ``minimum`` (``what`` they are, for the message)."""
    if not isinstance(values, tuple):
        raise TypeError(f"{name}: expected a tuple of distinct ints >= {minimum}, got {type(values).__name__}")
    if not values:
        raise ValueError(f"{name}: expected at least one of the {what}, got an empty tuple")
    for v in values:
        check_int(name, v, minimum=minimum)
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: expected distinct {what}, got {values}")


@dataclass(frozen=True)
class Preset:
    """A whole sweep: the training cells (model sizes x step budgets x training sizes x training seeds ``seeds``;
    budget ``b`` trains for ``b * steps`` steps, so the ``train.steps`` column names the budget; on one device a
    model's budgets train as one run, the shorter read off the longest, ``amtheory.studies.memorization.budgets``),
    the evaluation
    settings, which Hopfield backends to run, the runner's worker setting, ``train_group``: on one device, how
    many models of one shape train together as one group (1: one at a time; the same checkpoints and tables either
    way), and ``eval_group``: how many trained models of one shape are measured together in lockstep
    (``amtheory.studies.memorization.group_evaluation``; 1: one at a time; the same tables either way).
    ``measures``: which of ``MEASURES`` to run (all by default; "recovery" alone makes a quick probe of which
    budget memorizes); each one's tables are those of the full run. ``short_budget_measures``: which of them the
    models of the shorter step budgets get (None: all of ``measures``); the longest budget gets every one of
    ``measures``. A sweep that compares budgets by their meeting points needs only "recovery" there.
    ``compile``: the models' blocks under ``torch.compile``, in training and in the measured groups' recovery
    chains (``eval_group`` > 1; ``group_evaluation.COMPILED_MEASURES``)."""

    name: str
    data: DataSpec
    archs: tuple[ModelSpec, ...]
    sizes: tuple[int, ...]
    steps: int
    batch_size: int
    lr: float
    warmup: int
    ema: float
    settings: EvalSettings
    backends: tuple[str, ...] = BACKENDS
    workers: int | str | None = None
    checkpoint_every: int = 500
    bf16: bool = True
    compile: bool = False
    chunk_rows: int = 2048
    train_group: int = 1
    seeds: tuple[int, ...] = (0,)
    budgets: tuple[int, ...] = (1,)
    eval_group: int = 1
    measures: tuple[str, ...] = MEASURES
    short_budget_measures: tuple[str, ...] | None = None

    def __post_init__(self):
        _check_measure_names("measures", self.measures)
        _check_measure_names("short_budget_measures", self.short_budget_measures, optional=True)
        check_int("train_group", self.train_group, minimum=1)
        check_int("eval_group", self.eval_group, minimum=1)
        _check_distinct_ints("seeds", self.seeds, "training seeds", minimum=0)
        _check_distinct_ints("budgets", self.budgets, "step multipliers", minimum=1)

    def train_cells(self) -> list[TrainCell]:
        return [
            TrainCell(
                self.data,
                a,
                n,
                self.steps * b,
                self.batch_size,
                self.lr,
                self.warmup,
                self.ema,
                seed=s,
                bf16=self.bf16,
                compile=self.compile,
                chunk_rows=self.chunk_rows,
            )  # fmt: skip
            for a in self.archs
            for b in self.budgets
            for n in self.sizes
            for s in self.seeds
        ]

    def measured(self) -> list[str]:
        """The preset's measurements in ``MEASURES`` order."""
        return [m for m in MEASURES if m in self.measures]

    def measures_of(self, tc: TrainCell) -> list[str]:
        """The measurements of the model ``tc`` in ``MEASURES`` order: all of :meth:`measured` at the longest step
        budget, those also in ``short_budget_measures`` at a shorter one."""
        if not isinstance(tc, TrainCell):
            raise TypeError(f"tc: expected a TrainCell, got {type(tc).__name__}")
        short = self.short_budget_measures
        if short is None or tc.steps >= self.steps * max(self.budgets):
            return self.measured()
        return [m for m in self.measured() if m in short]

    def eval_cells(self, measure: str) -> list[EvalCell]:
        """The cells of ``measure``: one a model that gets it (:meth:`measures_of`)."""
        return [EvalCell(tc, measure, self.settings) for tc in self.train_cells() if measure in self.measures_of(tc)]

    def hopfield_cells(self, measure: str) -> list[HopfieldCell]:
        return [HopfieldCell(b, self.data, n, measure, self.settings) for b in self.backends for n in self.sizes]
