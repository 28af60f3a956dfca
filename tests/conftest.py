"""Test-wide settings: property-based tests are derandomized and have no deadline, so a run is repeatable and a
slow shared machine does not fail them (per-test settings may only tighten the example counts). Without a GPU,
Triton's interpreter is switched on before anything imports Triton, so the Triton kernels (the loss and attention
kernels of the diffusion model, the modern Hopfield attention) run on CPU tensors in the tests; on a CUDA machine
they are compiled. Where this Triton's interpreter cannot run them (the run's header says why), the kernels' CPU
tests skip."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch

#: The one known interpreter defect the kernels' CPU tests skip for (Triton 3.6 under numpy 2.4 and 2.5): any
#: other failure of the probe leaves the interpreter on, so the kernels' tests run and fail with their own errors.
KNOWN_INTERPRETER_DEFECT = "only 0-dimensional arrays can be converted to Python scalars"


def triton_interpreter_status() -> str:
    """ "ok", "unusable with ..." for the known defect, or "probe failed (...)" (tests still use the interpreter).
    Probed once in a subprocess (``_triton_probe.py``) and kept in the environment, so that pytest-xdist workers do
    not probe again."""
    key = "AMTHEORY_TRITON_INTERPRETER"
    if key not in os.environ:
        if importlib.util.find_spec("triton") is None:
            status = "Triton is not installed"
        else:
            probe = Path(__file__).with_name("_triton_probe.py")
            env = dict(os.environ, TRITON_INTERPRET="1")
            try:
                r = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=300)
                last = (r.stderr.strip().splitlines() or ["no message"])[-1][:200]
                if r.returncode == 0:
                    status = "ok"
                elif KNOWN_INTERPRETER_DEFECT in r.stderr:
                    status = f"unusable with this Triton and numpy ({last})"
                else:
                    status = f"probe failed ({last})"
            except subprocess.TimeoutExpired:
                status = "probe failed (it did not finish in 300 s)"
        os.environ[key] = status
    return os.environ[key]


if not torch.cuda.is_available() and not triton_interpreter_status().startswith("unusable"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_report_header(config):
    return f"Triton interpreter: {triton_interpreter_status()}"


from hypothesis import settings  # noqa: E402

settings.register_profile("amtheory", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("amtheory")
