"""Which implementation runs each kernel-backed part of a DiT training step: :class:`Kernels`, one explicit value
that the trainer builds from its settings and hands to the model (attention, norms) and to the objective (loss).

Each field is a name. "auto" picks by the rules of the part's module: the loss once per run by device
(:meth:`Kernels.resolved`), attention and norms per call by the device, dtype, shape and autocast state of the
tensors (:func:`amtheory.diffusion.attention_kernels.block_attention`,
:func:`amtheory.diffusion.norm_kernels.use_fused_norm`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from amtheory.diffusion.attention_kernels import ATTENTION_KERNELS
from amtheory.diffusion.norm_kernels import NORM_KERNELS

__all__ = ["ATTENTION_KERNELS", "LOSS_KERNELS", "NORM_KERNELS", "Kernels", "resolve_loss_kernel"]

#: How the chunked loss is computed from each chunk's logits: "auto", "triton" (two Triton kernels), "compiled"
#: (the loss kernel under torch.compile) or "eager".
LOSS_KERNELS = ("auto", "triton", "compiled", "eager")


def resolve_loss_kernel(name: str, device: torch.device | str, *, compile: bool = False) -> str:
    """The concrete loss kernel ("triton", "compiled" or "eager") that ``name`` picks on ``device``: "auto" is
    triton on CUDA when Triton is installed, else compiled with ``compile``, else eager; an error when "triton"
    cannot run there."""
    from amtheory.diffusion import loss_kernels

    if name not in LOSS_KERNELS:
        raise ValueError(f"loss: expected one of {LOSS_KERNELS}, got {name!r}")
    if name == "auto":
        on_gpu = torch.device(device).type == "cuda" and loss_kernels.available(device)
        name = "triton" if on_gpu else ("compiled" if compile else "eager")
    if name == "triton" and not loss_kernels.available(device):
        raise ValueError(
            f"loss_kernel: 'triton' needs Triton and a CUDA device (or TRITON_INTERPRET=1 on a CPU), got "
            f"device {device} with Triton {'installed' if loss_kernels.triton is not None else 'missing'}"
        )
    return name


@dataclass(frozen=True)
class Kernels:
    """The kernel choices of a DiT and its loss: ``loss`` (:data:`LOSS_KERNELS`), ``attention``
    (:data:`ATTENTION_KERNELS`: "auto", "fused" or "sdpa") and ``norm`` (:data:`NORM_KERNELS`: "auto", "fused"
    or "torch"). A :class:`~amtheory.diffusion.model.DiT` reads ``attention`` and ``norm`` from its ``kernels``
    attribute; the loss objective takes ``loss`` resolved by :meth:`resolved`."""

    loss: str = "auto"
    attention: str = "auto"
    norm: str = "auto"

    def __post_init__(self) -> None:
        for field, names in (("loss", LOSS_KERNELS), ("attention", ATTENTION_KERNELS), ("norm", NORM_KERNELS)):
            value = getattr(self, field)
            if not isinstance(value, str) or value not in names:
                raise ValueError(f"{field}: expected one of {names}, got {value!r}")

    def resolved(self, device: torch.device | str, *, compile: bool = False) -> Kernels:
        """These choices with ``loss`` made concrete for ``device`` (:func:`resolve_loss_kernel`)."""
        return replace(self, loss=resolve_loss_kernel(self.loss, device, compile=compile))
