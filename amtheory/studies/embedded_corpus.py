"""Cut the embedded default corpus (shipped inside the package) from a prepared Brown + SOTU corpus (the one
``amtheory prepare`` writes).

The first ``--n-train`` sentences of the seeded training order (so nested subsets stay nested) and the first
``--n-test`` test sentences, re-indexed, with the vocabulary file, so the main job runs with no download.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from amtheory.diffusion.data import TokenCorpus


def main(argv: list[str] | None = None) -> TokenCorpus:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--src", default="data/brown-sotu", help="prepared corpus folder")
    ap.add_argument("--out", default="amtheory/data/embedded", help="folder of the embedded corpus")
    ap.add_argument("--n-train", type=int, default=6000, help="training sentences, first of the seeded order")
    ap.add_argument("--n-test", type=int, default=1000, help="test sentences, first of the test split")
    args = ap.parse_args(argv)
    emb = cut_embedded_corpus(args.src, args.n_train, args.n_test)
    out = emb.save(args.out, vocab_path=f"{args.src}/vocab.txt")
    print(f"wrote {out}: {emb.summary()}")
    return emb


def cut_embedded_corpus(src: str, n_train: int, n_test: int) -> TokenCorpus:
    """The first ``n_train`` sentences of the seeded training order of the corpus at ``src`` and its first
    ``n_test`` test sentences, re-indexed, with a manifest that records where they came from."""
    full = TokenCorpus.load(src)
    train = full.sentences("train", n_train)
    test = full.sentences("test", n_test)
    sents = train + test
    lens = np.array([len(s) for s in sents])
    offsets = np.concatenate([[0], np.cumsum(lens)])
    tokens = torch.cat(sents)
    src_idx = torch.cat([full.sentence_index("train", n_train), full.sentence_index("test", n_test)])
    manifest = {
        "derived_from": {
            "corpus": src,
            "config": full.manifest.get("config"),
            "n_train": n_train,
            "n_test": n_test,
            "rule": "first n of the seeded training order and of the test split",
        },
        "config": full.manifest.get("config"),
    }
    emb = TokenCorpus.from_arrays(
        tokens,
        torch.from_numpy(offsets),
        test_index=torch.arange(n_train, n_train + n_test),
        train_order=torch.arange(n_train),
        vocab_size=full.vocab_size,
        specials=full.specials,
        source=full.source[src_idx],
        manifest=manifest,
    )
    return emb
