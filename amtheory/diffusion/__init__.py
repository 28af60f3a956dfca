"""Uniform-noise discrete diffusion language models (UDDMs) as associative memories.

Modules: ``schedule`` (alpha_t, sigma_t), ``model`` (the DiT denoiser), ``attention_kernels``, ``norm_kernels`` and
``loss_kernels`` (its Triton kernels on CUDA), ``kernels`` (which of them a model and its loss use), ``loss`` (the
continuous-time NELBO and the training noise), ``train`` and ``train_config`` (trainer, CLI and settings),
``checkpoint`` (safetensors checkpoints), ``data`` and ``vocab`` (token corpora, special tokens and vocabulary
compaction), and the retrieval side (``denoiser``, ``empirical``, ``backend``, ``sampler``, ``distance``), whose main
names are re-exported here. The model, trainer and data modules are imported only when used.
"""

from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.denoiser import Denoiser
from amtheory.diffusion.distance import kl_from_memorization
from amtheory.diffusion.empirical import EmpiricalDenoiser
from amtheory.diffusion.sampler import ReverseDiffusion, corrupt_forward, fixed_point_share, generate

__all__ = [
    "Denoiser",
    "EmpiricalDenoiser",
    "ReverseDiffusion",
    "UniformDiffusionLM",
    "corrupt_forward",
    "fixed_point_share",
    "generate",
    "kl_from_memorization",
]
