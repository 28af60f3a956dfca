"""Triton, where it is installed, and whether its interpreter is on: shared by the package's Triton kernels
(``amtheory.backends._triton_attention``, ``amtheory.diffusion.loss_kernels``, ``attention_kernels``,
``norm_kernels``).

Kernel sources refer to ``triton`` and ``tl`` as module globals (Triton's compiler and interpreter look them up
there), so those modules import both names from here. ``INTERPRET`` is ``TRITON_INTERPRET`` as set when Triton was
first imported (Triton decides it then): kernels then run in its interpreter on CPU tensors, exact but slow.
"""

import os

import torch

try:  # optional dependency: the rest of the package works without it
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the installation
    triton = tl = None

INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() not in ("", "0", "false")


def can_run(device: torch.device | str) -> bool:
    """Whether the package's Triton kernels can run on ``device``: Triton importable and a CUDA device that torch
    can use (kernels compiled), or a CPU device under the interpreter (exact but slow: for tests)."""
    if triton is None:
        return False
    dev = torch.device(device)
    if INTERPRET:
        return dev.type == "cpu"
    return dev.type == "cuda" and torch.cuda.is_available()
