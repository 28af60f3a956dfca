"""Measuring G diffusion LMs of one shape at once with the measurement code written for one: each member's
measurement runs in its own thread on a :class:`~amtheory.diffusion.backend.UniformDiffusionLM` whose network is a
:class:`LockstepNetwork`, and the network calls of all members meet in one batched forward pass.

A member's network call ``network(x_BL, sigma_B)`` waits until every member still running has made its next call
(or finished); the last to arrive stacks the requests (rows padded to the largest request with the member's own
first row), runs the members' DiTs together (:func:`~amtheory.diffusion.group_model.group_hidden`, then
:func:`~amtheory.diffusion.group_model.group_head`) and hands each member its rows. Since every member of a study
makes the same calls in the same order (the same measurement on blocks of the same shape), the G measurements
advance in step and each forward pass serves them all; where their paths part (a basin search that stops early, a
member that has fewer cells left) the rounds still serve whichever members are waiting.

Each member's results are what its measurement gives alone: it draws from its own generator in its own order, and
its logits equal its DiT's up to float rounding of the batched products (the CPU tests compare whole tables).
Members that finish leave the group: later rounds run only the rest (their weights gathered once per change).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from amtheory.diffusion.group_eval import GroupDenoiser
from amtheory.diffusion.group_model import group_head, group_hidden

__all__ = ["LockstepNetwork", "run_in_lockstep"]


class _Rounds:
    """The meeting point of the members' network calls (see the module docstring)."""

    def __init__(self, denoiser: GroupDenoiser):
        self.denoiser = denoiser
        self.cond = threading.Condition()
        self.live: set[int] = set()
        self.pending: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.results: dict[int, Any] = {}
        self.rounds = 0
        self._subset: tuple[tuple[int, ...], dict[str, torch.Tensor]] | None = None

    def call(self, g: int, x_BL: torch.Tensor, sigma_B: torch.Tensor) -> torch.Tensor:
        with self.cond:
            if g not in self.live:
                raise RuntimeError(f"member {g}: its network was called outside run_in_lockstep")
            self.pending[g] = (x_BL, sigma_B)
            self._run_if_all_waiting()
            while g not in self.results:
                self.cond.wait()
            out = self.results.pop(g)
        if isinstance(out, BaseException):
            raise out
        return out

    def finish(self, g: int) -> None:
        with self.cond:
            self.live.discard(g)
            self._run_if_all_waiting()

    def _params(self, members: tuple[int, ...]) -> dict[str, torch.Tensor]:
        d = self.denoiser
        if len(members) == d.n_members:
            return d.params
        if self._subset is None or self._subset[0] != members:
            self._subset = (members, d.subgroup(members).params)
        return self._subset[1]

    def _run_if_all_waiting(self) -> None:
        # Called with the lock held.
        if not self.pending or len(self.pending) < len(self.live):
            return
        requests, self.pending = self.pending, {}
        self.rounds += 1
        by_length: dict[int, list[int]] = {}
        for g, (x, _) in requests.items():
            by_length.setdefault(int(x.shape[1]), []).append(g)
        for members in by_length.values():
            try:
                outs = self._forward(tuple(sorted(members)), requests)
            except Exception as exc:  # every member of the round sees the error of its call
                outs = dict.fromkeys(members, exc)
            self.results.update(outs)
        self.cond.notify_all()

    def _forward(self, members: tuple[int, ...], requests) -> dict[int, torch.Tensor]:
        d = self.denoiser
        sizes = [int(requests[g][0].shape[0]) for g in members]
        B = max(sizes)
        if B == 0:
            return {g: requests[g][0].new_empty((0, requests[g][0].shape[1], d.vocab_size), dtype=torch.float32)
                    for g in members}  # fmt: skip
        xs, ss = [], []
        for g, n in zip(members, sizes):
            x, s = requests[g]
            x, s = x.to(d.device), s.to(device=d.device, dtype=torch.float32)
            if n < B:  # pad with the member's own first row (its outputs for the padding are dropped)
                x = torch.cat([x, x[:1].expand(B - n, -1)]) if n else x.new_zeros((B, x.shape[1]))
                s = torch.cat([s, s[:1].expand(B - n)]) if n else s.new_ones(B)
            xs.append(x)
            ss.append(s)
        params = self._params(members)
        dt = d.autocast_dtype
        with torch.inference_mode(), torch.autocast(d.device.type, dtype=dt, enabled=dt is not None):
            h = group_hidden(d.layout, params, d.tables, torch.stack(xs), torch.stack(ss), attention=d.attention)
            logits = group_head(h, params["out.weight"], params["out.bias"]).float()
        return {g: logits[i, :n] for i, (g, n) in enumerate(zip(members, sizes))}


class LockstepNetwork(torch.nn.Module):
    """Member ``g`` of a lockstep group as a network ``forward(x_BL, sigma_B) -> logits [B, L, V]`` (float32), for
    wrapping in a ``UniformDiffusionLM``. Its one parameter is the member's weight row (so ``n_parameters`` and the
    device are the member's). Only callable inside :func:`run_in_lockstep`."""

    def __init__(self, rounds: _Rounds, g: int):
        super().__init__()
        self._rounds, self.member = rounds, g
        self.weights = torch.nn.Parameter(rounds.denoiser.weights[g], requires_grad=False)
        self.config = rounds.denoiser.config

    def forward(self, x_BL: torch.Tensor, sigma_B: torch.Tensor) -> torch.Tensor:
        return self._rounds.call(self.member, x_BL, sigma_B)


def run_in_lockstep(
    denoiser: GroupDenoiser, tasks: Sequence[Callable[[LockstepNetwork], Any]], *, stats: dict | None = None
) -> list[Any]:
    """Run ``tasks[g](network_g)`` for every member ``g`` of ``denoiser`` (one task per member), each in its own
    thread, with their network calls batched into shared forward passes; returns the tasks' results in order.
    If tasks raise, the others still run to their end and the first member's error is raised afterwards.
    ``stats``: a dict that receives ``rounds``, the number of shared forward passes (a diagnostic)."""
    if not isinstance(denoiser, GroupDenoiser):
        raise TypeError(f"denoiser: expected a GroupDenoiser, got {type(denoiser).__name__}")
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence):
        raise TypeError(f"tasks: expected a sequence of callables, one per member, got {type(tasks).__name__}")
    if len(tasks) != denoiser.n_members:
        raise ValueError(f"tasks: expected one task per member ({denoiser.n_members}), got {len(tasks)}")
    for g, task in enumerate(tasks):
        if not callable(task):
            raise TypeError(f"tasks[{g}]: expected a callable task(network), got {type(task).__name__}")
    rounds = _Rounds(denoiser)
    networks = [LockstepNetwork(rounds, g) for g in range(len(tasks))]
    rounds.live = set(range(len(tasks)))
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException | None] = [None] * len(tasks)

    def work(g: int) -> None:
        try:
            results[g] = tasks[g](networks[g])
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller's thread below
            errors[g] = exc
        finally:
            rounds.finish(g)

    threads = [threading.Thread(target=work, args=(g,), name=f"lockstep-{g}", daemon=True) for g in range(len(tasks))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if stats is not None:
        stats["rounds"] = rounds.rounds
    for exc in errors:
        if exc is not None:
            raise exc
    return results
