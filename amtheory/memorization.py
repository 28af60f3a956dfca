"""From memorization to generalization on real text: uniform-diffusion LMs and the Hopfield family side by side.

The experiment of Pham, Zaki, Ambrogioni, Krotov and Negri (2026, "Language Diffusion Models are Associative
Memories Capable of Retrieving Unseen Data", arXiv 2604.26841) on Brown + State of the Union: UDDMs of a few sizes
are trained for the same number of steps on nested training sets of packed token blocks whose size grows
log-spaced. Each trained model is then measured on its own training blocks, on held-out test blocks and on random
blocks; the training recovery of corrupted tokens falls and the test recovery rises with the training-set size
until the two meet (the memorization-to-generalization transition).

Cells (frozen dataclasses in ``amtheory.memorization_cells``, re-exported here; every stage goes through
``amtheory.sweep.run_sweep``, so finished cells are skipped, a killed run is resumed by running it again, and
every table is tidy parquet, one file per cell):

* ``TrainCell`` — one UDDM: data (``DataSpec``: corpus, block length, vocabulary compaction), architecture
  (``ModelSpec``), training-set size, steps, batch, learning rate, seed. Its checkpoint goes to
  ``out/checkpoints/<cell key>/``; an interrupted training resumes from its newest checkpoint. Table ``out/train``.
* ``EvalCell`` — one measurement (``measure``) of one trained model (``train``) with ``EvalSettings``; the
  measurements and their tables are described in ``amtheory.memorization_eval``.
* ``HopfieldCell`` — a Hopfield-family memory storing the same training blocks (``memory`` in ``empirical``,
  ``dense_exp``, ``modern``, ``classical``), measured on the same sequences with the same corruptions; its rows go
  into the same ``recovery`` and ``basins`` tables as the UDDM's (column ``backend``).

Every evaluation table carries the columns ``backend`` ("uddm", "empirical", "dense_exp", "modern",
"classical"), ``model_size`` (the UDDM's architecture name; "" for the Hopfield family, whose result does not
depend on it) and ``train_size`` (training blocks seen or stored).

The Hopfield family on text (what each backend materialises, and the choices made for it):

* ``EmpiricalDenoiser`` — the exact posterior of a denoiser that memorized the training blocks (the memorization
  limit: it can only return training sequences). It keeps the token ids only; one reverse step builds
  ``[B, L, V]`` and ``[B, L, chunk]`` float64 tensors. It runs the very dynamics of the UDDM (the reverse chain,
  with its own step count ``EvalSettings.empirical_steps``, because each step costs O(B L K)).
* ``DenseAM("exp")`` — the categorical exponential dense memory ``E = -log sum_mu exp(beta m_mu)`` over agreement
  counts (the memorizing denoiser's energy at a fixed inverse temperature). Its scores build ``[B, L, K]`` float64,
  so queries go in chunks of ``EvalSettings.hopfield_batch``; no one-hot embedding is formed, any V works.
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

The named sweeps (``tiny``, ``gpu``, ``large``) are in ``amtheory.memorization_presets``.

``summarize(results_dir)`` gives the numbers of a results page: for each model size the training-set size where
training and test recovery meet (per t, interpolated in log size), the conditional entropy on training data at
the smallest and largest sizes, and where the test perplexity bound peaks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from amtheory.diffusion.data import TokenCorpus, VocabMapping, random_sequences
from amtheory.memorization_analysis import _read, longest_shared_span, meeting_point, recovery_summary, summarize
from amtheory.memorization_cells import (
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
from amtheory.sweep import cell_key, text_generator

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
    "meeting_point",
    "recovery_summary",
    "run_experiment",
    "summarize",
    "train_cell",
]


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------
def embedded_corpus_path() -> Path:
    """The corpus shipped with the package (6,000 training and 1,000 test sentences)."""
    return Path(__file__).resolve().parent / "data" / "embedded"


def _corpus_path(source: str) -> Path:
    return embedded_corpus_path() if source == "embedded" else Path(source)


@functools.lru_cache(maxsize=4)
def _load_corpus(source: str, vocab: int | None) -> TokenCorpus:
    corpus = TokenCorpus.load(_corpus_path(source))
    if vocab is None:
        return corpus
    return corpus.remap(corpus.compact(vocab))


def load_data(spec: DataSpec) -> TokenCorpus:
    """The corpus of ``spec`` in its (compacted) ids; cached per process."""
    if not isinstance(spec, DataSpec):
        raise TypeError(f"spec: expected a DataSpec, got {type(spec).__name__}")
    return _load_corpus(spec.source, spec.vocab)


def _named_generator(*parts: Any) -> torch.Generator:
    """A CPU generator seeded from a text label, so that draws depend only on what they are for."""
    return text_generator(json.dumps([str(p) for p in parts]))


def _data_label(spec: DataSpec) -> str:
    return f"{spec.source}|{spec.length}|{spec.vocab}"


def eval_sequences(spec: DataSpec, n_train: int, n_eval: int) -> dict[str, torch.Tensor]:
    """The evaluation blocks ``[n, L]`` of each split: the first ``min(n_eval, n_train)`` training blocks, the
    first ``n_eval`` test blocks, and ``n_eval`` random blocks (``[CLS]``, uniform ordinary ids, ``[SEP]``: the
    format of a real block with no structure in it). The random blocks depend only on the data and ``n_eval``."""
    corpus = load_data(spec)
    L = spec.length
    train = corpus.blocks("train", n_train, L)[: min(n_eval, n_train)]
    n_test = min(n_eval, corpus.n_blocks_available("test", L))
    test = corpus.blocks("test", n_test, L)
    ordinary = torch.arange(5 if corpus.mapping is not None else 999, corpus.vocab_size)
    body = random_sequences(n_eval, L - 2, ordinary, _named_generator("random", _data_label(spec), n_eval))
    sp = corpus.specials
    rand = torch.cat(
        [torch.full((n_eval, 1), sp.cls, dtype=torch.long), body, torch.full((n_eval, 1), sp.sep, dtype=torch.long)], 1
    )
    return {"train": train, "test": test, "random": rand}


def save_vocabulary(spec: DataSpec, out_dir: str | Path) -> Path:
    """Write ``vocab.txt`` and the compaction mapping of ``spec`` under ``out_dir/vocab/`` (for decoding in the
    figures); returns that folder."""
    corpus = load_data(spec)
    folder = Path(out_dir) / "vocab"
    folder.mkdir(parents=True, exist_ok=True)
    src = _corpus_path(spec.source) / "vocab.txt"
    if src.is_file() and not (folder / "vocab.txt").is_file():
        (folder / "vocab.txt").write_text(src.read_text())
    if corpus.mapping is not None:
        path = folder / f"mapping-{spec.vocab}.json"
        if not path.is_file():
            corpus.mapping.save(path)
    return folder


def load_decoder(results_dir: str | Path, vocab: int | None):
    """A function ``ids -> list of token strings`` from the vocabulary saved with the results."""
    folder = Path(results_dir) / "vocab"
    words = (folder / "vocab.txt").read_text().splitlines()
    mapping = VocabMapping.load(folder / f"mapping-{vocab}.json") if vocab is not None else None

    def decode(ids) -> list[str]:
        t = torch.as_tensor(np.array(ids, dtype=np.int64))
        full = mapping.decode(t) if mapping is not None else t
        return [words[i] if i < len(words) else f"<{i}>" for i in full.tolist()]

    return decode


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------
def checkpoint_dir(root: str | Path, cell: TrainCell) -> Path:
    """Where ``cell``'s training run lives: ``root/checkpoints/<cell key>/`` (its checkpoints in ``checkpoints/``)."""
    return Path(root) / "checkpoints" / cell_key(cell)


