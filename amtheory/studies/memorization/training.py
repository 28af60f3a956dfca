"""Training cells of the memorization study: one diffusion LM per (model size, training size, seed)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pandas as pd
import torch

from amtheory.core.sweep import cell_key
from amtheory.studies.memorization.cells import TrainCell
from amtheory.studies.memorization.data import load_data


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
