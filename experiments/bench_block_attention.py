"""The attention of one DiT block at the training benchmark's shapes, forward + backward: fused kernels and SDPA.

The code lives in :mod:`amtheory.studies.benchmarks.block_attention`; this script is its command line:

    python experiments/bench_block_attention.py      # CUDA, about a minute
"""

from amtheory.studies.benchmarks.block_attention import main

if __name__ == "__main__":
    main()
