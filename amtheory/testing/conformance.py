"""The conformance suite: claims every backend must satisfy, each a function ``check_x(case, seed)`` that raises
``AssertionError`` on failure, and :class:`NotApplicable` where the claim does not concern the backend (the energy
checks of a backend without an energy). ``tests/test_conformance.py`` runs every check over every registered
backend through :func:`run_check`, which reports the latter as skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from amtheory.core.corruption import corrupt
from amtheory.core.dynamics import argmax_keep, retrieve
from amtheory.core.interface import AssociativeMemory, NotStoredError
from amtheory.core.patterns import iid_patterns
from amtheory.testing.registry import ConformanceCase


class NotApplicable(Exception):
    """The check makes no claim about this backend; the message says why."""


def _require_energy(case: ConformanceCase) -> None:
    mem = case.make()
    if not mem.has_energy:
        raise NotApplicable(f"{case.name}: {type(mem).__name__} has no energy function (has_energy is False)")


def run_check(check: Callable[[ConformanceCase, int], None], case: ConformanceCase, seed: int) -> None:
    """Run one check under pytest: a check that does not apply to the backend is reported as skipped."""
    import pytest

    try:
        check(case, seed)
    except NotApplicable as e:
        pytest.skip(str(e))


def build(case: ConformanceCase, vocab_size: int, seed: int) -> tuple[AssociativeMemory, torch.Tensor, torch.Tensor]:
    """A stored memory, its patterns ``[K, L]`` and a batch of corrupted queries ``[2K, L]``."""
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(case.n_patterns, case.length, vocab_size=vocab_size, generator=g)
    mem = case.make().store(X, vocab_size=vocab_size)
    q = corrupt(X.repeat(2, 1), vocab_size=vocab_size, n_changed=max(1, case.length // 6), generator=g).states
    return mem, X, q


def check_shapes_and_dtypes(case: ConformanceCase, seed: int) -> None:
    for V in case.vocab_sizes:
        mem, X, q = build(case, V, seed)
        B, L = q.shape
        s = mem.scores(q)
        assert s.shape == (B, L, V) and s.is_floating_point(), f"scores: shape {tuple(s.shape)}, dtype {s.dtype}"
        p = mem.conditionals(q, beta=1.0)
        assert p.shape == (B, L, V), f"conditionals: shape {tuple(p.shape)}"
        assert torch.allclose(p.sum(-1), torch.ones(B, L), atol=1e-5), "conditionals: rows must sum to 1"
        assert bool((p >= 0).all()), "conditionals: negative probability"
        for update in ("sync", "async"):
            r = retrieve(mem, q, update=update, max_steps=5, generator=torch.Generator().manual_seed(seed))
            assert r.states.shape == q.shape and r.states.dtype == torch.long
            assert bool(((r.states >= 0) & (r.states < V)).all())
            for flag in (r.converged, r.cycled):
                assert flag.shape == (B,) and flag.dtype == torch.bool
            assert r.steps.shape == (B,) and r.steps.dtype == torch.long
            assert not bool((r.converged & r.cycled).any()), "a query cannot both converge and cycle"


def check_batch_equals_single(case: ConformanceCase, seed: int) -> None:
    for V in case.vocab_sizes:
        mem, X, q = build(case, V, seed)
        batch = retrieve(mem, q, update="sync", max_steps=10)
        for b in range(q.shape[0]):
            one = retrieve(mem, q[b : b + 1], update="sync", max_steps=10)
            assert torch.equal(one.states[0], batch.states[b]), f"query {b}: batch and single differ"
            assert int(one.steps[0]) == int(batch.steps[b])
            assert bool(one.converged[0]) == bool(batch.converged[b])
        seq = retrieve(mem, q, update="async", order="sequential", max_steps=10)
        for b in range(q.shape[0]):
            one = retrieve(mem, q[b : b + 1], update="async", order="sequential", max_steps=10)
            assert torch.equal(one.states[0], seq.states[b]), f"query {b}: async batch and single differ"


def check_same_generator_same_result(case: ConformanceCase, seed: int) -> None:
    for V in case.vocab_sizes:
        mem, X, q = build(case, V, seed)
        for kw in ({"update": "async"}, {"update": "sync", "beta": 2.0}, {"update": "async", "beta": 2.0}):
            a = retrieve(mem, q, max_steps=4, generator=torch.Generator().manual_seed(seed + 1), **kw)
            b = retrieve(mem, q, max_steps=4, generator=torch.Generator().manual_seed(seed + 1), **kw)
            assert torch.equal(a.states, b.states), f"{kw}: same generator, different result"


def check_local_fields_track_scores(case: ConformanceCase, seed: int) -> None:
    """The incremental cache must equal a full recomputation after any sequence of single-token changes."""
    g = torch.Generator().manual_seed(seed)
    for V in case.vocab_sizes:
        mem, X, q = build(case, V, seed)
        f = mem.local_fields(q)
        rows = torch.arange(q.shape[0])
        for _ in range(3 * case.length):
            pos = torch.randint(0, case.length, (q.shape[0],), generator=g)
            new = torch.randint(0, V, (q.shape[0],), generator=g)
            f.set(pos, new)
            pos2 = torch.randint(0, case.length, (q.shape[0],), generator=g)
            for gibbs in (False, True):
                full = (mem.gibbs_scores(f.x) if gibbs else mem.scores(f.x))[rows, pos2]
                torch.testing.assert_close(f.at(pos2, gibbs=gibbs), full, rtol=1e-4, atol=1e-4)


def check_energy_never_rises_async(case: ConformanceCase, seed: int) -> None:
    """Where there is an energy: every single deterministic asynchronous update leaves it equal or lower."""
    _require_energy(case)
    g = torch.Generator().manual_seed(seed)
    for V in case.vocab_sizes:
        mem, X, q = build(case, V, seed)
        f = mem.local_fields(q)
        rows = torch.arange(q.shape[0])
        e = mem.energy(f.x)
        for _ in range(3):
            perm = torch.rand(q.shape, generator=g).argsort(-1)
            for k in range(case.length):
                pos = perm[:, k]
                new = argmax_keep(f.at(pos), f.x[rows, pos])
                f.set(pos, new)
                e2 = mem.energy(f.x)
                assert bool((e2 <= e + 1e-6 * (1 + e.abs())).all()), f"energy rose: {e.tolist()} -> {e2.tolist()}"
                e = e2


def check_gibbs_matches_energy(case: ConformanceCase, seed: int) -> None:
    """Where there is an energy, the Gibbs conditional is the Boltzmann law of single-site changes:
    ``log p(x_i = a | rest) - log p(x_i = b | rest) = -beta (E(x^{i<-a}) - E(x^{i<-b}))``."""
    _require_energy(case)
    for V in case.vocab_sizes:
        mem, X, q = build(case, V, seed)
        beta = 0.7
        logp = torch.log(mem.conditionals(q, beta=beta).double())
        i = case.length // 2
        Es = []
        for a in range(V):
            y = q.clone()
            y[:, i] = a
            Es.append(mem.energy(y))
        E = torch.stack(Es, -1)  # [B, V]
        lhs = logp[:, i, :] - logp[:, i, :1]
        rhs = -beta * (E - E[:, :1])
        torch.testing.assert_close(lhs, rhs, rtol=1e-3, atol=1e-3)


def check_bad_input(case: ConformanceCase, seed: int) -> None:
    V = case.vocab_sizes[0]
    mem, X, q = build(case, V, seed)
    bad = [
        (q.float(), TypeError),
        (q[0], ValueError),
        (torch.full_like(q, V), ValueError),
        (q[:, :-1], ValueError),
    ]
    for x, err in bad:
        try:
            retrieve(mem, x, max_steps=1)
        except err as e:
            assert "queries" in str(e), f"error does not name the argument: {e}"
        else:
            raise AssertionError(f"no {err.__name__} for bad queries of shape {tuple(x.shape)}, dtype {x.dtype}")
    for use in ("scores", "gibbs_scores", "local_fields", "sync_update"):
        try:
            getattr(case.make(), use)(q)
        except NotStoredError:
            pass
        else:
            raise AssertionError(f"{use} before store must raise NotStoredError")
    try:
        case.make().store(X[:0], vocab_size=V)
    except ValueError as e:
        assert "patterns" in str(e)
    else:
        raise AssertionError("an empty pattern set must raise")


CHECKS = [
    check_shapes_and_dtypes,
    check_batch_equals_single,
    check_same_generator_same_result,
    check_local_fields_track_scores,
    check_energy_never_rises_async,
    check_gibbs_matches_energy,
    check_bad_input,
]
