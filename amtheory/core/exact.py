"""Exact basins of attraction of small binary networks, by enumerating every state.

For a binary memory (V = 2) of length L <= 20, the deterministic update is a map ``f`` on the ``2^L`` states.
Its functional graph (one edge from each state to its image) has exactly one cycle per weakly connected
component; those cycles are the attractors (fixed points are 1-cycles), and the basin of an attractor is the set
of states whose orbit ``s, f(s), f(f(s)), ...`` reaches it. Basin sizes are then counted exactly, which is what
the Monte Carlo estimators of ``amtheory.core.basins`` are tested against.

State indexing: state ``s`` in ``[0, 2^L)`` holds token ``(s >> i) & 1`` at position ``i`` (position 0 is the
least significant bit). ``ExactBasins.decode`` and ``ExactBasins.encode`` convert.

Maps:

* ``update="sync"``: ``x_i <- argmax_v scores_i(v)`` at every position at once (ties keep the current token), the
  map ``Sync(beta=None).step``.
* ``update="async"``: one full asynchronous sweep in the fixed order 0, 1, ..., L - 1, each position updated from
  the current state (``Async(beta=None, order="sequential").step``). Fixing the order makes the sweep a
  deterministic map, so its attractors and basins are well defined; a random order would give a different map
  per sweep.

Attractors and the attractor each state ends in are computed with pointer doubling on the image array
(``O(L 2^L)``); ``ExactBasins.graph`` is the same map as a ``networkx.DiGraph``, built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np
import torch

from amtheory.core.dynamics import Async, Dynamics, Sync, argmax_keep
from amtheory.core.interface import AssociativeMemory

#: The largest L enumerated (2^20 = 1,048,576 states).
MAX_LENGTH = 20


@dataclass(frozen=True, eq=False)
class ExactBasins:
    """The update map over all ``2^L`` states of a binary memory and its attractors.

    ``images`` ``[2^L]``: the state each state maps to in one step; ``final_state`` ``[2^L]``: the representative
    (smallest state index) of the attractor each state's orbit ends in; ``attractors``: every cycle of the map as
    a tuple of state indices starting at its representative and following the map, sorted by representative;
    ``attractor_sizes`` ``[A]``: the basin size of each attractor (sums to ``2^L``); ``pattern_states`` ``[K]``:
    the state index of each stored pattern; ``basin_sizes`` ``[K]`` long: the number of states whose orbit ends at
    the fixed point equal to stored pattern k (0 if the pattern is not a fixed point).
    """

    length: int
    update: str
    images: np.ndarray
    final_state: np.ndarray
    attractors: list[tuple[int, ...]]
    attractor_sizes: np.ndarray
    pattern_states: np.ndarray
    basin_sizes: torch.Tensor

    @property
    def n_states(self) -> int:
        return 1 << self.length

    @property
    def is_fixed_point(self) -> np.ndarray:
        """``[K]`` bool: the stored pattern is a fixed point of the map."""
        return self.images[self.pattern_states] == self.pattern_states

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The functional graph: node = state index (int), one edge to its image (self-loops at fixed points)."""
        g = nx.DiGraph()
        g.add_nodes_from(range(self.n_states))
        g.add_edges_from(zip(range(self.n_states), self.images.tolist()))
        return g

    @cached_property
    def _popcount(self) -> np.ndarray:
        pc = np.zeros(self.n_states, dtype=np.int64)
        for i in range(self.length):
            pc[1 << i : 1 << (i + 1)] = pc[: 1 << i] + 1
        return pc

    def decode(self, index: int | np.ndarray | torch.Tensor) -> torch.Tensor:
        """State index (or indices ``[...]``) -> tokens ``[..., L]`` (``torch.long``)."""
        idx = torch.as_tensor(np.asarray(index) if not isinstance(index, torch.Tensor) else index, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n_states):
            raise ValueError(f"index: expected state indices in [0, {self.n_states}), got out-of-range values")
        return decode_states(idx, self.length)

    def encode(self, tokens: torch.Tensor) -> np.ndarray | int:
        """Tokens ``[..., L]`` -> state indices ``[...]`` (an int for a single state)."""
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long:
            raise TypeError(f"tokens: expected a torch.long tensor [..., L], got {type(tokens).__name__}")
        if tokens.shape[-1] != self.length or bool(((tokens != 0) & (tokens != 1)).any()):
            raise ValueError(f"tokens: expected binary tokens with last dimension L = {self.length}")
        out = encode_states(tokens.cpu()).numpy()
        return int(out) if out.ndim == 0 else out

    def distance(self, state: int) -> np.ndarray:
        """Hamming distance ``[2^L]`` of every state from ``state``."""
        return self._popcount[np.arange(self.n_states) ^ int(state)]

    def success_curve(self) -> np.ndarray:
        """``[K, L + 1]`` float: for pattern k and distance r, the fraction of the ``C(L, r)`` states at Hamming
        distance r from the pattern whose orbit ends at the pattern itself (0 throughout if it is not a fixed
        point). This is the exact success probability of exact-count corruption at r followed by retrieval."""
        K = self.pattern_states.shape[0]
        out = np.zeros((K, self.length + 1))
        fixed = self.is_fixed_point
        for k, p in enumerate(self.pattern_states):
            d = self.distance(int(p))
            hit = (self.final_state == p) if fixed[k] else np.zeros(self.n_states, dtype=bool)
            out[k] = np.bincount(d, weights=hit, minlength=self.length + 1) / np.bincount(d, minlength=self.length + 1)
        return out

    def radius(self, delta: float) -> torch.Tensor:
        """Exact first-passage radius ``[K]`` long: ``max { r : s(r') >= 1 - delta for all r' <= r }`` with ``s``
        from ``success_curve`` (-1 where the pattern is not a fixed point), the quantity ``basin_radius``
        estimates."""
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0.0 < delta < 1.0:
            raise ValueError(f"delta: expected a value in (0, 1), got {delta!r}")
        s = self.success_curve()
        ok = s >= 1.0 - delta - 1e-12
        # Index of the first failing level, L + 1 if none; the radius is one less.
        first_fail = np.where(ok.all(1), self.length + 1, (~ok).argmax(1))
        return torch.as_tensor(first_fail - 1, dtype=torch.long)


