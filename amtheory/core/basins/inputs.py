"""Checks of the arguments shared by the recovery curve and the basin radius."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from amtheory.core._checks import check_beta, check_float, check_int, check_tokens
from amtheory.core.dynamics import Dynamics, make_dynamics
from amtheory.core.interface import AssociativeMemory


def _as_array(name: str, v: object) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected an integer or an array of integers, got {type(v).__name__}") from e
    return a


# ---------------------------------------------------------------------------------------------------------------
# Shared validation
# ---------------------------------------------------------------------------------------------------------------


def _check_memory(memory: object) -> AssociativeMemory:
    if not isinstance(memory, AssociativeMemory):
        raise TypeError(f"memory: expected an AssociativeMemory, got {type(memory).__name__}")
    return memory


def _check_targets(memory: AssociativeMemory, targets: object) -> torch.Tensor:
    targets = memory.check_queries("targets", targets)
    if targets.shape[0] == 0:
        raise ValueError("targets: expected at least one target (shape [K, L] with K >= 1), got K = 0")
    return targets


def _dynamics(update: str | Dynamics, beta: float | None) -> Dynamics:
    if isinstance(update, Dynamics):
        if beta is not None:
            raise ValueError(f"beta: a Dynamics object carries its own beta; expected beta=None, got {beta!r}")
        return update
    if not isinstance(update, str):
        raise TypeError(f"update: expected 'sync', 'async' or a Dynamics object, got {type(update).__name__}")
    check_beta("beta", beta, allow_none=True)
    return make_dynamics(update, beta=beta)


def _info_columns(info: dict, taken: Iterable[str]) -> dict:
    """The dynamics description as constant table columns (non-scalars as text; clashing names prefixed)."""
    taken = set(taken)
    out = {}
    for k, v in info.items():
        name = k if k not in taken else f"dynamics_{k}"
        out[name] = v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
    return out


def _resolve_stored(
    targets: torch.Tensor, stored: torch.Tensor | None, target_index: torch.Tensor | None, vocab_size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The stored set and, per target, its row in it (-1: unseen); inferred by row matching when not given."""
    if stored is None:
        if target_index is not None:
            raise ValueError("target_index: only meaningful with stored; got target_index without stored")
        return None, None
    check_tokens("stored", stored, vocab_size=vocab_size, length=targets.shape[1], rank=2)
    if stored.device != targets.device:
        raise ValueError(f"stored: expected a tensor on the targets' device {targets.device}, got {stored.device}")
    if target_index is None:
        eq = (targets.unsqueeze(1) == stored.unsqueeze(0)).all(-1)  # [K, S]
        first = eq.long().argmax(-1)
        target_index = torch.where(eq.any(-1), first, torch.full_like(first, -1))
        return stored, target_index
    if not isinstance(target_index, torch.Tensor) or target_index.dtype != torch.long:
        raise TypeError(f"target_index: expected a torch.long tensor [K], got {type(target_index).__name__}")
    if target_index.shape != (targets.shape[0],):
        raise ValueError(f"target_index: expected shape ({targets.shape[0]},), got {tuple(target_index.shape)}")
    if target_index.numel() and (int(target_index.min()) < -1 or int(target_index.max()) >= stored.shape[0]):
        raise ValueError(f"target_index: expected values in [-1, {stored.shape[0]}), got out-of-range values")
    return stored, target_index.to(targets.device)


def _check_levels(levels: object, mode: str, length: int) -> list:
    if isinstance(levels, torch.Tensor):
        levels = levels.tolist()
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Iterable):
        raise TypeError(f"levels: expected a sequence of corruption levels, got {type(levels).__name__}")
    levels = list(levels)
    if not levels:
        raise ValueError("levels: expected at least one corruption level, got an empty sequence")
    if mode == "count":
        return [check_int("levels", lv, minimum=0, maximum=length) for lv in levels]
    return [check_float("levels", lv, minimum=0.0, maximum=1.0) for lv in levels]
