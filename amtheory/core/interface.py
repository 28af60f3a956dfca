"""The one interface every associative memory implements.

A memory lives on the token state space: a query is a ``torch.long`` tensor ``[B, L]`` with tokens in ``[0, V)``.
Each backend says, for every position and every token, how strongly the dynamics pull that position towards that
token (``scores``, ``[B, L, V]``); the deterministic update takes the argmax (ties keep the current token) and the
Gibbs conditional is ``softmax(beta * gibbs_scores)``. Everything else (``retrieve``, basins, entropy probes) is
written once on top of this, in free functions.

Conventions: constructors store hyperparameters only; ``store`` sets the learned state, whose names end in ``_``.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from amtheory.core._checks import check_beta, check_finite_rows, check_tokens, check_vocab_fits, check_vocab_size


def argmax_keep(scores: torch.Tensor, current: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Argmax over the last axis, keeping ``current`` unless another token scores strictly higher.

    With ``check``, a row whose largest score is not finite raises ``NonFiniteError``: argmax takes a NaN for the
    largest score, and a row of NaN, +inf or nothing but -inf names no token (pass ``check=False`` to check the
    scores elsewhere, e.g. once after many calls).
    """
    best = scores.argmax(dim=-1)
    cur = scores.gather(-1, current.unsqueeze(-1)).squeeze(-1)
    top = scores.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    if check:
        check_finite_rows("scores", top)
    return torch.where(cur >= top, current, best)


def gibbs_logits(scores: torch.Tensor, beta: float, *, check: bool = True, source: str = "") -> torch.Tensor:
    """``beta * (scores - max_v scores)`` per row, float64: logits of ``softmax(beta * scores)`` that are <= 0,
    exactly 0 at the largest scores, at any ``beta >= 0``.

    Subtracting the maximum before scaling keeps ``beta * scores`` from overflowing (the product can only go to
    -inf, a weight of 0), so a huge ``beta`` gives the zero-temperature limit: the uniform distribution over the
    top-scoring tokens. Scores of -inf are floored at the most negative float64, so ``beta = 0`` gives the uniform
    distribution rather than ``0 * inf = NaN``. With ``check`` a row whose largest score is not finite (a NaN, a
    +inf, or nothing but -inf) raises ``NonFiniteError``; ``source`` names where the scores came from.
    """
    s = scores.double()
    top = s.amax(-1, keepdim=True)
    if check:
        check_finite_rows("scores", top.squeeze(-1), source=source)
    return (s - top).clamp_min(torch.finfo(torch.float64).min) * beta


class NotStoredError(RuntimeError):
    """Raised when a memory is used before ``store``."""


