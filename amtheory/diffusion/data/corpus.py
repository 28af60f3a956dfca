"""The corpus itself: building it from arrays or sentences, saving it to and loading it from a folder, and
relabelling it in a compact vocabulary."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amtheory.core._checks import check_int, check_vocab_size
from amtheory.diffusion.data.store import (
    _ARRAYS,
    BERT_VOCAB_SIZE,
    FORMAT_VERSION,
    _read_array,
    _sha256_file,
    split_indices,
)
from amtheory.diffusion.data.views import CorpusViews
from amtheory.diffusion.vocab import BERT_SPECIALS, SpecialTokens, VocabMapping, _as_long


class TokenCorpus(CorpusViews):
    """Distinct tokenized sentences with a fixed test split and a seeded, nested training order.

    Build one with ``TokenCorpus.load(folder)`` (a prepared corpus), ``TokenCorpus.from_arrays`` or
    ``TokenCorpus.from_sentences``. All outputs are ``torch.long`` tensors on the CPU.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        offsets: torch.Tensor,
        test_index: torch.Tensor,
        train_order: torch.Tensor,
        *,
        vocab_size: int,
        specials: SpecialTokens,
        source: torch.Tensor | None = None,
        manifest: dict[str, Any] | None = None,
        mapping: VocabMapping | None = None,
        path: Path | None = None,
    ):
        self.tokens = tokens
        self.offsets = offsets
        self.test_index = test_index
        self.train_order = train_order
        self._vocab_size = vocab_size
        self.specials = specials
        self.source = source if source is not None else torch.zeros(self.n_sentences, dtype=torch.long)
        self.manifest = manifest if manifest is not None else {}
        self.mapping = mapping
        self.path = path
        self.lengths = offsets[1:] - offsets[:-1]

    # ----------------------------------------------------------------------------------------------- building
    @staticmethod
    def from_arrays(
        tokens: object,
        offsets: object,
        *,
        test_index: object,
        train_order: object,
        vocab_size: int = BERT_VOCAB_SIZE,
        specials: SpecialTokens = BERT_SPECIALS,
        source: object | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> TokenCorpus:
        """A corpus from a flat id array, sentence offsets ``[N + 1]`` and the two index arrays (validated)."""
        check_vocab_size("vocab_size", vocab_size)
        if not isinstance(specials, SpecialTokens):
            raise TypeError(f"specials: expected SpecialTokens, got {type(specials).__name__}")
        if any(not 0 <= s < vocab_size for s in specials.ids()):
            raise ValueError(f"specials: expected ids in [0, {vocab_size}), got {specials.ids()}")
        tok = _as_long("tokens", tokens)
        off = _as_long("offsets", offsets)
        test = _as_long("test_index", test_index)
        train = _as_long("train_order", train_order)
        if tok.numel() and (int(tok.min()) < 0 or int(tok.max()) >= vocab_size):
            raise ValueError(f"tokens: expected ids in [0, {vocab_size}), got [{int(tok.min())}, {int(tok.max())}]")
        if off.numel() < 2 or int(off[0]) != 0 or int(off[-1]) != tok.numel():
            raise ValueError(
                f"offsets: expected [0, ..., {tok.numel()}] with at least one sentence, got "
                f"{off.numel()} entries from {off[:1].tolist()} to {off[-1:].tolist()}"
            )
        if bool((off[1:] <= off[:-1]).any()):
            raise ValueError("offsets: expected strictly increasing offsets (no empty sentences)")
        n = off.numel() - 1
        for name, idx in (("test_index", test), ("train_order", train)):
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise ValueError(
                    f"{name}: expected sentence indices in [0, {n}), got [{int(idx.min())}, {int(idx.max())}]"
                )
            if torch.unique(idx).numel() != idx.numel():
                raise ValueError(f"{name}: expected distinct sentence indices, got repeats")
        both = torch.cat([test, train])
        if torch.unique(both).numel() != both.numel():
            shared = int(test.numel() + train.numel() - torch.unique(both).numel())
            raise ValueError(f"test_index, train_order: expected disjoint splits, {shared} sentences are in both")
        src = None if source is None else _as_long("source", source)
        if src is not None and src.numel() != n:
            raise ValueError(f"source: expected one entry per sentence ({n}), got {src.numel()}")
        return TokenCorpus(
            tok, off, test, train, vocab_size=vocab_size, specials=specials, source=src, manifest=manifest
        )

    @staticmethod
    def from_sentences(
        sentences: Sequence[Sequence[int]],
        *,
        test_size: int,
        generator: torch.Generator,
        vocab_size: int = BERT_VOCAB_SIZE,
        specials: SpecialTokens = BERT_SPECIALS,
    ) -> TokenCorpus:
        """A corpus from a list of id lists, split by ``split_indices`` with ``generator``."""
        if len(sentences) == 0:
            raise ValueError("sentences: expected at least one sentence, got none")
        lens = [len(s) for s in sentences]
        off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        tok = np.fromiter((t for s in sentences for t in s), dtype=np.int64, count=int(off[-1]))
        test, train = split_indices(len(sentences), test_size, generator)
        return TokenCorpus.from_arrays(
            tok, off, test_index=test, train_order=train, vocab_size=vocab_size, specials=specials
        )

    # ----------------------------------------------------------------------------------------------- storage
    @staticmethod
    def load(path: str | os.PathLike) -> TokenCorpus:
        """Read a prepared corpus folder (see the module docstring for its files)."""
        p = Path(path)
        man_path = p / "manifest.json"
        if not man_path.is_file():
            raise ValueError(
                f"path: expected a prepared corpus folder with manifest.json, got {str(p)!r}; build one with "
                "`python -m amtheory.diffusion.prepare --out data/brown-sotu`"
            )
        manifest = json.loads(man_path.read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"path: expected corpus format {FORMAT_VERSION}, got {manifest.get('format')!r}")
        arrays = {k: _read_array(p, f"{k}.npy", manifest) for k in _ARRAYS}
        corpus = TokenCorpus.from_arrays(
            arrays["tokens"],
            arrays["offsets"],
            test_index=arrays["test_index"],
            train_order=arrays["train_order"],
            vocab_size=int(manifest["vocab_size"]),
            specials=SpecialTokens.from_dict(manifest["specials"]),
            source=arrays["source"],
            manifest=manifest,
        )
        corpus.path = p
        return corpus

    def save(self, path: str | os.PathLike, *, vocab_path: str | os.PathLike | None = None) -> Path:
        """Write the corpus folder atomically: into a temporary sibling, then one rename.

        Refuses to overwrite an existing folder (remove it first); a crash leaves at most a ``.tmp-*`` sibling.
        """
        if self.mapping is not None:
            raise ValueError("self: a compacted corpus is a view; save the original and store mapping.to_dict()")
        out = Path(path)
        if out.exists():
            raise ValueError(f"path: {str(out)!r} already exists; remove it or choose another folder")
        if self.tokens.numel() and int(self.tokens.max()) >= 2**16:
            raise ValueError(f"tokens: ids up to {int(self.tokens.max())} do not fit the uint16 format")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            np.save(tmp / "tokens.npy", self.tokens.numpy().astype(np.uint16))
            np.save(tmp / "offsets.npy", self.offsets.numpy().astype(np.int64))
            np.save(tmp / "test_index.npy", self.test_index.numpy().astype(np.int64))
            np.save(tmp / "train_order.npy", self.train_order.numpy().astype(np.int64))
            np.save(tmp / "source.npy", self.source.numpy().astype(np.uint8))
            if vocab_path is not None:
                shutil.copyfile(vocab_path, tmp / "vocab.txt")
            manifest = dict(self.manifest)
            manifest.update(
                format=FORMAT_VERSION,
                vocab_size=self._vocab_size,
                specials=self.specials.to_dict(),
                counts={**manifest.get("counts", {}), **self.summary()},
                checksums={f"{k}.npy": _sha256_file(tmp / f"{k}.npy") for k in _ARRAYS},
            )
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = out
        self.manifest = manifest
        return out

    # ----------------------------------------------------------------------------------------------- sizes
    @property
    def vocab_size(self) -> int:
        """Size of the id space (30522 for bert-base-uncased; ``V_c`` after ``remap``)."""
        return self._vocab_size

    @property
    def n_sentences(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def n_train(self) -> int:
        """Size of the training pool (everything not in the test split)."""
        return int(self.train_order.numel())

    @property
    def n_test(self) -> int:
        return int(self.test_index.numel())

    # ----------------------------------------------------------------------------------------------- vocabulary
    def compact(self, max_size: int | None = None) -> VocabMapping:
        """A dense relabelling of the ids that occur in the corpus (both splits), special tokens first.

        ``V_c = 5 + (number of distinct ordinary ids)``, ordinary ids in decreasing frequency. With ``max_size``
        only the ``max_size - 5`` most frequent ordinary ids are kept and every other id maps to ``[UNK]`` (lossy:
        check ``mapping.covers``); because the order is by frequency, a smaller mapping is a prefix of a larger.
        Apply it with ``remap``.
        """
        if max_size is not None:
            check_int("max_size", max_size, minimum=6)
        counts = self.token_counts()
        specials = torch.tensor(self.specials.ids())
        counts[specials] = 0
        used = torch.nonzero(counts > 0).flatten()
        # Stable sort by descending count keeps ties in increasing id order.
        order = torch.sort(-counts[used], stable=True).indices
        ordinary = used[order]
        if max_size is not None:
            ordinary = ordinary[: max_size - 5]
        return VocabMapping(torch.cat([specials, ordinary]), full_size=self._vocab_size, full_specials=self.specials)

    def remap(self, mapping: VocabMapping) -> TokenCorpus:
        """The same corpus (same splits and order) in ``mapping``'s compact ids; ``.mapping`` remembers it."""
        if not isinstance(mapping, VocabMapping):
            raise TypeError(f"mapping: expected a VocabMapping, got {type(mapping).__name__}")
        if mapping.full_size != self._vocab_size or mapping.full_specials != self.specials:
            raise ValueError(
                f"mapping: built for a vocabulary of {mapping.full_size} with specials {mapping.full_specials.ids()}, "
                f"this corpus has {self._vocab_size} with {self.specials.ids()}"
            )
        return TokenCorpus(
            mapping.encode(self.tokens),
            self.offsets,
            self.test_index,
            self.train_order,
            vocab_size=mapping.size,
            specials=mapping.specials,
            source=self.source,
            manifest={**self.manifest, "mapping_sha256": mapping.fingerprint()},
            mapping=mapping,
            path=self.path,
        )

    def __repr__(self) -> str:
        return (
            f"TokenCorpus(sentences={self.n_sentences}, train_pool={self.n_train}, test={self.n_test}, "
            f"tokens={self.tokens.numel()}, vocab_size={self._vocab_size})"
        )
