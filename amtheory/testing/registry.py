"""Every backend the conformance suite runs over. Registering a case here covers a new backend at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amtheory.core.interface import AssociativeMemory


@dataclass(frozen=True)
class BackendCase:
    """How to build one configured backend for the conformance suite.

    ``vocab_sizes``: the V it is checked at; ``length`` and ``n_patterns``: the small stored set it gets.
    """

    name: str
    make: Callable[[], AssociativeMemory]
    vocab_sizes: tuple[int, ...] = (2, 3)
    length: int = 12
    n_patterns: int = 3


REGISTRY: dict[str, BackendCase] = {}


def register(case: BackendCase) -> BackendCase:
    if case.name in REGISTRY:
        raise ValueError(f"case.name: {case.name!r} is registered already")
    REGISTRY[case.name] = case
    return case


def _register_builtin() -> None:
    from amtheory.backends.classical import ClassicalHopfield

    for rule in ("hebbian", "storkey", "pseudoinverse"):
        for zd in (True, False):
            register(
                BackendCase(
                    f"classical-{rule}{'' if zd else '-diag'}",
                    lambda rule=rule, zd=zd: ClassicalHopfield(rule, zero_diagonal=zd, form="weights"),
                )
            )
    register(BackendCase("classical-hebbian-patterns", lambda: ClassicalHopfield("hebbian", form="patterns")))

    from amtheory.backends.dense import DenseAM
    from amtheory.backends.modern import ModernHopfield

    register(BackendCase("dense-poly2", lambda: DenseAM("poly", n=2)))
    register(BackendCase("dense-poly3", lambda: DenseAM("poly", n=3)))
    register(BackendCase("dense-rectpoly3", lambda: DenseAM("rectpoly", n=3)))
    # beta = 2 at L = 12: the log-form energy stays O(beta L), far from overflow, and basins are non-trivial.
    register(BackendCase("dense-exp", lambda: DenseAM("exp", beta=2.0)))
    register(BackendCase("modern", lambda: ModernHopfield(beta=0.5)))
    # Streamed path with a chunk that does not divide K = 3: the online softmax must equal the plain one.
    register(BackendCase("modern-chunked", lambda: ModernHopfield(beta=0.5, chunk_size=2)))
    # Split-K attention (slices merged by their log-sum-exp), on CPU through its reference per-slice path.
    register(BackendCase("modern-split", lambda: ModernHopfield(beta=0.5, kernel="split-sdpa", chunk_size=2)))

    from amtheory.diffusion.empirical import EmpiricalDenoiser

    # The memorization limit of a diffusion model, at its default evaluation time; chunk_size 2 exercises the
    # chunked log-sum-exp over the stored set.
    register(BackendCase("empirical-denoiser", lambda: EmpiricalDenoiser(chunk_size=2)))


_register_builtin()