def train_cell(
    cell: TrainCell,
    generator: torch.Generator,
    device: str,
    *,
    root: str,
    checkpoint_every: int = 500,
    progress: bool = False,
) -> pd.DataFrame:
    """Train (or finish training) one UDDM; one row: final loss, wall time, ms per step, parameters, checkpoint.

    The trainer resumes from the run's newest checkpoint, so a killed sweep loses at most ``checkpoint_every``
    steps. Its seed is the cell's ``seed`` (the sweep's generator is not used: the training stream is the
    trainer's own pure function of (seed, step)).
    """
    from amtheory.diffusion.checkpoint import corpus_vocab_sha256
    from amtheory.diffusion.train import TrainConfig, train

    del generator
    corpus = load_data(cell.data)
    data = corpus.blocks("train", cell.n_train, cell.data.length)
    cfg = cell.arch.config(corpus.vocab_size, cell.data.length)
    tc = TrainConfig(
        steps=cell.steps,
        batch_size=cell.batch_size,
        lr=cell.lr,
        warmup=cell.warmup,
        ema=cell.ema,
        seed=cell.seed,
        bf16=cell.bf16,
        compile=cell.compile,
        chunk_rows=cell.chunk_rows,
        checkpoint_every=min(checkpoint_every, cell.steps),
        log_every=max(1, min(100, cell.steps // 4)),
    )
    out = checkpoint_dir(root, cell)
    meta = {"vocab_sha256": corpus_vocab_sha256(corpus.manifest), "data": {"source": cell.data.source}}
    t0 = time.perf_counter()
    with _tf32(device):
        summary = train(cfg, tc, data, out, device=device, resume=True, progress=progress, meta=meta)
    wall = time.perf_counter() - t0
    trained = summary["steps"] - summary["start_step"]
    n_params = sum(p.numel() for p in _param_shapes(cfg))
    return pd.DataFrame(
        {
            "backend": ["uddm"],
            "model_size": [cell.arch.name],
            "train_size": [cell.n_train],
            "final_loss": [summary["final_loss"]],
            "skipped_steps": [summary["skipped_steps"]],
            "steps_run": [trained],
            "wall_s": [wall],
            "ms_per_step": [1e3 * summary["wall_s"] / trained if trained else float("nan")],
            "n_params": [n_params],
            "vocab_size": [corpus.vocab_size],
            "checkpoint": [str(summary["checkpoint"])],
        }
    )


@contextlib.contextmanager
def _tf32(device: str):
    """TF32 tensor cores for float32 matmuls while a model trains on CUDA (restored afterwards)."""
    if not str(device).startswith("cuda"):
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _param_shapes(cfg) -> list[torch.Tensor]:
    from amtheory.diffusion.model import DiT

    with torch.device("meta"):
        return list(DiT(cfg).parameters())


# ---------------------------------------------------------------------------------------------------------------
# The whole experiment
# ---------------------------------------------------------------------------------------------------------------
def _stage(name: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"[memorization] {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def run_experiment(
    p: Preset, out_dir: str | Path, *, device: str = "cpu", progress: bool = True, workers: int | str | None = None
) -> dict[str, pd.DataFrame]:
    """Run every stage of preset ``p`` into ``out_dir`` (training, the UDDM measurements, the Hopfield family),
    skipping finished cells; prints each stage's wall time. Returns the tables by name."""
    from amtheory import memorization_eval as ev
    from amtheory.sweep import run_sweep

    if not isinstance(p, Preset):
        raise TypeError(f"p: expected a Preset (see amtheory.memorization_presets), got {type(p).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = p.workers if workers is None else workers
    save_vocabulary(p.data, out)
    train_fn = functools.partial(train_cell, root=str(out), checkpoint_every=p.checkpoint_every)
    eval_fn = functools.partial(ev.evaluate_cell, root=str(out))
    train_cells = p.train_cells()
    if workers is not None and workers != 1:
        # Several workers: each stage over all models at once, one process per GPU.
        _stage("train", run_sweep, train_cells, train_fn, out / "train", device=device, progress=progress,
               workers=workers)  # fmt: skip
        for m in MEASURES:
            cells: list[Any] = p.eval_cells(m) + (p.hopfield_cells(m) if m in ("recovery", "basins") else [])
            _stage(m, run_sweep, cells, eval_fn, out / m, device=device, progress=progress, workers=workers)
    else:
        # One device: each model is trained and then measured before the next starts, so that a run cut short
        # leaves complete results for the models it reached (checkpoints need not outlive the run).
        done_sizes: set[int] = set()
        from amtheory.diffusion.checkpoint import latest_checkpoint
        from amtheory.sweep import pending_cells, result_path

        for tc in train_cells:
            label = f"{tc.arch.name} on {tc.n_train} blocks"
            trained = result_path(out / "train", tc)
            unmeasured = any(pending_cells([EvalCell(tc, m, p.settings)], out / m) for m in MEASURES)
            if trained.exists() and unmeasured and latest_checkpoint(checkpoint_dir(out, tc) / "checkpoints") is None:
                # Trained on another machine whose checkpoints did not come along: train again to measure it.
                print(f"[memorization] {label}: no checkpoint here for pending measurements; training again")
                trained.unlink()
            _stage(f"train {label}", run_sweep, [tc], train_fn, out / "train", device=device, progress=False)
            for m in MEASURES:
                cells = [EvalCell(tc, m, p.settings)]
                if m in ("recovery", "basins") and tc.n_train not in done_sizes:
                    cells += [HopfieldCell(b, p.data, tc.n_train, m, p.settings) for b in p.backends]
                _stage(f"{m} {label}", run_sweep, cells, eval_fn, out / m, device=device, progress=False)
            done_sizes.add(tc.n_train)
    return {name: _read(out / name) for name in ("train", *MEASURES)}
