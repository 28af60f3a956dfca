"""The UDDM's chunked NELBO on the GPU: the Triton row kernels against the compiled (inductor) loss kernel.

The code lives in :mod:`amtheory.studies.benchmarks.loss_kernels`; this script is its command line:

    python experiments/bench_loss_kernels.py --sweep       # one H100: about 2 minutes
"""

from amtheory.studies.benchmarks.loss_kernels import main

if __name__ == "__main__":
    main()
