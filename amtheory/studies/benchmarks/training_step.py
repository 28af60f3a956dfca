"""One optimizer step of the UDDM in the formulations the training benchmark sets side by side, and the cost of
retrieval evaluation.

- plain: bf16 autocast, SDPA restricted to its math kernel, the full [B, L, V] float32 logits and log-probs
  materialised and the loss computed from them in eager mode, foreach AdamW, no compile;
- optimised: the trainer's step (:func:`amtheory.diffusion.train.optimizer_step`) with a chosen loss kernel
  ("triton", "compiled" or "eager"), block attention and residual norms (:class:`amtheory.diffusion.kernels.Kernels`).

Also the quoted plain-formulation figures the benchmark is set against (:data:`QUOTED_PLAIN`); the FLOPs of a step
under each parameter count are :func:`amtheory.studies.benchmarks.flops.step_flops`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from amtheory.core.benchmarking import timed_steps
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.loss import _nelbo_rows
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.train import (
    EMA,
    NELBOObjective,
    TrainConfig,
    make_optimizer,
    optimizer_step,
    sample_batch,
    step_generator,
)

H100_BF16_DENSE = 989e12
#: Vocabulary (bert-base-uncased), sequence length and batch of the GPU benchmark.
GPU_V, GPU_L, GPU_BATCH = 30522, 128, 512


#: The plain-formulation figures this benchmark is set against (one H100, bf16 autocast, unfused loss): ms per
#: step at the given batch and the MFU quoted with them. Which parameter count and which peak rate reproduce the
#: quoted MFU from the quoted time is printed by
#: :func:`amtheory.studies.benchmarks.training_report.print_accounting`.
QUOTED_PLAIN = {
    "tiny": {"ms": 154.0, "batch": 512, "mfu": 0.05},
    "small": {"ms": 178.0, "batch": 256, "mfu": 0.17},
}


def fresh_model(cfg: DiTConfig, device: torch.device) -> DiT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.device(device):
            model = DiT(cfg)
    return model.train()


def plain_step(model: DiT, data: torch.Tensor, batch: int, accum: int, device: torch.device) -> Callable[[int], Any]:
    """A direct training step: full logits, eager loss, math attention, foreach AdamW."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    V, L = model.config.vocab_size, model.config.length
    model.kernels = Kernels(attention="sdpa", norm="torch")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.999), weight_decay=0.0)
    ema = EMA(model, 0.9999)
    amp = device.type == "cuda"
    micro = batch // accum

    def step(i: int) -> None:
        b = sample_batch(data, batch, V, step_generator(0, 0, i, device))
        for m in range(accum):
            p = {k: v[m * micro : (m + 1) * micro] for k, v in b.items()}
            with (
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp),
                sdpa_kernel([SDPBackend.MATH]),
            ):
                # The usual formulation: a bf16 output layer under autocast, then full float32 log-probs.
                h = model.hidden(p["xt"], p["sigma"], check=False)
                logits = torch.nn.functional.linear(h, model.out.weight, model.out.bias)
                logp = logits.float().log_softmax(-1)  # [B, L, V] float32
                loss = _nelbo_rows(
                    logp.reshape(-1, V), p["x0"].reshape(-1), p["xt"].reshape(-1),
                    p["alpha"].repeat_interleave(L), p["alpha_prime"].repeat_interleave(L),
                ).mean()  # fmt: skip
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update()

    return step


def optimised_step(
    model: DiT,
    data: torch.Tensor,
    batch: int,
    accum: int,
    device: torch.device,
    chunk_rows: int,
    loss: str,
    attention: str = "auto",
    norm: str = "auto",
) -> Callable[[int], Any]:
    """The trainer's own step (amtheory.diffusion.train.optimizer_step) with compiled blocks and loss kernel;
    ``loss`` is the resolved loss kernel ("triton", "compiled" or "eager"), ``attention`` the blocks' attention
    (:data:`amtheory.diffusion.attention_kernels.ATTENTION_KERNELS`), ``norm`` their residual updates and norms
    (:data:`amtheory.diffusion.norm_kernels.NORM_KERNELS`)."""
    V = model.config.vocab_size
    tc = TrainConfig(steps=1, batch_size=batch, grad_accum=accum, chunk_rows=chunk_rows)
    model.kernels = Kernels(loss=loss, attention=attention, norm=norm)
    objective = NELBOObjective(model, chunk_rows, loss)
    opt = make_optimizer(model, tc, device)
    ema = EMA(model, 0.9999)
    amp = torch.bfloat16 if device.type == "cuda" else None

    def step(i: int) -> None:
        b = sample_batch(data, batch, V, step_generator(0, 0, i, device))
        optimizer_step(objective, opt, b, grad_accum=accum, clip=1.0, autocast_dtype=amp, dropout_seed=i, ema=ema)

    return step


def eval_cost(model: DiT, data: torch.Tensor, batch: int, device: torch.device, n: int) -> float:
    """Sequences x reverse steps per second: one denoiser call (forward + softmax) on ``batch`` sequences."""
    model.eval()
    x = data[:batch]
    sigma = torch.full((batch,), 0.5, device=device)
    amp = device.type == "cuda"

    def fwd(i: int) -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(x, sigma, check=False).softmax(-1)

    sec = timed_steps(fwd, device, repeats=n, warmup=2)
    model.train()
    return batch / sec


def reverse_chain_cost(model: DiT, data: torch.Tensor, batch: int, device: torch.device, n_steps: int) -> dict:
    """Sequences x reverse steps per second of whole retrievals: ``UniformDiffusionLM`` (bf16 forward on CUDA)
    under ``ReverseDiffusion`` from t = 1 on an ``n_steps`` grid, ancestral and argmax (float64 posterior steps)."""
    from amtheory.diffusion.backend import UniformDiffusionLM
    from amtheory.diffusion.sampler import ReverseDiffusion

    amp = torch.bfloat16 if device.type == "cuda" else None
    uddm = UniformDiffusionLM(model, vocab_size=model.config.vocab_size, batch_size=batch, autocast_dtype=amp)
    uddm.store(data[:batch])
    out = {}
    for sampler in ("ancestral", "argmax"):
        dyn = ReverseDiffusion(t_start=1.0, n_steps=n_steps, sampler=sampler)
        g = torch.Generator(device=device).manual_seed(0)
        sec = timed_steps(lambda i, dyn=dyn, g=g: dyn.run(uddm, data[:batch], generator=g), device, repeats=2, warmup=1)
        out[f"reverse_{sampler}_seq_steps_per_s"] = batch * n_steps / sec
    model.train()
    return out
