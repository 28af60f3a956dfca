"""Forward and backward times of the fused residual update + modulated LayerNorm against compiled torch.

The code lives in :mod:`amtheory.studies.benchmarks.norm_probe`; this script is its command line:

    python experiments/probe_norm_kernels.py [--configs tiny,small] [--batch 512]
"""

from amtheory.studies.benchmarks.norm_probe import main

if __name__ == "__main__":
    main()
