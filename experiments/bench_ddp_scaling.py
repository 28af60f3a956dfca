"""Scale-out of one training run over 1, 2, 4 and 8 GPUs (torchrun + DDP, the same global batch at every count):
steady-state tokens/s and efficiency. The benchmark and its options: ``amtheory.studies.benchmarks.ddp_scaling``.

    python experiments/bench_ddp_scaling.py --out /tmp/out                  # CUDA: tiny and small on 1, 2, 4, 8 GPUs
    python experiments/bench_ddp_scaling.py --device cpu --gpus 1,2 --presets cpu-micro --length 32 \\
        --batch-size 16 --steps 20 --log-every 2 --out /tmp/d                # gloo processes on a CPU (the code path)
"""

from amtheory.studies.benchmarks.ddp_scaling import main

if __name__ == "__main__":
    main()
