"""The one backend registry (``amtheory.core.registry``): a backend defined here, registered with one call, shows
up in the conformance suite, in the Hopfield-family comparison's tables and in the figures' palette; every
concrete backend in the package is registered."""

import inspect

import pandas as pd
import pytest
import torch

import amtheory
from amtheory.core import registry
from amtheory.core.interface import AssociativeMemory
from amtheory.core.registry import ConformanceCase
from amtheory.studies.hopfield import compare
from amtheory.testing.conformance import CHECKS, run_check
from amtheory.testing.registry import REGISTRY

torch.set_num_threads(1)


class PottsOverlap(AssociativeMemory):
    """A Potts network with pattern-overlap couplings: token v at position i scores
    ``sum_mu [xi_mu,i = v] * (overlap of the rest of x with xi_mu)``."""

    def _store(self, patterns: torch.Tensor) -> None:
        self.onehot_ = torch.nn.functional.one_hot(patterns, self.vocab_size_).double()  # [K, L, V]

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        self.require_stored()
        x = self.check_queries("x", x)
        match = (x.unsqueeze(1) == self.patterns_.unsqueeze(0)).double()  # [B, K, L]
        rest = match.sum(-1, keepdim=True) - match  # overlap without position i
        return torch.einsum("bkl,klv->blv", rest, self.onehot_)


NAME = "potts-overlap"


def unregistered(classes) -> list[type]:
    """The concrete AssociativeMemory subclasses among ``classes`` that no registration names."""
    registered = set(amtheory.available_backends().values())
    return [c for c in classes if not inspect.isabstract(c) and c not in registered]


def package_backends() -> list[type]:
    """Every AssociativeMemory subclass defined in the amtheory package (after importing it)."""
    seen, todo = [], [AssociativeMemory]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return [c for c in seen if c.__module__.split(".")[0] == "amtheory"]


@pytest.fixture
def potts():
    """PottsOverlap registered for one test (no colour given: the registry picks one), then removed again."""
    registry.register_backend(
        NAME,
        PottsOverlap,
        label="Potts overlap",
        make=lambda beta=None: PottsOverlap(),
        conformance=[ConformanceCase(NAME, PottsOverlap, vocab_sizes=(2, 3))],
        compare=True,
    )
    try:
        yield NAME
    finally:
        registry.unregister_backend(NAME)


def test_registered_backend_is_available(potts):
    assert amtheory.available_backends()[potts] is PottsOverlap
    assert potts in registry.backend_names(compare=True)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_registered_backend_joins_the_conformance_run(potts, check):
    assert potts in REGISTRY
    run_check(check, REGISTRY[potts], seed=1234)


def test_registered_backend_joins_the_comparison_table(potts, tmp_path):
    preset = compare.ComparePreset(ns=(16,), loads=(0.2,), replicates=1, n_trials=4, backends=("hebbian", potts))
    rec, rad = compare.run(preset, out=str(tmp_path), progress=False)
    exact, radius = compare.summary_tables(rec, rad)
    assert set(rec["backend"]) == set(rad["backend"]) == {"hebbian", potts}
    assert potts in exact.index.get_level_values("backend")
    assert potts in radius.index.get_level_values("backend")


def test_registered_backend_has_its_own_colour_and_label(potts, tmp_path):
    from amtheory.figures import compare as fig
    from amtheory.figures import style

    colours = dict(style.BACKEND_COLORS)
    others = {c for n, c in colours.items() if n != potts}
    # No colour was given: it gets the first palette colour that no other backend has.
    assert colours[potts] == next(c for c in registry.PALETTE + registry.EXTRA_PALETTE if c not in others)
    assert len(set(colours.values())) == len(colours), colours
    assert style.BACKEND_LABELS[potts] == "Potts overlap"
    preset = compare.ComparePreset(ns=(16,), loads=(0.2,), replicates=1, n_trials=4, backends=("hebbian", potts))
    compare.run(preset, out=str(tmp_path / "tables"), progress=False)
    paths = fig.figure(tmp_path / "tables", tmp_path / "figures")
    assert all(p.exists() for p in paths)


def test_colours_and_labels_are_distinct_and_fixed():
    b = amtheory.available_backends()
    colours = [registry.colour(n) for n in b]
    labels = [registry.label(n) for n in b]
    assert len(set(colours)) == len(colours) and len(set(labels)) == len(labels)
    # An alias (a study's own name) gets its backend's colour and label, so no backend has two.
    assert registry.label("dense_exp") == registry.label("exp")
    assert registry.colour("classical") == registry.colour("hebbian")


def test_every_concrete_backend_in_the_package_is_registered():
    found = package_backends()
    assert {"ClassicalHopfield", "DenseAM", "ModernHopfield", "EmpiricalDenoiser", "UniformDiffusionLM"} <= {
        c.__name__ for c in found
    }
    assert unregistered(found) == []


def test_an_unregistered_backend_is_caught():
    class Unlisted(PottsOverlap):
        pass

    Unlisted.__module__ = "amtheory.backends.unlisted"
    assert Unlisted in package_backends()
    assert unregistered(package_backends()) == [Unlisted]


def test_study_backend_names_are_registered():
    from amtheory.studies.hopfield import basins_vs_load
    from amtheory.studies.memorization.cells import BACKENDS as memorization

    for name in compare.BACKENDS + basins_vs_load.BACKENDS + memorization + ("uddm",):
        registry.backend_info(name)
    assert compare.BACKENDS == ("hebbian", "storkey", "pseudoinverse", "poly3", "rectpoly3", "exp", "modern")


def test_registering_a_taken_name_or_a_non_backend_fails():
    with pytest.raises(ValueError, match="registered already"):
        registry.register_backend("exp", PottsOverlap)
    with pytest.raises(ValueError, match="registered already"):
        registry.register_backend("x", PottsOverlap, aliases=("dense_exp",))
    with pytest.raises(TypeError, match="AssociativeMemory"):
        registry.register_backend("x", pd.DataFrame)
    assert "x" not in amtheory.available_backends()


def test_register_backend_is_a_decorator():
    @amtheory.register_backend("decorated", label="decorated")
    class Decorated(PottsOverlap):
        pass

    try:
        assert amtheory.available_backends()["decorated"] is Decorated
    finally:
        registry.unregister_backend("decorated")
