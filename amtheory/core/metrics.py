"""Retrieval metrics as tidy per-trial records.

For a target ``x0`` ``[B, L]``, the corrupted query ``xq`` and the final state ``xf``:

* ``recovered``: share of corrupted positions (``xq != x0``) restored (``xf == x0``); NaN where nothing changed;
* ``broken``: share of clean positions (``xq == x0``) that end wrong (``xf != x0``);
* ``exact``: ``xf == x0`` everywhere;
* ``overlap``: for V = 2 the spin overlap ``(1/L) sum s_f s_0`` in [-1, 1]; for V > 2 the agreement corrected for
  chance, ``(V a - 1) / (V - 1)`` with ``a`` the share of agreeing positions;
* ``outcome``: "target", "other" (another stored pattern), "reversed" (V = 2: the spin-reversed target or any
  reversed stored pattern) or "spurious" (none of them).

``counted`` (optional ``[B, L]`` or ``[L]`` bool) restricts ``n_changed``, ``fraction_changed``, ``recovered``,
``broken`` and ``exact`` to the positions it marks (on text: the ordinary tokens, not the block's ``[CLS]`` /
``[SEP]`` frame, which any model restores and which would otherwise set a floor under every rate).
"""

from __future__ import annotations

import torch

from amtheory.core._checks import check_tokens, check_vocab_size

OUTCOMES = ("target", "other", "reversed", "spurious")


def overlap(a: torch.Tensor, b: torch.Tensor, *, vocab_size: int) -> torch.Tensor:
    """Chance-corrected agreement ``[...]`` between token tensors ``[..., L]`` (spin overlap for V = 2)."""
    agree = (a == b).double().mean(-1)
    return (vocab_size * agree - 1) / (vocab_size - 1)


def classify_outcome(
    final: torch.Tensor, target_index: torch.Tensor, stored: torch.Tensor, *, vocab_size: int
) -> torch.Tensor:
    """Outcome code per query (index into ``OUTCOMES``): 0 target, 1 other stored, 2 reversed, 3 spurious.

    ``target_index`` ``[B]`` is the row of ``stored`` each query aimed at, or -1 for an unseen target (then
    reaching any stored pattern counts as "other").
    """
    eq = (final.unsqueeze(1) == stored.unsqueeze(0)).all(-1)  # [B, K]
    rows = torch.arange(final.shape[0], device=final.device)
    hit_target = torch.zeros(final.shape[0], dtype=torch.bool, device=final.device)
    has = target_index >= 0
    hit_target[has] = eq[rows[has], target_index[has]]
    hit_any = eq.any(-1)
    code = torch.full((final.shape[0],), 3, dtype=torch.long, device=final.device)
    if vocab_size == 2:
        rev = ((1 - final).unsqueeze(1) == stored.unsqueeze(0)).all(-1).any(-1)
        code[rev] = 2
    code[hit_any & ~hit_target] = 1
    code[hit_target] = 0
    return code


def retrieval_records(
    targets: torch.Tensor,
    queries: torch.Tensor,
    finals: torch.Tensor,
    *,
    vocab_size: int,
    stored: torch.Tensor | None = None,
    target_index: torch.Tensor | None = None,
    counted: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-trial metrics (each a ``[B]`` tensor); turn into a table with ``pandas.DataFrame(...)``.

    Where the target is itself unseen, the exact match still measures retrieval of the target and "other" means
    the query fell into a stored memory instead. ``counted``: the positions the rates are taken over (default all;
    see the module docstring); ``overlap`` and ``outcome`` always use the whole sequence.
    """
    check_vocab_size("vocab_size", vocab_size)
    check_tokens("targets", targets, vocab_size=vocab_size, rank=2)
    check_tokens("queries", queries, vocab_size=vocab_size, length=targets.shape[1], rank=2)
    check_tokens("finals", finals, vocab_size=vocab_size, length=targets.shape[1], rank=2)
    if not (targets.shape == queries.shape == finals.shape):
        raise ValueError(
            f"targets, queries, finals: expected one shape, got {tuple(targets.shape)}, {tuple(queries.shape)}, "
            f"{tuple(finals.shape)}"
        )
    if counted is None:
        counted = torch.ones_like(targets, dtype=torch.bool)
    elif (
        not isinstance(counted, torch.Tensor)
        or counted.dtype != torch.bool
        or counted.shape
        not in (
            targets.shape,
            targets.shape[-1:],
        )
    ):
        raise ValueError(
            f"counted: expected a bool tensor of shape {tuple(targets.shape)} or {tuple(targets.shape[-1:])}, "
            f"got {counted!r:.80}"
        )
    counted = counted.to(targets.device).expand_as(targets)
    changed = (queries != targets) & counted
    right = finals == targets
    n_changed = changed.sum(-1)
    n_clean = (~changed & counted).sum(-1)
    n_counted = counted.sum(-1)
    rec = torch.where(n_changed > 0, (changed & right).sum(-1).double() / n_changed.clamp_min(1), torch.nan)
    broken = torch.where(n_clean > 0, (~changed & counted & ~right).sum(-1).double() / n_clean.clamp_min(1), torch.nan)
    out = {
        "n_changed": n_changed,
        "fraction_changed": torch.where(n_counted > 0, changed.sum(-1).double() / n_counted.clamp_min(1), torch.nan),
        "recovered": rec,
        "broken": broken,
        "exact": (right | ~counted).all(-1),
        "overlap": overlap(finals, targets, vocab_size=vocab_size),
    }
    if stored is not None:
        if target_index is None:
            raise ValueError("target_index: expected a [B] tensor of rows of stored (or -1) when stored is given")
        out["outcome"] = classify_outcome(finals, target_index, stored, vocab_size=vocab_size)
    return out


def records_to_frame(records: dict[str, torch.Tensor], **constants):
    """A pandas DataFrame from per-trial records, with ``outcome`` codes as names and constant columns added."""
    import pandas as pd

    cols = {k: v.detach().cpu().numpy() for k, v in records.items()}
    df = pd.DataFrame(cols)
    if "outcome" in df:
        df["outcome"] = pd.Categorical.from_codes(df["outcome"], categories=list(OUTCOMES))
    for k, v in constants.items():
        df[k] = v
    return df
