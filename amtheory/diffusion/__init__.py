"""Uniform-noise discrete diffusion language models (UDDMs) as associative memories.

Modules: ``schedule`` (alpha_t, sigma_t), ``model`` (the DiT denoiser), ``loss`` (the continuous-time NELBO and
the training noise), ``train`` (trainer and CLI), ``checkpoint`` (safetensors checkpoints), ``data`` (token
corpora), and the retrieval side (``denoiser``, ``empirical``, ``backend``, ``sampler``, ``distance``). Import
them directly; this package imports nothing on its own, so that each piece loads without the others.
"""
