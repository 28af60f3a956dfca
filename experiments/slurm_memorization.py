"""The memorization study as a Slurm job array through submitit: one array element per model still to train and
measure, the tables written as a local run writes them (a second submission submits only what is missing).

Run: ``python experiments/slurm_memorization.py --preset paper --out results/memorization --partition gpu
--time 720 --gpus-per-task 1 --array-parallelism 8 --logs logs/memorization/%j [--no-wait]`` (``--help`` for every
option; ``--cluster local`` runs the array as processes of this machine). The study is
:mod:`amtheory.studies.memorization`; this script is the command line of :mod:`amtheory.studies.memorization.slurm`.
"""

from amtheory.studies.memorization.slurm import main

if __name__ == "__main__":
    main()
