"""Per-kernel times and resources of the fused rotary attention's Triton kernels, against SDPA's flash kernel.

The code lives in :mod:`amtheory.studies.benchmarks.attention_probe`; this script is its command line:

    python experiments/probe_attention_kernels.py [--config small] [--batch 512]
"""

from amtheory.studies.benchmarks.attention_probe import main

if __name__ == "__main__":
    main()
