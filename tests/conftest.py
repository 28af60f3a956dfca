"""Test-wide settings: property-based tests are derandomized and have no deadline, so a run is repeatable and a
slow shared machine does not fail them (per-test settings may only tighten the example counts). Without a GPU,
Triton's interpreter is switched on before anything imports Triton, so the Triton kernels (the loss kernels, the
modern Hopfield attention) run on CPU tensors in the tests; on a CUDA machine they are compiled."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from hypothesis import settings  # noqa: E402

settings.register_profile("amtheory", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("amtheory")
