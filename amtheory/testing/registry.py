"""Every configuration the conformance suite runs over, read from the one backend registry
(``amtheory.core.registry``): registering a backend with its conformance cases covers it at once. Importing any
``amtheory`` module first runs ``amtheory/__init__.py``, which imports every backend, so each has registered
itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from amtheory.core import registry as _backends
from amtheory.core.registry import ConformanceCase

__all__ = ["REGISTRY", "ConformanceCase", "cases"]


def cases() -> dict[str, ConformanceCase]:
    """Case name -> case, over every registered backend, in registration order."""
    return {c.name: c for name in _backends.backend_names() for c in _backends.backend_info(name).conformance}


class _Cases(Mapping):
    """A live view of ``cases()``: a backend registered later shows up in it."""

    def __getitem__(self, name: str) -> ConformanceCase:
        return cases()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(cases())

    def __len__(self) -> int:
        return len(cases())


REGISTRY: Mapping[str, ConformanceCase] = _Cases()
