"""A corpus folder from a researcher's own text files, built exactly as the default corpus is.

Each file is either plain text, one document or sentence per line, or JSON lines, one object per line with the text
under ``text_field``. ``--text-format auto`` reads ``.jsonl`` and ``.ndjson`` files as JSON lines and anything else as
plain text. Blank lines are skipped. The texts then go through the one path of :func:`amtheory.diffusion.corpus_build.
build_corpus`: deduplication, the 3-word minimum, the bert-base-uncased WordPiece ids, the length limit of the block,
the seeded test split and the nested training order. The folder records each file's name and sha256, so the same
files with the same options reuse it and anything else is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from amtheory.core._checks import check_choice
from amtheory.diffusion.corpus_build import prepare_corpus
from amtheory.diffusion.data import TokenCorpus
from amtheory.diffusion.text_sources import find_vocab, sha256_file

TEXT_FORMATS = ("auto", "lines", "jsonl")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def file_format(path: Path, text_format: str) -> str:
    """``"lines"`` or ``"jsonl"`` for ``path`` under the option ``text_format`` (see the module docstring)."""
    check_choice("text_format", text_format, TEXT_FORMATS)
    if text_format != "auto":
        return text_format
    return "jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "lines"


def read_texts(path: Path, fmt: str, text_field: str) -> Iterator[str]:
    """The texts of one file, in file order; a JSON line that is not an object with a string ``text_field`` is an
    error naming the file and the line."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if fmt == "lines":
                yield line.strip()
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"text: {path} line {number} is not JSON ({e.msg})") from None
            text = obj.get(text_field) if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise ValueError(
                    f"text: {path} line {number}: expected an object with a string field {text_field!r} "
                    f"(--text-field), got {line.strip()[:80]!r}"
                )
            yield text


def source_names(paths: Sequence[Path]) -> list[str]:
    """One name per file: its file name, or its path where two files share a name."""
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


def prepare_text(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    test_size: int = 5000,
    seed: int = 0,
    block: int = 128,
    min_words: int = 3,
    text_format: str = "auto",
    text_field: str = "text",
    vocab_path: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> TokenCorpus:
    """Read ``files``, tokenize and split them into the corpus folder ``out`` (reused when already built from the
    same files and options). Returns the corpus."""
    if isinstance(files, (str, os.PathLike)) or not files:
        raise ValueError(f"files: expected one or more text files, got {files!r}")
    check_choice("text_format", text_format, TEXT_FORMATS)
    if not isinstance(text_field, str) or not text_field:
        raise ValueError(f"text_field: expected a non-empty field name, got {text_field!r}")
    paths = [Path(f) for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"text: expected readable text files, these are missing: {missing}")
    names = source_names(paths)
    formats = [file_format(p, text_format) for p in paths]
    sources = {
        name: {"file": p.name, "format": fmt, "sha256": sha256_file(p)} for name, p, fmt in zip(names, paths, formats)
    }

    def records() -> Iterator[tuple[str, int]]:
        for i, (p, fmt) in enumerate(zip(paths, formats)):
            for text in read_texts(p, fmt, text_field):
                yield text, i

    return prepare_corpus(
        out,
        records,
        sources=sources,
        source_names=names,
        vocab_path=Path(vocab_path) if vocab_path is not None else find_vocab(),
        seed=seed,
        test_size=test_size,
        block=block,
        min_words=min_words,
        extra_config={"text_field": text_field},
        log=log,
    )
