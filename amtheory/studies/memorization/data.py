"""Data of the memorization study: the corpus a cell names, its evaluation sequences and named random streams."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amtheory.core.sweep import text_generator
from amtheory.diffusion.data import TokenCorpus, VocabMapping, random_sequences
from amtheory.studies.memorization.cells import DataSpec


def embedded_corpus_path() -> Path:
    """The corpus shipped with the package (6,000 training and 1,000 test sentences)."""
    return Path(__file__).resolve().parents[2] / "data" / "embedded"


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


def named_generator(*parts: Any) -> torch.Generator:
    """A CPU generator seeded from a text label, so that draws depend only on what they are for."""
    return text_generator(json.dumps([str(p) for p in parts]))


def data_label(spec: DataSpec) -> str:
    return f"{spec.source}|{spec.length}|{spec.vocab}"


def eval_sequences(spec: DataSpec, n_train: int, n_eval: int, *, fill_train: bool = False) -> dict[str, torch.Tensor]:
    """The evaluation blocks ``[n, L]`` of each split: the first ``min(n_eval, n_train)`` training blocks, the
    first ``n_eval`` test blocks, and ``n_eval`` random blocks (``[CLS]``, uniform ordinary ids, ``[SEP]``: the
    format of a real block with no structure in it). The random blocks depend only on the data and ``n_eval``.
    With ``fill_train`` a training set of fewer than ``n_eval`` blocks gives ``n_eval`` rows all the same, its
    blocks in turn (row ``i`` is block ``i mod n_train``), for queries that each get their own corruption."""
    corpus = load_data(spec)
    L = spec.length
    train = corpus.blocks("train", n_train, L)[: min(n_eval, n_train)]
    if fill_train and train.shape[0] < n_eval:
        train = train[torch.arange(n_eval) % train.shape[0]]
    n_test = min(n_eval, corpus.n_blocks_available("test", L))
    test = corpus.blocks("test", n_test, L)
    ordinary = torch.arange(5 if corpus.mapping is not None else 999, corpus.vocab_size)
    body = random_sequences(n_eval, L - 2, ordinary, named_generator("random", data_label(spec), n_eval))
    sp = corpus.specials
    rand = torch.cat(
        [torch.full((n_eval, 1), sp.cls, dtype=torch.long), body, torch.full((n_eval, 1), sp.sep, dtype=torch.long)], 1
    )
    return {"train": train, "test": test, "random": rand}


def ordinary_positions(spec: DataSpec, x: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` bool: the positions of ``x`` (blocks of ``spec``'s corpus) that hold ordinary tokens, not one of the
    five special tokens (the ``[CLS]`` / ``[SEP]`` frame of every block, the ``[SEP]`` between sentences, ``[UNK]``
    standing in for every word outside the compacted vocabulary, ``[PAD]``, ``[MASK]``). Recovery rates are taken
    over these positions only: the frame sits at the same place in every block, so any model restores it, and
    counting it would put a floor of about 2 / L under every rate (random blocks included)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x: expected a [B, L] token tensor, got {x!r:.80}")
    special = torch.tensor(load_data(spec).specials.ids(), dtype=x.dtype, device=x.device)
    return ~torch.isin(x, special)


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
