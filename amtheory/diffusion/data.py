"""A prepared text corpus: token ids of distinct sentences, a fixed test split and nested training subsets.

A corpus folder (written by ``amtheory.diffusion.prepare`` or ``amtheory.diffusion.lm1b``) holds

- ``tokens.npy``  — uint16, every sentence's WordPiece ids concatenated (no special tokens);
- ``offsets.npy`` — int64 ``[N + 1]``, sentence ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``;
- ``test_index.npy`` — int64, the held-out sentences, cut from one seeded shuffle before anything else;
- ``train_order.npy`` — int64, the rest of that shuffle: the training subset of size ``n`` is its first ``n``
  entries, so ``train(n)`` is contained in ``train(m)`` for ``n < m`` and never meets the test split;
- ``source.npy`` — uint8 per sentence, an index into ``manifest["source_names"]``;
- ``vocab.txt`` — the vocabulary the ids refer to (for decoding where the tokenizer wheel is absent);
- ``manifest.json`` — sources and their hashes, counts, the vocabulary hash, seed and special ids.

Two views feed a model. Packed blocks (as MDLM / UDLM do for LM1B): sentences of a split are concatenated in
order, each followed by ``[SEP]``, the stream is cut into pieces of ``length - 2`` tokens and each piece is
wrapped as ``[CLS] piece [SEP]``. Sentence blocks: one sentence per row, ``[CLS] sentence [SEP]`` padded with
``[PAD]``, with a mask of the real positions. An optional vocabulary compaction maps the ids that occur to a
dense range ``[0, V_c)`` (special tokens first) so that small models need a much smaller embedding and output
(:class:`VocabMapping`, defined in :mod:`amtheory.diffusion.vocab` and re-exported here).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from amtheory.core._checks import check_choice, check_generator, check_int, check_tokens, check_vocab_size, draw_device
from amtheory.diffusion.vocab import BERT_SPECIALS, COMPACT_SPECIALS, SpecialTokens, VocabMapping, _as_long

__all__ = [
    "BERT_SPECIALS",
    "BERT_VOCAB_SIZE",
    "COMPACT_SPECIALS",
    "FORMAT_VERSION",
    "SpecialTokens",
    "TokenCorpus",
    "VocabMapping",
    "random_sequences",
    "split_indices",
]

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


class TokenCorpus:
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

    def _order(self, split: str) -> torch.Tensor:
        check_choice("split", split, _SPLITS)
        return self.train_order if split == "train" else self.test_index

    def _take(self, split: str, n: int | None, what: str = "sentences") -> torch.Tensor:
        order = self._order(split)
        if n is None:
            return order
        check_int("n", n, minimum=0)
        if n > order.numel():
            raise ValueError(f"n: asked for {n} {split} {what} but the {split} split holds {order.numel()}")
        return order[:n]

    def summary(self) -> dict[str, Any]:
        """Counts and length statistics (stored in the manifest)."""
        lens = self.lengths.double()
        return {
            "sentences": self.n_sentences,
            "train_pool": self.n_train,
            "test": self.n_test,
            "tokens": int(self.tokens.numel()),
            "mean_tokens": round(float(lens.mean()), 3),
            "median_tokens": float(lens.median()),
            "max_tokens": int(lens.max()),
            "packed_blocks_128": {s: self.n_blocks_available(s, 128) for s in _SPLITS},
        }

    # ----------------------------------------------------------------------------------------------- views
    def sentence_index(self, split: Split, n: int | None = None) -> torch.Tensor:
        """Corpus indices of the first ``n`` sentences of ``split`` (all when ``n`` is None)."""
        return self._take(split, n).clone()

    def sentences(self, split: Split, n: int | None = None) -> list[torch.Tensor]:
        """The first ``n`` sentences of ``split`` as 1-D ``torch.long`` id tensors (no special tokens)."""
        idx = self._take(split, n)
        starts, ends = self.offsets[idx].tolist(), self.offsets[idx + 1].tolist()
        return [self.tokens[a:b].clone() for a, b in zip(starts, ends)]

    def train_sentences(self, n: int) -> list[torch.Tensor]:
        """The first ``n`` sentences of the seeded training order: ``train_sentences(n)`` is a prefix of
        ``train_sentences(m)`` for ``n < m``, and never meets the test split."""
        return self.sentences("train", n)

    def test_sentences(self, n: int | None = None) -> list[torch.Tensor]:
        """The first ``n`` held-out sentences (all when ``n`` is None)."""
        return self.sentences("test", n)

    def _stream(self, idx: torch.Tensor, separator: bool) -> torch.Tensor:
        """Sentences ``idx`` concatenated in order, each followed by ``[SEP]`` when ``separator``."""
        lens = self.lengths[idx]
        total = int(lens.sum())
        starts = self.offsets[idx]
        # Position k of the concatenation comes from tokens[k + (start_j - first position of j in the concat)].
        cat_starts = torch.cumsum(lens, 0) - lens
        src = torch.arange(total) + torch.repeat_interleave(starts - cat_starts, lens)
        if not separator:
            return self.tokens[src]
        # With a separator after each sentence, token k of sentence j moves right by j (the separators before it).
        out = torch.full((total + idx.numel(),), self.specials.sep, dtype=torch.long)
        out[torch.arange(total) + torch.repeat_interleave(torch.arange(idx.numel()), lens)] = self.tokens[src]
        return out

    def n_blocks_available(self, split: Split, length: int = 128, *, separator: bool = True) -> int:
        """How many full packed blocks of ``length`` the whole ``split`` gives."""
        check_int("length", length, minimum=3)
        order = self._order(split)
        stream = int(self.lengths[order].sum()) + (order.numel() if separator else 0)
        return stream // (length - 2)

    def blocks(self, split: Split, n_blocks: int, length: int = 128, *, separator: bool = True) -> torch.Tensor:
        """``n_blocks`` packed blocks ``[n_blocks, length]``: ``[CLS]`` + ``length - 2`` stream tokens + ``[SEP]``.

        The stream is the split's sentences in order, each followed by ``[SEP]`` (``separator=False``: plain
        concatenation), cut every ``length - 2`` tokens; a sentence may straddle two blocks. Block ``k`` depends
        only on the stream prefix, so training blocks are nested: ``blocks('train', n)`` is the first ``n`` rows
        of ``blocks('train', m)``. The trailing partial block is never returned.
        """
        check_int("length", length, minimum=3)
        check_int("n_blocks", n_blocks, minimum=0)
        available = self.n_blocks_available(split, length, separator=separator)
        if n_blocks > available:
            raise ValueError(
                f"n_blocks: asked for {n_blocks} blocks of length {length} from the {split} split "
                f"but it holds {available}"
            )
        need = n_blocks * (length - 2)
        order = self._order(split)
        # Take only as many sentences as the blocks need.
        cum = torch.cumsum(self.lengths[order] + (1 if separator else 0), 0)
        k = int(torch.searchsorted(cum, torch.tensor(need), right=False)) + 1 if need else 0
        stream = self._stream(order[: min(k, order.numel())], separator)[:need]
        body = stream.view(n_blocks, length - 2)
        cls = torch.full((n_blocks, 1), self.specials.cls, dtype=torch.long)
        sep = torch.full((n_blocks, 1), self.specials.sep, dtype=torch.long)
        return torch.cat([cls, body, sep], dim=1)

    def sentences_in_blocks(self, split: Split, n_blocks: int, length: int = 128, *, separator: bool = True) -> int:
        """How many sentences of ``split`` (counted in order) have at least one token in the first ``n_blocks``."""
        check_int("n_blocks", n_blocks, minimum=0)
        check_int("length", length, minimum=3)
        if n_blocks == 0:
            return 0
        order = self._order(split)
        step = self.lengths[order] + (1 if separator else 0)
        starts = torch.cumsum(step, 0) - step
        return int((starts < n_blocks * (length - 2)).sum())

    def sentence_blocks(
        self, split: Split, n: int, length: int = 128, *, truncate: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One sentence per row: ``[CLS] sentence [SEP] [PAD] ...``, shape ``[n, length]``, and a bool mask of the
        non-padding positions. A sentence longer than ``length - 2`` is an error unless ``truncate``."""
        check_int("length", length, minimum=3)
        idx = self._take(split, n)
        lens = self.lengths[idx]
        if idx.numel() and int(lens.max()) > length - 2 and not truncate:
            raise ValueError(
                f"length: the longest of these sentences has {int(lens.max())} tokens, more than length - 2 = "
                f"{length - 2}; raise length or pass truncate=True"
            )
        kept = lens.clamp(max=length - 2)
        x = torch.full((idx.numel(), length), self.specials.pad, dtype=torch.long)
        x[:, 0] = self.specials.cls
        pos = torch.arange(length)
        body = (pos[None, :] >= 1) & (pos[None, :] <= kept[:, None])
        src = self.offsets[idx][:, None] + (pos[None, :] - 1).clamp(min=0)
        x[body] = self.tokens[src[body]]
        x[torch.arange(idx.numel()), kept + 1] = self.specials.sep
        mask = pos[None, :] <= (kept + 1)[:, None]
        return x, mask

    # ----------------------------------------------------------------------------------------------- vocabulary
    def token_counts(self) -> torch.Tensor:
        """Occurrences of every id over all sentences (both splits), shape ``[vocab_size]``."""
        return torch.bincount(self.tokens, minlength=self._vocab_size)

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


def random_sequences(
    n: int,
    length: int,
    vocab: int | torch.Tensor,
    generator: torch.Generator | None,
    *,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``n`` i.i.d. uniform sequences ``[n, length]``: the structureless baseline for text.

    ``vocab`` is a vocabulary size V (tokens uniform on ``[0, V)``) or a 1-D long tensor of allowed ids (uniform
    over them, e.g. the ordinary ids of a compacted corpus).
    """
    check_int("n", n, minimum=0)
    check_int("length", length, minimum=1)
    check_generator("generator", generator)
    where = draw_device(generator, device)
    if isinstance(vocab, torch.Tensor):
        check_tokens("vocab", vocab, rank=1)
        if vocab.numel() == 0:
            raise ValueError("vocab: expected at least one allowed id, got an empty tensor")
        pick = torch.randint(0, vocab.numel(), (n, length), generator=generator, device=where)
        return vocab.to(where)[pick].to(device)
    check_vocab_size("vocab", vocab)
    return torch.randint(0, vocab, (n, length), generator=generator, device=where).to(device)
