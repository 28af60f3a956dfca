"""The one backend registry: every concrete associative memory, by name, with its figure label and colour, the
factory the side-by-side comparison builds it with and the configurations the conformance suite checks.

Backends register themselves where they are defined (``amtheory.backends.*``, ``amtheory.diffusion.backend``,
``amtheory.diffusion.empirical``); importing ``amtheory`` imports all of them, so ``available_backends()`` is
complete from then on. Studies, the conformance suite and the figures read this registry; adding a backend is its
module plus one ``register_backend`` call.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from amtheory.core.interface import AssociativeMemory

__all__ = [
    "EXTRA_PALETTE",
    "PALETTE",
    "BackendInfo",
    "ConformanceCase",
    "available_backends",
    "backend_info",
    "backend_names",
    "label",
    "colour",
    "make_backend",
    "register_backend",
    "unregister_backend",
]

#: seaborn's "colorblind" palette (Okabe-Ito-like, safe for the common colour-vision deficiencies), in its order.
PALETTE = (
    "#0173b2",
    "#de8f05",
    "#029e73",
    "#d55e00",
    "#cc78bc",
    "#ca9161",
    "#fbafe4",
    "#949494",
    "#ece133",
    "#56b4e9",
)
#: Where colours come from once ``PALETTE`` is used up: Paul Tol's colour-blind safe "muted" scheme and black,
#: without its shades that are close to one of ``PALETTE``.
EXTRA_PALETTE = ("#332288", "#882255", "#117733", "#44aa99", "#999933", "#aa4499", "#000000", "#661100")


@dataclass(frozen=True)
class ConformanceCase:
    """How to build one configured backend for the conformance suite (``amtheory.testing.conformance``).

    ``vocab_sizes``: the V it is checked at; ``length`` and ``n_patterns``: the small stored set it gets.
    """

    name: str
    make: Callable[[], AssociativeMemory]
    vocab_sizes: tuple[int, ...] = (2, 3)
    length: int = 12
    n_patterns: int = 3


@dataclass(frozen=True)
class BackendInfo:
    """One registered backend.

    ``cls``: its class; ``label`` and ``colour``: how every figure shows it; ``make(beta)``: an unstored memory,
    ``beta`` its inverse temperature where it has one (None: its default), or None where the backend cannot be
    built from nothing (a trained model); ``conformance``: the configurations the conformance suite checks;
    ``aliases``: other names a study's tables use for it; ``compare``: whether the Hopfield-family comparison runs
    it by default.
    """

    name: str
    cls: type[AssociativeMemory]
    label: str
    colour: str
    make: Callable[..., AssociativeMemory] | None = None
    conformance: tuple[ConformanceCase, ...] = ()
    aliases: tuple[str, ...] = ()
    compare: bool = False


_REGISTRY: dict[str, BackendInfo] = {}
_ALIASES: dict[str, str] = {}


def _hashed_colour(name: str) -> str:
    """A palette colour picked by a hash of ``name``: the same in every run."""
    colours = PALETTE + EXTRA_PALETTE
    return colours[zlib.crc32(name.encode()) % len(colours)]


def _free_colour() -> str:
    """The first palette colour no registered backend uses (deterministic given the registrations)."""
    used = {b.colour.lower() for b in _REGISTRY.values()}
    for c in PALETTE + EXTRA_PALETTE:
        if c not in used:
            return c
    return ""


def register_backend(
    name: str,
    cls: type[AssociativeMemory] | None = None,
    *,
    label: str | None = None,
    colour: str | None = None,
    make: Callable[..., AssociativeMemory] | None = None,
    conformance: Iterable[ConformanceCase] = (),
    aliases: Iterable[str] = (),
    compare: bool = False,
):
    """Register the backend ``name`` (a class, or used as a class decorator when ``cls`` is omitted).

    A backend registered without ``colour`` gets the first colour of ``PALETTE``, then of ``EXTRA_PALETTE``, that
    no registered backend has (once all are taken, one picked by a hash of the name); without ``label`` its name.
    """
    if cls is None:

        def decorate(c):
            register_backend(
                name, c, label=label, colour=colour, make=make, conformance=conformance, aliases=aliases,
                compare=compare,
            )  # fmt: skip
            return c

        return decorate
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty str, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, AssociativeMemory)):
        raise TypeError(f"cls: expected an AssociativeMemory subclass, got {cls!r}")
    aliases = tuple(aliases)
    for n in (name, *aliases):
        if n in _REGISTRY or n in _ALIASES:
            raise ValueError(f"name: {n!r} is registered already")
    conformance = tuple(conformance)
    taken = {c.name for b in _REGISTRY.values() for c in b.conformance}
    for c in conformance:
        if c.name in taken:
            raise ValueError(f"conformance: case {c.name!r} is registered already")
    if colour is None:
        colour = (
            _free_colour() or (PALETTE + EXTRA_PALETTE)[zlib.crc32(name.encode()) % (len(PALETTE) + len(EXTRA_PALETTE))]
        )
    _REGISTRY[name] = BackendInfo(name, cls, label or name, colour.lower(), make, conformance, aliases, bool(compare))
    _ALIASES.update({a: name for a in aliases})
    return cls


def unregister_backend(name: str) -> None:
    """Remove ``name`` (and its aliases) from the registry."""
    info = _REGISTRY.pop(name)
    for a in info.aliases:
        _ALIASES.pop(a, None)


def backend_info(name: str) -> BackendInfo:
    """The registration of ``name`` or of one of its aliases."""
    info = _REGISTRY.get(_ALIASES.get(name, name))
    if info is None:
        raise ValueError(f"backend: expected one of {tuple(_REGISTRY)}, got {name!r}")
    return info


def available_backends() -> dict[str, type[AssociativeMemory]]:
    """Every registered backend: name -> class, in registration order."""
    return {n: b.cls for n, b in _REGISTRY.items()}


def backend_names(*, compare: bool | None = None) -> tuple[str, ...]:
    """The registered names in registration order (``compare``: only those the comparison runs, or only not)."""
    return tuple(n for n, b in _REGISTRY.items() if compare is None or b.compare == compare)


def make_backend(name: str, beta: float | None = None) -> AssociativeMemory:
    """An unstored memory of the backend ``name``; ``beta``: its inverse temperature (None: the default)."""
    info = backend_info(name)
    if info.make is None:
        raise ValueError(f"backend: {name!r} cannot be built without a trained model")
    return info.make(beta)


def label(name: str) -> str:
    """The label every figure gives ``name`` (the name itself when it is not registered)."""
    try:
        return backend_info(name).label
    except ValueError:
        return name


def colour(name: str) -> str:
    """The colour every figure gives ``name``; a name that is not registered gets one from its hash."""
    try:
        return backend_info(name).colour
    except ValueError:
        return _hashed_colour(name)
