"""amtheory: Hopfield networks and language diffusion models side by side as associative memories."""

from amtheory.backends.base import AssociativeMemory, LocalFields, NotStoredError
from amtheory.backends.classical import ClassicalHopfield
from amtheory.corruption import Corrupted, corrupt
from amtheory.dynamics import Async, Dynamics, RetrievalResult, Sync, retrieve
from amtheory.metrics import classify_outcome, overlap, records_to_frame, retrieval_records
from amtheory.patterns import (
    biased_binary,
    correlated_families,
    iid_patterns,
    spins_to_tokens,
    stored_and_unseen,
    tokens_to_spins,
)

__all__ = [
    "AssociativeMemory",
    "Async",
    "ClassicalHopfield",
    "Corrupted",
    "Dynamics",
    "LocalFields",
    "NotStoredError",
    "RetrievalResult",
    "Sync",
    "biased_binary",
    "classify_outcome",
    "corrupt",
    "correlated_families",
    "iid_patterns",
    "overlap",
    "records_to_frame",
    "retrieval_records",
    "retrieve",
    "spins_to_tokens",
    "stored_and_unseen",
    "tokens_to_spins",
]
