"""Command line of ``amtheory train`` (= ``python -m amtheory.diffusion.train``).

Every :class:`TrainConfig` field is an option of the same name with the field's default and help text; the run's
own options (corpus, size, output folder, device) sit beside them. A YAML or JSON file passed as ``--config`` sets
any of them (flat keys, e.g. ``{"steps": 1000, "lr": 5e-4, "data": "data/brown-sotu"}``), options after it
override it, and ``--print_config`` prints the resulting configuration. Options may be spelled with ``-`` or ``_``
(``--batch-size`` = ``--batch_size``); a boolean field given alone is switched on (``--compile``) and ``--no-FIELD``
switches it off (``--no-bf16``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser, set_parsing_settings

from amtheory.core.cli_args import normalise_flags
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train_config import TrainConfig

__all__ = ["main", "parse_args", "parser"]

_PROG = "amtheory train"
_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_BOOL_FIELDS = {name for name, f in _TRAIN_FIELDS.items() if f.type in (bool, "bool")}


def parser() -> ArgumentParser:
    """The parser: the run's options, then every TrainConfig field (help and default from the dataclass)."""
    # The fields' help texts are their attribute docstrings in train_config.py.
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    p = ArgumentParser(prog=_PROG, description="Train a uniform discrete diffusion LM on a prepared token corpus.")
    p.add_argument("--config", action=ActionConfigFile, help="YAML or JSON file of options (later options override it)")
    p.add_argument("--data", type=str, required=True, help="folder of a prepared TokenCorpus")
    p.add_argument("--n_train", type=int, required=True, help="number of packed training blocks")
    p.add_argument("--preset", type=str, default="tiny", help="DiT size: cpu-micro, gpu-quick, tiny, small, medium")
    p.add_argument("--length", type=int, default=128, help="tokens per block")
    p.add_argument(
        "--dropout", type=float, default=_field_default(DiTConfig, "dropout"), help="dropout of the residual branches"
    )
    p.add_argument("--out", type=str, required=True, help="run folder (checkpoints, log.jsonl)")
    p.add_argument("--device", type=str, default="auto", help="auto (cuda when available), cpu or cuda[:i]")
    p.add_argument("--resume", action=ActionYesNo, default=True, help="continue from the newest checkpoint in --out")
    p.add_argument("--progress", action=ActionYesNo, default=True, help="show a progress bar")
    p.add_argument("--tensorboard", type=str | None, default=None, help="TensorBoard log folder (none: no log)")
    p.add_class_arguments(TrainConfig, None, sub_configs=False)
    return p


def _field_default(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def parse_args(argv: list[str] | None = None) -> tuple[Namespace, TrainConfig]:
    """The run's options and the :class:`TrainConfig` (its checks applied) from ``argv`` (default ``sys.argv``)."""
    a = parser().parse_args(normalise_flags(sys.argv[1:] if argv is None else argv, _BOOL_FIELDS))
    values = a.as_dict()
    cfg = TrainConfig(**{k: values[k] for k in _TRAIN_FIELDS})
    run = Namespace(**{k: v for k, v in values.items() if k not in _TRAIN_FIELDS and k != "config"})
    return run, cfg


def _run(run: Namespace, cfg: TrainConfig, trainer: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    from amtheory.core._checks import resolve_device
    from amtheory.diffusion.checkpoint import corpus_vocab_sha256
    from amtheory.diffusion.data import TokenCorpus

    device = resolve_device("--device", run.device)
    if not Path(run.data).is_dir():
        raise FileNotFoundError(f"--data: no corpus folder {run.data!r}")
    corpus = TokenCorpus.load(run.data)
    data = corpus.blocks("train", run.n_train, run.length)
    meta = {
        "vocab_sha256": corpus_vocab_sha256(corpus.manifest),
        "vocab_size": corpus.vocab_size,
        "data": {"corpus": str(Path(run.data).resolve()), "split": "train", "n_blocks": run.n_train,
                 "length": run.length},
    }  # fmt: skip
    model_config = DiTConfig.preset(run.preset, corpus.vocab_size, run.length, dropout=run.dropout)
    return trainer(
        model_config, cfg, data, run.out, device=device, resume=run.resume, progress=run.progress,
        tensorboard_dir=run.tensorboard, meta=meta,
    )  # fmt: skip


def main(argv: list[str] | None, trainer: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Parse ``argv`` (None: ``sys.argv``), run ``trainer`` (:func:`amtheory.diffusion.train.train`, passed in by
    :func:`amtheory.diffusion.train.main`), print the summary (rank 0) and return it. A bad value or a missing corpus
    ends the process with one line on stderr and exit status 2."""
    try:
        summary = _run(*parse_args(argv), trainer)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"{_PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    if summary["rank"] == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "losses"}, indent=2))
    return summary
