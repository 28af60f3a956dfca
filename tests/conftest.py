"""Test-wide settings. Property-based tests run under the hypothesis profile ``amtheory`` (what CI runs):
derandomized and without a deadline, so a run is repeatable and a slow shared machine does not fail them. The
``thorough`` profile draws ten times as many examples, afresh on every run; run it by hand with

    HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest -n 2 tests/

(or ``--hypothesis-profile thorough``; ``--hypothesis-show-statistics`` adds what was drawn). A test that needs its
own example count takes it from ``amtheory.testing.profiles.property_settings``, which scales it with the profile;
a property test whose settings were made any other way fails.

Without a GPU, Triton's interpreter is switched on before anything imports Triton, so the Triton kernels (the loss
and attention kernels of the diffusion model, the modern Hopfield attention) run on CPU tensors in the tests; on a
CUDA machine they are compiled. Where this Triton's interpreter cannot run them (the run's header says why), the
kernels' CPU tests skip."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
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
    from hypothesis import settings

    return [
        f"Triton interpreter: {triton_interpreter_status()}",
        f"hypothesis profile: {settings.get_current_profile_name()} (max_examples {settings.default.max_examples})",
    ]


from hypothesis import settings  # noqa: E402

from amtheory.testing.profiles import is_profile_scaled, register_profiles  # noqa: E402

register_profiles()
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "amtheory"))


def pytest_runtest_setup(item):
    """Fail a property test whose settings would fix its example count (or randomization) whatever the profile:
    under ``thorough`` it would silently run fewer examples than the profile asks for."""
    test = getattr(item, "obj", None)
    if hasattr(test, "hypothesis") and not is_profile_scaled(test._hypothesis_internal_use_settings):
        pytest.fail(
            f"{item.name}: its hypothesis settings are not made by amtheory.testing.profiles.property_settings, "
            "so they do not scale with the loaded profile",
            pytrace=False,
        )
