"""Cut the embedded default corpus (shipped inside the package) from a prepared Brown + SOTU corpus.

The code lives in :mod:`amtheory.studies.embedded_corpus`; this script is its command line:

    python -m amtheory.diffusion.prepare --out data/brown-sotu
    python experiments/make_embedded_corpus.py --src data/brown-sotu --out amtheory/data/embedded
"""

from amtheory.studies.embedded_corpus import main

if __name__ == "__main__":
    main()
