"""The one path from texts to a corpus folder, shared by every source (the default Brown + State of the Union
corpus, LM1B, a researcher's own text files): deduplication, WordPiece ids, filters, the seeded test split and the
nested training order, and the check that an existing folder was built from the same configuration."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amtheory.core._checks import check_int
from amtheory.diffusion.data import FORMAT_VERSION, TokenCorpus, split_indices
from amtheory.diffusion.text_sources import dedup_texts, load_tokenizer, sha256_file, tokenize, vocab_specials


def corpus_config(
    *, sources: dict[str, Any], vocab_sha256: str, seed: int, test_size: int, block: int, min_words: int, **extra
) -> dict[str, Any]:
    """Everything that determines the folder's content; an existing folder with the same config is reused."""
    return {
        "format": FORMAT_VERSION,
        "sources": sources,
        "vocab_sha256": vocab_sha256,
        "seed": seed,
        "test_size": test_size,
        "block": block,
        "min_words": min_words,
        **extra,
    }


def already_prepared(out: Path, config: dict[str, Any], log: Callable[[str], None]) -> TokenCorpus | None:
    """The corpus in ``out`` if it was built with ``config`` (then reported through ``log``), else None."""
    if not existing_matches(out, config):
        return None
    corpus = TokenCorpus.load(out)
    log(f"{out} is already prepared with this configuration; nothing to do")
    log(report(corpus, out))
    return corpus


def existing_matches(out: Path, config: dict[str, Any]) -> bool:
    """Whether ``out`` is a finished corpus folder built from ``config``; a different one is an error."""
    man = out / "manifest.json"
    if not out.exists():
        return False
    if not man.is_file():
        raise ValueError(f"out: {str(out)!r} exists but is not a corpus folder (no manifest.json); remove it")
    have = json.loads(man.read_text()).get("config")
    if have == config:
        return True
    raise ValueError(
        f"out: {str(out)!r} holds a corpus built with a different configuration; remove it or choose another "
        f"folder (stored: {json.dumps(have, sort_keys=True)[:400]}; asked: {json.dumps(config, sort_keys=True)[:400]})"
    )


def build_corpus(
    records: Iterable[tuple[str, int]],
    out: str | os.PathLike,
    *,
    source_names: Sequence[str],
    vocab_path: str | os.PathLike,
    config: dict[str, Any],
    test_sources: Sequence[int] | None = None,
    log=print,
) -> TokenCorpus:
    """Texts -> a corpus folder (the one code path for every source).

    ``records`` yields ``(text, source_id)`` in corpus order (``source_id`` indexes ``source_names``). Dedup and
    the 3-word minimum come first, then WordPiece ids, then pieces over ``block - 2`` tokens and repeated id
    sequences are dropped (different spellings can give the same ids, e.g. Brown's `` `` `` vs ``"``). The test
    split is drawn from sentences whose source is in ``test_sources`` (all when None) by ``split_indices`` with
    ``torch.Generator().manual_seed(seed)``. ``config`` (see ``corpus_config``) is stored in the manifest.
    """
    out = Path(out)
    seed = check_int("config['seed']", config["seed"])
    test_size = check_int("config['test_size']", config["test_size"], minimum=0)
    block = check_int("config['block']", config["block"], minimum=3)
    t0 = time.perf_counter()
    texts, srcs, counts = dedup_texts(records, min_words=config["min_words"])
    log(
        f"  {counts['pieces']} pieces, {counts['short']} under {config['min_words']} words, "
        f"{counts['duplicate_text']} duplicate texts -> {len(texts)} texts ({time.perf_counter() - t0:.1f}s)"
    )

    tokenizer = load_tokenizer(vocab_path)
    specials = vocab_specials(tokenizer)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=False)
    t1 = time.perf_counter()
    ids = tokenize(tokenizer, texts)
    log(f"  tokenized {len(ids)} texts ({time.perf_counter() - t1:.1f}s)")

    keep: list[np.ndarray] = []
    keep_src: list[int] = []
    seen: set[bytes] = set()
    counts.update(too_long=0, duplicate_ids=0, unk_tokens=0)
    for a, s in zip(ids, srcs):
        if a.size > block - 2:
            counts["too_long"] += 1
            continue
        key = a.tobytes()
        if key in seen:
            counts["duplicate_ids"] += 1
            continue
        seen.add(key)
        keep.append(a)
        keep_src.append(s)
        counts["unk_tokens"] += int((a == specials.unk).sum())
    if not keep:
        raise ValueError("records: no sentence survived the filters")
    lens = np.fromiter((a.size for a in keep), dtype=np.int64, count=len(keep))
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tokens = np.concatenate(keep).astype(np.int64)
    source = np.asarray(keep_src, dtype=np.int64)
    per_source = {name: int((source == i).sum()) for i, name in enumerate(source_names)}

    eligible = None
    if test_sources is not None:
        eligible = torch.from_numpy(np.isin(source, np.asarray(list(test_sources), dtype=np.int64)))
    test, train = split_indices(len(keep), test_size, torch.Generator().manual_seed(seed), eligible=eligible)
    manifest = {
        "config": config,
        "source_names": list(source_names),
        "counts": {**counts, "per_source": per_source},
        "seed": seed,
        "vocab_sha256": sha256_file(vocab_path),
        "split": "test = first test_size eligible entries of torch.randperm(N, Generator().manual_seed(seed)); "
        "train_order = the rest of that permutation",
    }
    corpus = TokenCorpus.from_arrays(
        tokens,
        offsets,
        test_index=test,
        train_order=train,
        vocab_size=vocab_size,
        specials=specials,
        source=source,
        manifest=manifest,
    )
    corpus.save(out, vocab_path=vocab_path)
    return corpus


