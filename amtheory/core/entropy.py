"""The conditional-entropy probe: per-token entropy of a memory's predictions, a memorization signal that needs no
training data.

For a sequence ``x`` and every position ``i``, ``H_i(x) = -sum_v p(x_i = v | .) log p(x_i = v | .)`` in nats, with
``p`` the memory's ``conditionals``: the Gibbs conditional of an energy model, or a denoiser's ``p_theta(x_0 | x_t)``.
In the memorization regime the predictions on training sequences are nearly deterministic and H is near 0; a
generalizing model keeps finite entropy on most tokens (Pham, Zaki, Ambrogioni, Krotov and Negri 2026, "Language
Diffusion Models are Associative Memories Capable of Retrieving Unseen Data").
"""

from __future__ import annotations

from typing import Any

import torch

from amtheory.core._checks import NonFiniteError, check_beta, check_finite_rows, check_int, check_tokens

#: The most entries of a ``[..., V]`` table that a per-position sum over the vocabulary copies to float64 at once, so
#: that its temporaries stay at 32 MiB whatever the size of the table (many models measured at once hold large ones).
PART_ENTRIES = 2**22


def entropy_from_probs(p: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
    """``-sum p log p`` over ``dim`` (nats, float64), with ``0 log 0 = 0``; ``p`` must be a probability vector.

    A row holding NaN, an infinity or a negative entry beyond rounding raises ``NonFiniteError`` (a ``ValueError``):
    it is no probability vector, and its entropy would be NaN or silently clamped to 0.
    """
    if not isinstance(p, torch.Tensor) or not p.is_floating_point():
        got = p.dtype if isinstance(p, torch.Tensor) else type(p).__name__
        raise TypeError(f"p: expected a floating-point torch.Tensor of probabilities, got {got}")
    p = p.double()
    h = (-torch.special.xlogy(p, p)).sum(dim)
    # NaN and inf entries make h NaN or -inf; a negative entry makes xlogy NaN (the log of a negative number), and
    # rounding's tiny negative entries (-1e-17 and the like) too, so those are set to 0 first.
    if not bool(torch.isfinite(h).all()):
        clean = torch.where((p < 0) & (p > -1e-12), torch.zeros_like(p), p)
        h = (-torch.special.xlogy(clean, clean)).sum(dim)
        if not bool(torch.isfinite(h).all()):
            bad = int((~torch.isfinite(h)).sum())
            raise NonFiniteError(
                f"p: expected probability vectors (finite, non-negative), got {bad} of {h.numel()} rows with NaN, "
                "an infinity or a negative entry"
            )
    # Rounding can leave rows that sum to 1 +- eps; the entropy is kept in [0, log V].
    return h.clamp_min(0.0)


def entropy_from_log_probs(log_p: torch.Tensor, *, source: str = "") -> torch.Tensor:
    """``-sum_v p log p`` per position ``[...]`` (nats, float64) from normalized log-probabilities ``log_p [..., V]``
    (a ``log_softmax``), with ``0 log 0 = 0`` where ``log p = -inf``.

    Each term ``-p log p`` in float32 (float64 for float64 input; ``torch.special.entr``, 0 where ``p = 0``), the
    terms summed in float64, over parts of at most ``PART_ENTRIES`` entries: three passes over a part, where float64
    copies took about a dozen (a recorded trajectory takes it over ``[n, L, V]`` at every step); each term is within
    about ``1e-7`` of itself in float64. A position whose largest entry is not finite (a NaN, a +inf, or nothing
    but -inf) raises ``NonFiniteError`` (a ``ValueError``) naming ``log_p`` and ``source``.
    """
    if not isinstance(log_p, torch.Tensor) or not log_p.is_floating_point() or log_p.dim() < 1:
        got = f"{log_p.dtype} {tuple(log_p.shape)}" if isinstance(log_p, torch.Tensor) else type(log_p).__name__
        raise TypeError(f"log_p: expected a floating-point torch.Tensor [..., V] of log-probabilities, got {got}")
    V = log_p.shape[-1]
    rows = log_p.reshape(-1, V)
    out = torch.empty(rows.shape[0], dtype=torch.float64, device=log_p.device)
    step = max(1, PART_ENTRIES // max(V, 1))
    for lo in range(0, rows.shape[0], step):
        lp = rows[lo : lo + step]
        check_finite_rows("log_p", lp.amax(-1), source=source)
        if lp.dtype in (torch.float16, torch.bfloat16):
            lp = lp.float()
        out[lo : lo + step] = torch.special.entr(lp.exp()).sum(-1, dtype=torch.float64)
    # Rounding can leave rows that sum to 1 +- eps; the entropy is kept at or above 0.
    return out.clamp_min_(0.0).reshape(log_p.shape[:-1])


def conditional_entropy(
    memory: Any,
    sequences: torch.Tensor,
    *,
    beta: float | None = 1.0,
    conditionals_kwargs: dict[str, Any] | None = None,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Per-token entropy ``[B, L]`` (float32, nats) of ``memory.conditionals(sequences, ...)``.

    ``H_{b,i} = -sum_v p_{b,i,v} log p_{b,i,v}`` with ``0 log 0 = 0``. ``beta`` is passed as
    ``conditionals(x, beta=beta)`` (the Gibbs inverse temperature of an energy model); pass ``beta=None`` for models
    whose ``conditionals`` take none. ``conditionals_kwargs`` are passed on as well: a denoiser takes its time,
    e.g. ``conditional_entropy(denoiser, x, conditionals_kwargs={"t": 1e-5})``. ``batch_size`` sequences
    are evaluated at a time, so memory stays bounded for large B.
    """
    if not callable(getattr(memory, "conditionals", None)):
        raise TypeError(f"memory: expected an object with a conditionals(x, ...) method, got {type(memory).__name__}")
    x = check_tokens("sequences", sequences, rank=2)
    check_int("batch_size", batch_size, minimum=1)
    kwargs = dict(conditionals_kwargs or {})
    if beta is not None:
        if "beta" in kwargs:
            raise ValueError("conditionals_kwargs: holds 'beta' while beta is given too; pass one of them")
        kwargs["beta"] = check_beta("beta", beta)
    B, L = x.shape
    out = torch.empty(B, L, dtype=torch.float32, device=x.device)
    for start in range(0, B, batch_size):
        chunk = x[start : start + batch_size]
        p = memory.conditionals(chunk, **kwargs)
        if not isinstance(p, torch.Tensor) or p.dim() != 3 or tuple(p.shape[:2]) != tuple(chunk.shape):
            got = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(f"memory: conditionals must return [B, L, V] = [{chunk.shape[0]}, {L}, V], got {got}")
        out[start : start + chunk.shape[0]] = entropy_from_probs(p).to(torch.float32)
    return out
