"""LM1B (One Billion Word Benchmark, the paper's data) as a corpus folder, where a machine has internet.

Usage::

    python -m amtheory.diffusion.lm1b --out data/lm1b [--parquet-dir DIR] [--max-train N] [--test-size 5000]
        [--seed 0] [--block 128]

Download (needs ``pip install datasets``, which brings ``huggingface_hub``): the Hub's automatic parquet
conversion of ``billion-word-benchmark/lm1b`` (branch ``refs/convert/parquet``, config ``plain_text``, one
``text`` column). ``datasets>=4`` no longer runs the dataset's loading script, so the parquet files are fetched
directly. Conversion (no network; pyarrow only): the parquet texts go through the same ``build_corpus`` as
Brown + SOTU; the test split is drawn only from the official LM1B test sentences (after dedup against the
training sentences, which come first), the nested training order from the official training sentences.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from amtheory.core._checks import check_int
from amtheory.diffusion.corpus_build import prepare_corpus
from amtheory.diffusion.data import TokenCorpus
from amtheory.diffusion.text_sources import find_vocab, sha256_file

LM1B_REPO = "billion-word-benchmark/lm1b"
LM1B_REVISION = "refs/convert/parquet"
LM1B_CONFIG = "plain_text"
DEFAULT_CACHE = Path.home() / ".cache" / "amtheory" / "lm1b"


def download_lm1b(cache: str | os.PathLike = DEFAULT_CACHE, splits: Sequence[str] = ("train", "test")) -> Path:
    """Fetch the parquet conversion of LM1B into ``cache`` (skips files already there); returns the root."""
    try:
        import datasets  # noqa: F401  - the supported entry point; it installs huggingface_hub
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise RuntimeError(
            "lm1b: downloading needs the `datasets` package (pip install 'datasets>=4'); converting parquet files "
            "you already have does not (pass --parquet-dir)"
        ) from e
    root = Path(cache)
    snapshot_download(
        repo_id=LM1B_REPO,
        repo_type="dataset",
        revision=LM1B_REVISION,
        allow_patterns=[f"{LM1B_CONFIG}/{s}/*.parquet" for s in splits],
        local_dir=str(root),
    )
    return root


def parquet_files(root: str | os.PathLike, split: str) -> list[Path]:
    """The parquet shards of ``split`` under ``root`` (layout ``<config>/<split>/NNNN.parquet``), sorted."""
    files = sorted(Path(root).glob(f"**/{split}/*.parquet"))
    if not files:
        raise ValueError(f"root: no parquet files matching **/{split}/*.parquet under {str(root)!r}")
    return files


def parquet_texts(
    files: Sequence[str | os.PathLike], *, column: str = "text", limit: int | None = None
) -> Iterator[str]:
    """Texts of ``column`` from parquet files in order, read in record batches (at most ``limit``)."""
    import pyarrow.parquet as pq

    if limit is not None:
        check_int("limit", limit, minimum=0)
    n = 0
    for f in files:
        pf = pq.ParquetFile(f)
        if column not in pf.schema_arrow.names:
            raise ValueError(f"column: {column!r} is not in {f} (columns {pf.schema_arrow.names})")
        for batch in pf.iter_batches(columns=[column], batch_size=65536):
            for t in batch.column(0).to_pylist():
                if limit is not None and n >= limit:
                    return
                if t is not None:
                    n += 1
                    yield t


def convert_lm1b(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    vocab_path: str | os.PathLike | None = None,
    test_size: int = 5000,
    seed: int = 0,
    block: int = 128,
    min_words: int = 3,
    max_train: int | None = None,
    log=print,
) -> TokenCorpus:
    """LM1B parquet shards under ``root`` -> a corpus folder ``out`` (reused when already built the same way).

    ``max_train`` keeps only the first that many training rows (the full 30M sentences need tens of GB of RAM in
    this pure-Python pipeline; a few million is plenty for nested subsets).
    """
    if max_train is not None:
        check_int("max_train", max_train, minimum=1)
    vocab = Path(vocab_path) if vocab_path is not None else find_vocab()
    train_files, test_files = parquet_files(root, "train"), parquet_files(root, "test")
    sources = {
        name: {"repo": LM1B_REPO, "revision": LM1B_REVISION, "files": {f.name: sha256_file(f) for f in files}}
        for name, files in (("lm1b-train", train_files), ("lm1b-test", test_files))
    }

    def records() -> Iterator[tuple[str, int]]:
        # Training sentences first, so a test sentence that repeats a training one is the copy dedup drops.
        for t in parquet_texts(train_files, limit=max_train):
            yield t, 0
        for t in parquet_texts(test_files):
            yield t, 1

    return prepare_corpus(
        out,
        records,
        sources=sources,
        source_names=["lm1b-train", "lm1b-test"],
        vocab_path=vocab,
        seed=seed,
        test_size=test_size,
        block=block,
        min_words=min_words,
        extra_config={"max_train": max_train},
        test_sources=[1],
        log=log,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m amtheory.diffusion.lm1b", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--parquet-dir", type=Path, default=None, help="existing parquet shards (skips the download)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"download folder (default {DEFAULT_CACHE})")
    p.add_argument("--max-train", type=int, default=None, help="keep only the first N training rows")
    p.add_argument("--test-size", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--vocab", type=Path, default=None, help="a vocab.txt to use instead of the wheel's")
    a = p.parse_args(argv)
    try:
        root = a.parquet_dir if a.parquet_dir is not None else download_lm1b(a.cache)
        convert_lm1b(
            root, a.out, vocab_path=a.vocab, test_size=a.test_size, seed=a.seed, block=a.block, max_train=a.max_train
        )
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