def decode_states(index: torch.Tensor, length: int) -> torch.Tensor:
    """State indices ``[...]`` -> binary tokens ``[..., length]``: bit i is the token at position i."""
    shifts = torch.arange(length, device=index.device)
    return (index.unsqueeze(-1) >> shifts) & 1


def encode_states(tokens: torch.Tensor) -> torch.Tensor:
    """Binary tokens ``[..., L]`` -> state indices ``[...]`` (inverse of ``decode_states``)."""
    shifts = torch.arange(tokens.shape[-1], device=tokens.device)
    return (tokens << shifts).sum(-1)


def _step_fn(update: str | Dynamics):
    """The deterministic one-step map named by ``update``."""
    if isinstance(update, Sync) and update.beta is None:
        return "sync", lambda m, x: argmax_keep(m.scores(x), x)
    if isinstance(update, Async) and update.beta is None and update.order == "sequential":
        return "async", lambda m, x: update.step(m, x, None)
    if update == "sync":
        return "sync", lambda m, x: argmax_keep(m.scores(x), x)
    if update == "async":
        sweep = Async(beta=None, order="sequential")
        return "async", lambda m, x: sweep.step(m, x, None)
    raise ValueError(
        "update: expected 'sync', 'async', Sync(beta=None) or Async(beta=None, order='sequential') "
        f"(a deterministic map), got {update!r}"
    )


def exact_basins(
    memory: AssociativeMemory, update: str | Dynamics = "sync", *, chunk_size: int = 1 << 16
) -> ExactBasins:
    """Exact attractors and basin sizes of a binary memory by enumerating all ``2^L`` states.

    One deterministic step ``f`` of the memory's dynamics is applied to every state (in chunks of ``chunk_size``
    states); the attractors are the cycles of the functional graph of ``f`` and the basin of stored pattern
    ``xi`` is ``{s : f^t(s) = xi for some t}`` (empty unless ``f(xi) = xi``). Needs ``V = 2`` and
    ``L <= MAX_LENGTH`` (20). The classical facts it lets tests check exactly: asynchronous updates on symmetric
    W end at fixed points, synchronous ones at fixed points or 2-cycles (Goles et al. 1985).
    """
    if not isinstance(memory, AssociativeMemory):
        raise TypeError(f"memory: expected an AssociativeMemory, got {type(memory).__name__}")
    if not memory.is_stored:
        raise ValueError(f"memory: expected a stored memory, got {type(memory).__name__} with nothing stored")
    if memory.vocab_size_ != 2:
        raise ValueError(
            f"memory: exact_basins needs a binary memory (vocab_size 2), got vocab_size {memory.vocab_size_}"
        )
    L = memory.length_
    if L > MAX_LENGTH:
        raise ValueError(
            f"memory: exact_basins enumerates 2^L states and accepts L <= {MAX_LENGTH}, got L = {L} ({1 << L} states)"
        )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
    name, step = _step_fn(update)

    n = 1 << L
    dev = memory.device
    images = np.empty(n, dtype=np.int64)
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            idx = torch.arange(start, min(start + chunk_size, n), device=dev)
            new = step(memory, decode_states(idx, L))
            images[start : start + idx.shape[0]] = encode_states(new).cpu().numpy()

    # Pointer doubling. After L doublings, jump = f^(2^L); every tail has fewer than 2^L states, so jump(s) lies
    # on the cycle s ends in. low(s) = min(s, f(s), ..., f^(2^L - 1)(s)) covers a whole cycle (length <= 2^L), so
    # low(jump(s)) is the cycle's smallest state: its representative.
    jump = images.copy()
    low = np.arange(n)
    for _ in range(L):
        low = np.minimum(low, low[jump])
        jump = jump[jump]
    final_state = low[jump]

    reps, sizes = np.unique(final_state, return_counts=True)
    attractors = []
    for r in reps.tolist():
        cycle = [r]
        s = int(images[r])
        while s != r:
            cycle.append(s)
            s = int(images[s])
        attractors.append(tuple(cycle))

    pattern_states = encode_states(memory.patterns_.cpu()).numpy().astype(np.int64)
    fixed = images[pattern_states] == pattern_states
    size_of = dict(zip(reps.tolist(), sizes.tolist()))
    basin = [size_of[int(p)] if f else 0 for p, f in zip(pattern_states, fixed)]
    return ExactBasins(
        length=L,
        update=name,
        images=images,
        final_state=final_state,
        attractors=attractors,
        attractor_sizes=sizes.astype(np.int64),
        pattern_states=pattern_states,
        basin_sizes=torch.tensor(basin, dtype=torch.long),
    )


__all__ = ["MAX_LENGTH", "ExactBasins", "decode_states", "encode_states", "exact_basins"]