class AssociativeMemory(abc.ABC):
    """Abstract base of every backend.

    Subclasses implement ``_store`` and ``scores``; energy-based ones set ``has_energy = True`` and implement
    ``energy``; those with an incremental form of their local fields return a cheaper ``LocalFields`` from
    ``local_fields``.
    """

    #: True if ``energy`` is defined and asynchronous deterministic updates never raise it.
    has_energy: ClassVar[bool] = False
    #: Vocabulary sizes the backend accepts (None: any V >= 2).
    supported_vocab_sizes: ClassVar[tuple[int, ...] | None] = None

    vocab_size_: int
    length_: int
    patterns_: torch.Tensor

    # ---- storing -------------------------------------------------------------------------------------------
    def store(self, patterns: torch.Tensor, *, vocab_size: int = 2) -> AssociativeMemory:
        """Store ``patterns`` (``[K, L]`` tokens in ``[0, vocab_size)``); returns the memory."""
        check_vocab_size("vocab_size", vocab_size)
        if self.supported_vocab_sizes is not None and vocab_size not in self.supported_vocab_sizes:
            raise ValueError(
                f"vocab_size: {type(self).__name__} accepts {self.supported_vocab_sizes}, got {vocab_size}"
            )
        check_tokens("patterns", patterns, vocab_size=vocab_size, rank=2)
        if patterns.shape[0] == 0:
            raise ValueError("patterns: expected at least one pattern (shape [K, L] with K >= 1), got K = 0")
        if patterns.shape[1] == 0:
            raise ValueError("patterns: expected patterns of length L >= 1, got L = 0")
        # Scores are [B, L, V]: a memory whose scores of a single sequence exceed the device is unusable.
        check_vocab_fits(
            vocab_size, (1, patterns.shape[1], vocab_size), device=patterns.device, what="the scores of one sequence"
        )
        self.vocab_size_ = vocab_size
        self.length_ = int(patterns.shape[1])
        self.patterns_ = patterns
        self._store(patterns)
        return self

    @abc.abstractmethod
    def _store(self, patterns: torch.Tensor) -> None:
        """Build the learned state from validated patterns ``[K, L]``."""

    @property
    def is_stored(self) -> bool:
        return hasattr(self, "patterns_")

    def require_stored(self) -> None:
        """Raise ``NotStoredError`` unless ``store`` has been called (a cheap check, no pass over the data)."""
        if not self.is_stored:
            raise NotStoredError(f"{type(self).__name__}: call store(patterns, vocab_size=...) before using it")

    def check_queries(self, name: str, x: object, *, rank: int = 2) -> torch.Tensor:
        """Validate a query batch against the stored vocabulary, length and device."""
        if not self.is_stored:
            raise NotStoredError(f"{type(self).__name__}: call store(patterns, vocab_size=...) before using it")
        x = check_tokens(name, x, vocab_size=self.vocab_size_, length=self.length_, rank=rank)
        if x.device != self.patterns_.device:
            raise ValueError(
                f"{name}: expected a tensor on the memory's device {self.patterns_.device}, got {x.device}"
            )
        return x

    # ---- the dynamics' ingredients --------------------------------------------------------------------------
    @abc.abstractmethod
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Update scores ``[B, L, V]`` (float): the deterministic update sets each position to their argmax."""

    def sync_update(self, x: torch.Tensor) -> torch.Tensor:
        """One deterministic synchronous step ``[B, L]``: argmax of ``scores``, keeping the current token on a tie.

        Backends may override it with a faster path that gives identical results.
        """
        self.require_stored()
        check_vocab_fits(self.vocab_size_, (*x.shape, self.vocab_size_), device=x.device, what="the scores")
        return argmax_keep(self.scores(x), x)

    def gibbs_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Log-potentials of the Gibbs conditional, ``p(x_i = v | rest) ∝ exp(beta * gibbs_scores[..., i, v])``.

        Equal to ``scores`` unless the update has a self-coupling that the energy does not see.
        """
        return self.scores(x)

    def conditionals(self, x: torch.Tensor, *, beta: float = 1.0) -> torch.Tensor:
        """``p(x_i = v | x_{-i})`` for every position, ``[B, L, V]``, at inverse temperature ``beta``."""
        x = self.check_queries("x", x)
        beta = check_beta("beta", beta)
        check_vocab_fits(self.vocab_size_, (*x.shape, self.vocab_size_), device=x.device, what="the conditionals")
        z = gibbs_logits(self.gibbs_scores(x), beta, source=type(self).__name__)
        return torch.softmax(z, dim=-1).to(torch.float32)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy ``[B]`` of each state; only for backends with ``has_energy``."""
        raise TypeError(f"{type(self).__name__} has no energy function (has_energy is False)")

    def local_fields(self, x: torch.Tensor) -> LocalFields:
        """A cache for asynchronous updates; the default recomputes all scores at every call."""
        self.require_stored()
        return RecomputeFields(self, x)

    # ---- devices --------------------------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> AssociativeMemory:
        """Move every stored tensor to ``device`` (in place); returns the memory."""
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
            elif isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
                setattr(self, name, tuple(v.to(device) for v in value))
        return self

    @property
    def device(self) -> torch.device:
        if not self.is_stored:
            raise NotStoredError(f"{type(self).__name__}: nothing stored yet")
        return self.patterns_.device

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_"))
        state = f", K={self.patterns_.shape[0]}, L={self.length_}, V={self.vocab_size_}" if self.is_stored else ""
        return f"{type(self).__name__}({params}{state})"


class LocalFields(abc.ABC):
    """Per-query state for asynchronous updates: the scores at one position per query, kept up to date as single
    tokens change. ``x`` is the current batch ``[B, L]`` and is updated in place by ``set``."""

    x: torch.Tensor

    @abc.abstractmethod
    def at(self, pos: torch.Tensor, *, gibbs: bool = False) -> torch.Tensor:
        """Scores ``[B, V]`` at position ``pos[b]`` of query ``b`` (update scores, or Gibbs log-potentials)."""

    @abc.abstractmethod
    def set(self, pos: torch.Tensor, new: torch.Tensor) -> None:
        """Set token ``new[b]`` at position ``pos[b]`` of query ``b`` and update the cache."""


class RecomputeFields(LocalFields):
    """Fallback: recompute the full scores for every call (O(full update) per flip)."""

    def __init__(self, memory: AssociativeMemory, x: torch.Tensor):
        self.memory = memory
        self.x = x.clone()

    def at(self, pos: torch.Tensor, *, gibbs: bool = False) -> torch.Tensor:
        s = self.memory.gibbs_scores(self.x) if gibbs else self.memory.scores(self.x)
        return s[torch.arange(self.x.shape[0], device=self.x.device), pos]

    def set(self, pos: torch.Tensor, new: torch.Tensor) -> None:
        self.x[torch.arange(self.x.shape[0], device=self.x.device), pos] = new
