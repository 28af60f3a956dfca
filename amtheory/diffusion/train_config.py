"""The optimisation settings of a UDDM training run (:class:`TrainConfig`), stored with every checkpoint, and which
of them may change when a run resumes. Re-exported by :mod:`amtheory.diffusion.train`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from amtheory.core._checks import check_float, check_int
from amtheory.diffusion.kernels import ATTENTION_KERNELS, LOSS_KERNELS, NORM_KERNELS

__all__ = ["LOSS_KERNELS", "RESUMABLE_CHANGES", "TrainConfig"]

#: TrainConfig fields that may change when a run is resumed (they do not alter the optimisation; ``steps`` may not
#: fall below the checkpoint's step). Every other field, the model config, the data and the vocabulary must match.
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "compile",
        "chunk_rows",
        "loss_kernel",
        "attention",
        "norm",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``batch_size`` is the global batch (sequences per optimizer step, all ranks)."""

    steps: int
    """Optimizer steps in all (a resumed run continues up to this step)."""
    batch_size: int
    """Global batch: sequences per optimizer step, summed over ranks and gradient-accumulation micro-batches."""
    lr: float = 3e-4
    """AdamW learning rate after warm-up."""
    warmup: int = 2500
    """Steps of linear learning-rate warm-up (0: none)."""
    clip: float = 1.0
    """Gradient-norm clipping threshold."""
    ema: float = 0.9999
    """Decay of the exponential moving average of the weights (the EMA weights are the ones evaluated)."""
    ema_warmup: bool = True
    """EMA decay min(ema, (1 + n)/(10 + n)) after n updates, so short runs do not keep the initial weights."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    seed: int = 0
    """Seed of the initial weights, the batches and the dropout masks."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (the last step is always saved)."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept on disk."""
    log_every: int = 50
    """Steps between lines of log.jsonl (the mean loss over the interval)."""
    bf16: bool = True
    """bf16 autocast on CUDA (a CPU run stays float32 unless ``cpu_bf16``)."""
    cpu_bf16: bool = False
    """With ``bf16``, autocast on CPU too (slow; it exists to study bf16 numerics without a GPU)."""
    compile: bool = False
    """torch.compile the model's blocks and the loss kernel."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (``batch_size`` must be a multiple of it)."""
    chunk_rows: int = 16384
    """Rows of logits per chunk of the loss (a chunk holds [chunk_rows, V] float32 logits and their gradient)."""
    # At V = 30,522, 16,384 rows run about as fast as 32,768 with less memory, and faster than 4,096
    # (see benchmarks/README.md).
    loss_kernel: str = "auto"
    """How the chunked loss is computed from each chunk's logits, one of auto, triton, compiled, eager (the same
    loss and gradient up to rounding); auto: triton on CUDA when Triton is installed, else compiled with
    ``compile``, else eager. Triton on a CPU needs TRITON_INTERPRET=1 (slow)."""
    attention: str = "auto"
    """The blocks' attention, one of auto, fused, sdpa (the same map up to rounding); auto: fused Triton kernels
    on CUDA under bf16 autocast, else SDPA (:data:`amtheory.diffusion.attention_kernels.ATTENTION_KERNELS`)."""
    norm: str = "auto"
    """The blocks' residual updates and norms, one of auto, fused, torch (the same map up to rounding; the fused
    kernels draw their dropout masks from their own generator); auto: fused Triton kernels on CUDA under bf16
    autocast for models at least 512 wide, else torch operations
    (:data:`amtheory.diffusion.norm_kernels.NORM_KERNELS`)."""

    def __post_init__(self) -> None:
        check_int("steps", self.steps, minimum=0)
        check_int("batch_size", self.batch_size, minimum=1)
        check_float("lr", self.lr, minimum=0.0, strict_min=True)
        check_int("warmup", self.warmup, minimum=0)
        check_float("clip", self.clip, minimum=0.0)
        check_float("ema", self.ema, minimum=0.0, maximum=1.0, strict_max=True)
        check_float("weight_decay", self.weight_decay, minimum=0.0)
        check_int("seed", self.seed, minimum=0)
        check_int("checkpoint_every", self.checkpoint_every, minimum=1)
        check_int("keep_checkpoints", self.keep_checkpoints, minimum=1)
        check_int("log_every", self.log_every, minimum=1)
        check_int("grad_accum", self.grad_accum, minimum=1)
        check_int("chunk_rows", self.chunk_rows, minimum=1)
        if self.loss_kernel not in LOSS_KERNELS:
            raise ValueError(f"loss_kernel: expected one of {LOSS_KERNELS}, got {self.loss_kernel!r}")
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention: expected one of {ATTENTION_KERNELS}, got {self.attention!r}")
        if self.norm not in NORM_KERNELS:
            raise ValueError(f"norm: expected one of {NORM_KERNELS}, got {self.norm!r}")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size: expected a multiple of grad_accum = {self.grad_accum}, got {self.batch_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        return TrainConfig(**d)

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``warmup`` steps, then constant."""
        return self.lr * min(1.0, (step + 1) / self.warmup) if self.warmup else self.lr
