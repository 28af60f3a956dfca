"""The modules behind the scripts of experiments/, which are only their command lines, by the script's name."""

import importlib

#: Script name -> the module that holds the study, the results page or the benchmark.
MODULES = {
    "capacity": "amtheory.studies.hopfield.capacity",
    "basins_vs_load": "amtheory.studies.hopfield.basins_vs_load",
    "dense_scaling": "amtheory.studies.hopfield.dense_scaling",
    "memorization": "amtheory.studies.memorization.command",
    "slurm_memorization": "amtheory.studies.memorization.slurm",
    "summarize_hopfield": "amtheory.reports.hopfield",
    "summarize_memorization": "amtheory.reports.memorization",
    "make_embedded_corpus": "amtheory.studies.embedded_corpus",
    "bench_classical_gpu": "amtheory.studies.benchmarks.classical",
    "bench_backends_gpu": "amtheory.studies.benchmarks.backends",
    "bench_modern_hopfield": "amtheory.studies.benchmarks.modern",
    "bench_uddm_train": "amtheory.studies.benchmarks.training_bench",
    "bench_loss_kernels": "amtheory.studies.benchmarks.loss_kernels",
    "bench_block_attention": "amtheory.studies.benchmarks.block_attention",
    "probe_attention_kernels": "amtheory.studies.benchmarks.attention_probe",
    "probe_norm_kernels": "amtheory.studies.benchmarks.norm_probe",
    "diagnose_training": "amtheory.studies.benchmarks.training_diagnosis",
    "bench_group_chain": "amtheory.studies.benchmarks.group_chain",
    "bench_hopfield_family": "amtheory.studies.benchmarks.hopfield_family",
    "bench_group_train": "amtheory.studies.benchmarks.group_training",
    "bench_group_update": "amtheory.studies.benchmarks.group_update",
    "group_step_floor": "amtheory.studies.benchmarks.step_floor",
    "bench_lockstep": "amtheory.studies.benchmarks.lockstep",
    "bench_chain_step": "amtheory.studies.benchmarks.chain_step",
    "bench_ddp_scaling": "amtheory.studies.benchmarks.ddp_scaling",
    "compare_results": "amtheory.core.sweep.compare",
}


def load_experiment(name: str):
    """The module behind ``experiments/<name>.py``."""
    return importlib.import_module(MODULES[name])
