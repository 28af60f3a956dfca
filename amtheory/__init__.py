"""amtheory: Hopfield networks and language diffusion models side by side as associative memories.

Importing it imports every backend module, the diffusion ones included; each registers itself
(``amtheory.core.registry``), so ``available_backends()`` is complete once ``amtheory`` is imported."""

from amtheory.backends.classical import ClassicalHopfield
from amtheory.backends.dense import DenseAM
from amtheory.backends.modern import ModernHopfield
from amtheory.core import theory
from amtheory.core._checks import NonFiniteError
from amtheory.core.basins import BasinRadius, basin_radius, recovery_curve, wilson_interval
from amtheory.core.corruption import Corrupted, corrupt
from amtheory.core.dynamics import Async, Dynamics, RetrievalResult, Sync, retrieve
from amtheory.core.entropy import conditional_entropy, entropy_from_probs
from amtheory.core.exact import ExactBasins, exact_basins
from amtheory.core.interface import AssociativeMemory, LocalFields, NotStoredError
from amtheory.core.metrics import classify_outcome, overlap, records_to_frame, retrieval_records
from amtheory.core.patterns import (
    biased_binary,
    correlated_families,
    iid_patterns,
    spins_to_tokens,
    stored_and_unseen,
    tokens_to_spins,
)
from amtheory.core.registry import available_backends, register_backend
from amtheory.core.sweep import cell_key, derive_seed, load_results, run_sweep
from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.empirical import EmpiricalDenoiser

__all__ = [
    "AssociativeMemory",
    "Async",
    "BasinRadius",
    "ClassicalHopfield",
    "Corrupted",
    "DenseAM",
    "EmpiricalDenoiser",
    "Dynamics",
    "ExactBasins",
    "LocalFields",
    "ModernHopfield",
    "NonFiniteError",
    "NotStoredError",
    "RetrievalResult",
    "Sync",
    "UniformDiffusionLM",
    "available_backends",
    "basin_radius",
    "biased_binary",
    "cell_key",
    "classify_outcome",
    "conditional_entropy",
    "corrupt",
    "correlated_families",
    "derive_seed",
    "entropy_from_probs",
    "exact_basins",
    "iid_patterns",
    "load_results",
    "overlap",
    "records_to_frame",
    "recovery_curve",
    "register_backend",
    "retrieval_records",
    "retrieve",
    "run_sweep",
    "spins_to_tokens",
    "stored_and_unseen",
    "theory",
    "tokens_to_spins",
    "wilson_interval",
]
