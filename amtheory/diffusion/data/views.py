"""What a corpus feeds a model: its splits as sentence lists, packed blocks and padded sentence blocks, and
uniform random sequences as the structureless baseline."""

from __future__ import annotations

from typing import Any

import torch

from amtheory.core._checks import check_choice, check_generator, check_int, check_tokens, check_vocab_size, draw_device
from amtheory.diffusion.data.store import _SPLITS, Split
from amtheory.diffusion.vocab import SpecialTokens


class CorpusViews:
    """The sentence, block and count views of a :class:`~amtheory.diffusion.data.TokenCorpus`, read from its
    arrays (``tokens``, ``offsets``, ``lengths``, ``test_index``, ``train_order``) and special tokens."""

    tokens: torch.Tensor
    offsets: torch.Tensor
    lengths: torch.Tensor
    test_index: torch.Tensor
    train_order: torch.Tensor
    specials: SpecialTokens
    _vocab_size: int

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

    def token_counts(self) -> torch.Tensor:
        """Occurrences of every id over all sentences (both splits), shape ``[vocab_size]``."""
        return torch.bincount(self.tokens, minlength=self._vocab_size)


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
