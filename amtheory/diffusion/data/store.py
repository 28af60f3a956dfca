"""The corpus folder's format version and arrays, their checked reading, and the seeded test/train split."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from amtheory.core._checks import check_int

FORMAT_VERSION = 1
BERT_VOCAB_SIZE = 30522

Split = Literal["train", "test"]
#: The arrays of a corpus folder; the manifest records the sha256 of each, checked when the folder is read.
_ARRAYS = ("tokens", "offsets", "test_index", "train_order", "source")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_array(folder: Path, name: str, manifest: dict[str, Any]) -> np.ndarray:
    """One array of a corpus folder, checked against the sha256 its manifest records; never unpickled."""
    path = folder / name
    checksums = manifest.get("checksums")
    if checksums is None:
        warnings.warn(
            f"path: {str(folder)!r} records no checksums of its arrays (a corpus prepared before they were recorded), "
            "so damage to it cannot be detected; prepare it again",
            RuntimeWarning,
            stacklevel=3,
        )
    elif not isinstance(checksums, dict) or name not in checksums:
        raise ValueError(f"{path}: the corpus manifest records no checksum for this array")
    elif not path.is_file():
        raise ValueError(f"{path}: missing from the corpus folder")
    elif _sha256_file(path) != checksums[name]:
        raise ValueError(
            f"{path}: damaged or replaced: its sha256 differs from the one the corpus manifest records; "
            "prepare the corpus again"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable array of a corpus folder ({e})") from e


_SPLITS = ("train", "test")


def split_indices(
    n_sentences: int,
    test_size: int,
    generator: torch.Generator,
    *,
    eligible: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a test split and a nested training order from ONE seeded shuffle of ``range(n_sentences)``.

    ``perm = randperm(n_sentences)``; the test split is the first ``test_size`` entries of ``perm`` that are
    ``eligible`` (all, by default), the training order is every other entry of ``perm`` in shuffle order. The
    test split is fixed before any training subset is drawn, so all training prefixes are disjoint from it.

    Returns ``(test_index, train_order)``, both int64.
    """
    check_int("n_sentences", n_sentences, minimum=1)
    check_int("test_size", test_size, minimum=0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    perm = torch.randperm(n_sentences, generator=generator, device=generator.device).cpu()
    if eligible is None:
        ok = torch.ones(n_sentences, dtype=torch.bool)
    else:
        if not isinstance(eligible, torch.Tensor) or eligible.dtype != torch.bool or eligible.shape != (n_sentences,):
            raise ValueError(f"eligible: expected a bool tensor of shape ({n_sentences},), got {eligible!r:.80}")
        ok = eligible.cpu()
    candidates = perm[ok[perm]]
    if test_size > candidates.numel():
        raise ValueError(f"test_size: asked for {test_size} test sentences but only {candidates.numel()} are eligible")
    test = candidates[:test_size]
    in_test = torch.zeros(n_sentences, dtype=torch.bool)
    in_test[test] = True
    train = perm[~in_test[perm]]
    return test, train