def report(corpus: TokenCorpus, out: Path, seconds: float | None = None) -> str:
    """A short human summary of a corpus folder."""
    s = corpus.manifest.get("counts", corpus.summary())
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    lines = [
        f"corpus {out}: {corpus.n_sentences} sentences ({s.get('per_source', {})}), "
        f"test {corpus.n_test}, train pool {corpus.n_train}",
        f"  tokens {corpus.tokens.numel()}, mean {float(corpus.lengths.double().mean()):.2f}, "
        f"median {float(corpus.lengths.double().median()):.0f}, max {int(corpus.lengths.max())}; "
        f"packed 128-blocks train {corpus.n_blocks_available('train')}, test {corpus.n_blocks_available('test')}",
        f"  size on disk {size / 1e6:.2f} MB" + (f", built in {seconds:.1f}s" if seconds is not None else ""),
    ]
    return "\n".join(lines)


def prepare_corpus(
    out: str | os.PathLike,
    records: Callable[[], Iterable[tuple[str, int]]],
    *,
    sources: dict[str, Any],
    source_names: Sequence[str],
    vocab_path: str | os.PathLike,
    seed: int,
    test_size: int,
    block: int,
    min_words: int,
    extra_config: dict[str, Any] | None = None,
    test_sources: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
) -> TokenCorpus:
    """The common course of every corpus source: check the options, reuse ``out`` when it was built from the same
    configuration (``sources`` describes the inputs, with their checksums), else build it from ``records()`` (called
    only then) and report it."""
    check_int("test_size", test_size, minimum=0)
    check_int("seed", seed)
    check_int("block", block, minimum=3)
    t0 = time.perf_counter()
    out = Path(out)
    config = corpus_config(
        sources=sources,
        vocab_sha256=sha256_file(vocab_path),
        seed=seed,
        test_size=test_size,
        block=block,
        min_words=min_words,
        **(extra_config or {}),
    )
    prepared = already_prepared(out, config, log)
    if prepared is not None:
        return prepared
    corpus = build_corpus(
        records(),
        out,
        source_names=source_names,
        vocab_path=vocab_path,
        config=config,
        test_sources=test_sources,
        log=log,
    )
    log(report(corpus, out, time.perf_counter() - t0))
    return corpus
