"""Retrieval dynamics, written once for every backend.

``retrieve(memory, queries, update=...)`` iterates a memory's update from each query until a fixed point, a cycle
or ``max_steps``. ``update`` is a string ("sync", "async") or a ``Dynamics`` object (``Sync``, ``Async``, or a
backend-specific one such as ``amtheory.diffusion.ReverseDiffusion``), in the manner of diffrax's swappable
solvers.

Deterministic updates (``beta=None``) set a position to the argmax of its scores and keep the current token on a
tie, so a state whose every position is already an argmax is a fixed point. Stochastic updates (``beta`` a float)
draw each position from the Gibbs conditional ``softmax(beta * gibbs_scores)``: Glauber dynamics, formed as
``amtheory.core.interface.gibbs_logits`` forms it, so any finite ``beta`` (up to the float maximum) is exact and
a huge one gives the zero-temperature draw among the top-scoring tokens. Scores with a NaN or a +inf, or a
position whose every score is -inf, raise ``amtheory.core._checks.NonFiniteError`` instead of steering the state.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

import torch

from amtheory.core._checks import (
    check_beta,
    check_choice,
    check_finite_rows,
    check_generator,
    check_int,
    check_vocab_fits,
    draw_device,
)
from amtheory.core.interface import AssociativeMemory, argmax_keep, gibbs_logits


@dataclass(frozen=True)
class RetrievalResult:
    """Where each query ended. Every flag is per query.

    ``states`` ``[B, L]`` final tokens; ``steps`` ``[B]`` number of update steps (sweeps) that changed the state;
    ``converged`` ``[B]`` reached a fixed point (stochastic dynamics: the last step changed nothing);
    ``cycled`` ``[B]`` revisited an earlier state that was not its predecessor (deterministic dynamics only);
    ``info`` describes the dynamics (recorded with every result).
    """

    states: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor
    cycled: torch.Tensor
    info: dict


def sample_categorical(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from ``softmax(logits)`` using uniforms ``u`` in [0, 1) (shape ``logits.shape[:-1]``); a
    token of probability 0 is never drawn."""
    p = torch.softmax(logits.double(), dim=-1)
    cdf = p.cumsum(dim=-1)
    # side="right": u = 0 must not land on the leading zeros of the cumulative sum (tokens of probability 0).
    idx = torch.searchsorted(cdf, (u.double() * cdf[..., -1]).unsqueeze(-1).contiguous(), right=True).squeeze(-1)
    return idx.clamp_max(logits.shape[-1] - 1)


class Dynamics(abc.ABC):
    """A retrieval dynamics: how a memory's state is iterated."""

    @abc.abstractmethod
    def run(
        self,
        memory: AssociativeMemory,
        queries: torch.Tensor,
        *,
        max_steps: int,
        generator: torch.Generator | None,
    ) -> RetrievalResult: ...


