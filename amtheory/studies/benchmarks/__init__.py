"""Benchmarks and probes of the backends, the UDDM's training step and its GPU kernels, and the training diagnosis.

Each module with a ``main(argv)`` is the body of a command line:

* :mod:`.classical`, :mod:`.backends`, :mod:`.modern`: retrieval throughput of the Hopfield-family backends;
* :mod:`.training_bench` (with :mod:`.training_step` and :mod:`.training_report`): the UDDM's training step;
* :mod:`.loss_kernels`, :mod:`.block_attention`: the loss and attention kernels against their torch counterparts;
* :mod:`.attention_probe`, :mod:`.norm_probe`: per-kernel launch settings of the attention and norm kernels;
* :mod:`.training_diagnosis` (with :mod:`.diagnosis_probes`): where a training step's time goes and what happens
  at its first non-finite gradient;
* :mod:`.group_training`: group training against one model at a time;
* :mod:`.ddp_scaling`: one training run over 1, 2, 4 and 8 GPUs through torchrun, and its parallel efficiency.

:mod:`.measure` holds the measurement helpers they share.
"""
