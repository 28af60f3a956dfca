"""Every backend the conformance suite runs over. Registering a case here covers a new backend at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amtheory.backends.base import AssociativeMemory


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


_register_builtin()
