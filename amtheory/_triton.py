"""Triton, where it is installed, and whether its interpreter is on: shared by the package's Triton kernels
(``amtheory.backends._triton_attention``, ``amtheory.diffusion.loss_kernels``).

Kernel sources refer to ``triton`` and ``tl`` as module globals (Triton's compiler and interpreter look them up
there), so those modules import both names from here. ``INTERPRET`` is ``TRITON_INTERPRET`` as set when Triton was
first imported (Triton decides it then): kernels then run in its interpreter on CPU tensors, exact but slow.
"""

import os

try:  # optional dependency: the rest of the package works without it
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the installation
    triton = tl = None

INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() not in ("", "0", "false")