class _IteratedMap(Dynamics):
    """A time-homogeneous update iterated until a fixed point or a cycle."""

    beta: float | None

    @abc.abstractmethod
    def step(self, memory: AssociativeMemory, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One step (sync: all positions once; async: one sweep) on ``x`` ``[B, L]``."""

    def describe(self) -> dict:
        return {"dynamics": type(self).__name__.lower(), "beta": self.beta}

    def run(self, memory, queries, *, max_steps, generator):
        x = memory.check_queries("queries", queries)
        check_int("max_steps", max_steps, minimum=0)
        check_generator("generator", generator)
        B, L = x.shape
        dev = x.device
        deterministic = self.beta is None
        steps = torch.zeros(B, dtype=torch.long, device=dev)
        converged = torch.zeros(B, dtype=torch.bool, device=dev)
        cycled = torch.zeros(B, dtype=torch.bool, device=dev)
        # A random linear hash of each state; deterministic dynamics revisit a state iff they are in a cycle.
        hg = torch.Generator(device="cpu").manual_seed(0x5EED)
        weights = torch.randint(-(2**62), 2**62, (L,), generator=hg).to(dev)
        # hashes[k] holds the hash of the state after k steps; it is filled as the run goes.
        hashes = torch.empty((max_steps + 1, B), dtype=torch.long, device=dev) if deterministic else None
        if hashes is not None:
            hashes[0] = (x * weights).sum(-1)
        for k in range(max_steps):
            active = ~(converged | cycled)
            if not bool(active.any()):
                break
            new = self.step(memory, x, generator)
            new = torch.where(active.unsqueeze(-1), new, x)
            same = (new == x).all(dim=-1)
            steps += (active & ~same).long()
            converged |= active & same
            if hashes is not None:
                h = (new * weights).sum(-1)
                # Equal to a state before the previous one (the previous one itself is a fixed point).
                seen = hashes[:k].eq(h).any(0)
                cycled |= active & ~same & seen
                hashes[k + 1] = h
            x = new
        return RetrievalResult(x, steps, converged, cycled, {**self.describe(), "max_steps": max_steps})


@dataclass(frozen=True)
class Sync(_IteratedMap):
    """Synchronous update: every position at once from the same state.

    Deterministic (``beta=None``): ``x_i <- argmax_v scores_i(v)``; stochastic: each position drawn independently
    from its Gibbs conditional at inverse temperature ``beta``.
    """

    beta: float | None = None

    def __post_init__(self):
        check_beta("beta", self.beta, allow_none=True)

    def step(self, memory, x, generator):
        if self.beta is None:
            return memory.sync_update(x)
        # A stochastic step forms the [B, L, V] Gibbs scores of the whole batch and their float64 logits.
        V = memory.vocab_size_
        check_vocab_fits(V, (*x.shape, V), device=x.device, what="the Gibbs scores of one synchronous step")
        u = torch.rand(x.shape, generator=generator, device=draw_device(generator, x.device)).to(x.device)
        return sample_categorical(gibbs_logits(memory.gibbs_scores(x), self.beta, source=type(memory).__name__), u)


@dataclass(frozen=True)
class Async(_IteratedMap):
    """Asynchronous update: sweeps over the positions one at a time, each query in its own random order
    (``order="random"``, needs a generator for reproducibility) or left to right (``order="sequential"``).

    Uses the backend's ``LocalFields`` so that one flip costs O(N) (weight form) or O(K) (pattern form) rather
    than a full update.
    """

    beta: float | None = None
    order: Literal["random", "sequential"] = "random"

    def __post_init__(self):
        check_beta("beta", self.beta, allow_none=True)
        check_choice("order", self.order, ("random", "sequential"))

    def describe(self) -> dict:
        return {**super().describe(), "order": self.order}

    def step(self, memory, x, generator):
        B, L = x.shape
        dev = x.device
        where = draw_device(generator, dev)
        if self.order == "random":
            perm = torch.rand((B, L), generator=generator, device=where).argsort(dim=-1).to(dev)
        else:
            perm = torch.arange(L, device=dev).expand(B, L)
        u = None
        if self.beta is not None:
            u = torch.rand((B, L), generator=generator, device=where).to(dev)
        fields = memory.local_fields(x)
        rows = torch.arange(B, device=dev)
        # Largest score of every (query, flip), checked once after the sweep: a check per flip would wait for the
        # device at every position.
        tops = torch.empty((B, L), dtype=torch.float64, device=dev)
        for k in range(L):
            pos = perm[:, k]
            cur = fields.x[rows, pos]
            if self.beta is None:
                sc = fields.at(pos)
                new = argmax_keep(sc, cur, check=False)
            else:
                sc = fields.at(pos, gibbs=True)
                new = sample_categorical(gibbs_logits(sc, self.beta, check=False), u[:, k])
            tops[:, k] = sc.amax(-1)
            fields.set(pos, new)
        check_finite_rows("scores", tops, source=type(memory).__name__)
        return fields.x


def make_dynamics(update: str | Dynamics, *, beta: float | None = None, order: str = "random") -> Dynamics:
    if isinstance(update, Dynamics):
        return update
    check_choice("update", update, ("sync", "async"))
    return Sync(beta=beta) if update == "sync" else Async(beta=beta, order=order)  # type: ignore[arg-type]


def retrieve(
    memory: AssociativeMemory,
    queries: torch.Tensor,
    *,
    update: str | Dynamics = "sync",
    beta: float | None = None,
    max_steps: int = 100,
    generator: torch.Generator | None = None,
    order: str = "random",
) -> RetrievalResult:
    """Iterate ``memory``'s dynamics from each query (``[B, L]`` tokens) to a fixed point, a cycle or
    ``max_steps``; the flags of the result are per query.

    ``update``: "sync", "async", or a ``Dynamics`` object (then ``beta`` and ``order`` are its own).
    ``beta``: None for deterministic updates, else the inverse temperature of Glauber dynamics.
    """
    dyn = make_dynamics(update, beta=beta, order=order)
    return dyn.run(memory, queries, max_steps=max_steps, generator=generator)
