"""A prepared corpus folder is read back only as it was written: every array is checked against the sha256 its
manifest records, a damaged or swapped file is named, and no array is ever unpickled."""

import json
import shutil

import numpy as np
import pytest
import torch

from amtheory.diffusion.data import TokenCorpus
from amtheory.studies.memorization import embedded_corpus_path

ARRAYS = ("tokens", "offsets", "test_index", "train_order", "source")


def _corpus(tmp_path):
    g = torch.Generator().manual_seed(0)
    sentences = [[int(t) for t in torch.randint(5, 50, (int(n),), generator=g)] for n in range(3, 23)]
    return TokenCorpus.from_sentences(sentences, test_size=4, generator=g).save(tmp_path / "c")


def test_saved_corpus_records_every_array_checksum(tmp_path):
    path = _corpus(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert sorted(manifest["checksums"]) == sorted(f"{k}.npy" for k in ARRAYS)
    again = TokenCorpus.load(path)
    assert again.n_sentences == 20


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_damaged_array_is_named(tmp_path, name, how):
    path = _corpus(tmp_path)
    f = path / f"{name}.npy"
    data = bytearray(f.read_bytes())
    if how == "flip":
        data[-1] ^= 0x01
    else:
        data = data[: len(data) - 3]
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{name}.npy"):
        TokenCorpus.load(path)


def test_an_array_swapped_in_from_another_corpus_is_named(tmp_path):
    path = _corpus(tmp_path)
    other = tmp_path / "other"
    g = torch.Generator().manual_seed(1)
    sentences = [[int(t) for t in torch.randint(5, 50, (int(n),), generator=g)] for n in range(3, 23)]
    TokenCorpus.from_sentences(sentences, test_size=4, generator=g).save(other)
    shutil.copyfile(other / "train_order.npy", path / "train_order.npy")
    with pytest.raises(ValueError, match="train_order.npy"):
        TokenCorpus.load(path)


def test_an_object_array_is_never_unpickled(tmp_path):
    path = _corpus(tmp_path)
    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (marker.touch, ())

    np.save(path / "source.npy", np.array([Planted()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="source.npy"):
        TokenCorpus.load(path)
    assert not marker.exists()


def test_the_embedded_corpus_records_its_checksums():
    manifest = json.loads((embedded_corpus_path() / "manifest.json").read_text())
    assert sorted(manifest["checksums"]) == sorted(f"{k}.npy" for k in ARRAYS)
    TokenCorpus.load(embedded_corpus_path())
