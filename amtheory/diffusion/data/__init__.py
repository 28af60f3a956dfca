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

from amtheory.diffusion.data.corpus import TokenCorpus
from amtheory.diffusion.data.store import BERT_VOCAB_SIZE, FORMAT_VERSION, split_indices
from amtheory.diffusion.data.views import random_sequences
from amtheory.diffusion.vocab import BERT_SPECIALS, COMPACT_SPECIALS, SpecialTokens, VocabMapping

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
