"""Cut the embedded default corpus (shipped inside the package) from a prepared Brown + SOTU corpus.

    python -m amtheory.diffusion.prepare --out data/brown-sotu
    python experiments/make_embedded_corpus.py --src data/brown-sotu --out amtheory/data/embedded

The first ``--n-train`` sentences of the seeded training order (so nested subsets stay nested) and the first
``--n-test`` test sentences, re-indexed, with the vocabulary file, so the main job runs with no download.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from amtheory.diffusion.data import TokenCorpus


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="data/brown-sotu")
    ap.add_argument("--out", default="amtheory/data/embedded")
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--n-test", type=int, default=1000)
    args = ap.parse_args(argv)
    full = TokenCorpus.load(args.src)
    train = full.sentences("train", args.n_train)
    test = full.sentences("test", args.n_test)
    sents = train + test
    lens = np.array([len(s) for s in sents])
    offsets = np.concatenate([[0], np.cumsum(lens)])
    tokens = torch.cat(sents)
    src_idx = torch.cat([full.sentence_index("train", args.n_train), full.sentence_index("test", args.n_test)])
    manifest = {
        "derived_from": {
            "corpus": args.src,
            "config": full.manifest.get("config"),
            "n_train": args.n_train,
            "n_test": args.n_test,
            "rule": "first n of the seeded training order and of the test split",
        },
        "config": full.manifest.get("config"),
    }
    emb = TokenCorpus.from_arrays(
        tokens,
        torch.from_numpy(offsets),
        test_index=torch.arange(args.n_train, args.n_train + args.n_test),
        train_order=torch.arange(args.n_train),
        vocab_size=full.vocab_size,
        specials=full.specials,
        source=full.source[src_idx],
        manifest=manifest,
    )
    out = emb.save(args.out, vocab_path=f"{args.src}/vocab.txt")
    print(f"wrote {out}: {emb.summary()}")


if __name__ == "__main__":
    main()
