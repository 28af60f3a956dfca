"""One reverse step of the uniform-diffusion chain: the posterior probabilities and argmax of an intermediate step,
and the final step into ``t = 0``."""

from __future__ import annotations

import torch

from amtheory.core._checks import (
    NonFiniteError,
    check_finite_rows,
    check_float,
    check_tokens,
)
from amtheory.core.dynamics import argmax_keep
from amtheory.diffusion.chain_kernels import ChainStats, chain_stats
from amtheory.diffusion.schedule import alpha, one_minus_alpha

# Grid times closer than this to a query's own start are the start itself (no near-zero-length step); large enough
# that a float32 start such as 0.1 (0.10000000149...) lands on the grid point 0.1.
_TIME_TOL = 1e-6


def _as_col(a: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A float or ``[B]`` tensor as float64 ``[B, 1, 1]`` (or a 0-d tensor) on ``like``'s device."""
    a = torch.as_tensor(a, dtype=torch.float64, device=like.device)
    return a.reshape(-1, 1, 1) if a.dim() == 1 else a


def _check_alpha(name: str, a: object) -> None:
    if isinstance(a, torch.Tensor):
        if not a.is_floating_point() or a.dim() > 1:
            raise ValueError(f"{name}: expected a float or a [B] floating tensor, got {a.dtype} {tuple(a.shape)}")
        if a.numel() and not (float(a.min()) > 0.0 and float(a.max()) <= 1.0):
            raise ValueError(f"{name}: expected values in (0, 1], got [{float(a.min())}, {float(a.max())}]")
    else:
        check_float(name, a, minimum=0.0, maximum=1.0, strict_min=True)


def _step_coefficients(alpha_t, alpha_s, gap, one_minus_s, like: torch.Tensor, V: int):
    """``(a_t, a_s - a_t, c, stay)`` as float64 columns: ``c = (1 - a_ts)(1 - a_s) / V`` and ``stay = a_ts - a_t``,
    written with ``gap = a_s - a_t`` and ``1 - a_s`` (from the alphas where those are None)."""
    a_t, a_s = _as_col(alpha_t, like), _as_col(alpha_s, like)
    d = a_s - a_t if gap is None else _as_col(gap, like)
    om_s = 1.0 - a_s if one_minus_s is None else _as_col(one_minus_s, like)
    return a_t, d, d * om_s / (a_s * V), a_t * om_s / a_s


def _check_mass(total: torch.Tensor) -> None:
    """Raise unless every step distribution has a finite, positive total weight."""
    if not bool(((total > 0) & torch.isfinite(total)).all()):
        n = int((~((total > 0) & torch.isfinite(total))).sum())
        raise NonFiniteError(
            f"log_x_theta: expected a step distribution with finite, positive mass at every position, got {n} "
            "positions without (a non-finite model output, or no noise at either time while the model rules out "
            "the current token)"
        )


def _step_probs(log_x: torch.Tensor, x_t: torch.Tensor, alpha_t, alpha_s, gap=None, one_minus_s=None) -> torch.Tensor:
    x = log_x.double().exp()
    V = x.shape[-1]
    a_t, d, c, stay = _step_coefficients(alpha_t, alpha_s, gap, one_minus_s, x, V)
    out = d * x + c
    z = x_t.unsqueeze(-1)
    # The terms carrying z live only at the current token; add them there instead of building a one-hot.
    at_z = V * a_t * x.gather(-1, z) + stay
    out = out.scatter_add(-1, z, at_z)
    total = out.sum(-1, keepdim=True)
    _check_mass(total)
    return out / total


def _step_mode(log_x: torch.Tensor, x_t: torch.Tensor, alpha_t, alpha_s, gap=None, one_minus_s=None, stats=None):
    """``argmax_keep(_step_probs(...), x_t)`` without forming the ``[B, L, V]`` float64 distribution.

    Off the current token ``z`` the unnormalized step weight ``(a_s - a_t) x(v) + c`` increases with ``x(v)``
    (``a_s >= a_t``), and ``z`` weighs at least as much as any token with the same ``x``, so only the argmax of
    ``log_x`` (first index on ties, as ``argmax``) can beat ``z``: its weight and that of ``z`` are compared in
    float64 as in :func:`_step_probs` (ties keep ``z``; if the argmax is ``z`` itself, ``z`` stays). ``log_x`` may
    be unnormalized (logits): the probabilities are ``exp(log_x - lse)`` from its :class:`ChainStats` ``stats``
    (found here where None), one read of ``log_x`` instead of about eight float64 passes over ``[B, L, V]``.
    """
    st = chain_stats(log_x, x_t) if stats is None else stats
    # The log-sum-exp is NaN where any entry is NaN or +inf, -inf where all are -inf: nothing to step from.
    check_finite_rows("log_x_theta", st.lse)
    V = log_x.shape[-1]
    a_t, d, c, stay = (v.squeeze(-1) for v in _step_coefficients(alpha_t, alpha_s, gap, one_minus_s, log_x, V))
    lse = st.lse.double()
    x_z = (st.at_z.double() - lse).exp()
    w_other = d * (st.top.double() - lse).exp() + c
    w_z = d * x_z + c + (V * a_t * x_z + stay)
    _check_mass(torch.maximum(w_z, w_other))
    return torch.where(w_z >= w_other, x_t, st.best)


def _check_step_inputs(log_x_theta: object, x_t: object) -> None:
    if not isinstance(log_x_theta, torch.Tensor) or not log_x_theta.is_floating_point() or log_x_theta.dim() != 3:
        got = f"{log_x_theta.dtype} {tuple(log_x_theta.shape)}" if isinstance(log_x_theta, torch.Tensor) else ""
        raise TypeError(f"log_x_theta: expected a float tensor [B, L, V], got {type(log_x_theta).__name__} {got}")
    check_tokens("x_t", x_t, vocab_size=log_x_theta.shape[-1], rank=2)
    if tuple(x_t.shape) != tuple(log_x_theta.shape[:2]):
        raise ValueError(f"x_t: expected shape {tuple(log_x_theta.shape[:2])}, got {tuple(x_t.shape)}")


def posterior_step_probs(
    log_x_theta: torch.Tensor,
    x_t: torch.Tensor,
    alpha_t: torch.Tensor | float,
    alpha_s: torch.Tensor | float,
) -> torch.Tensor:
    """Reverse-step distribution ``q(x_s | x_t, x_theta)`` ``[B, L, V]`` (float64, normalized) for ``s < t``.

    ``q ∝ V a_t x*z + (a_ts - a_t) z + (a_s - a_t) x + (1 - a_ts)(1 - a_s)/V`` with ``x = exp(log_x_theta)``,
    ``z = onehot(x_t)``, ``a_ts = a_t / a_s``; ``alpha_t <= alpha_s`` are floats or ``[B]`` tensors.
    """
    _check_step_inputs(log_x_theta, x_t)
    _check_alpha("alpha_t", alpha_t)
    _check_alpha("alpha_s", alpha_s)
    if bool((torch.as_tensor(alpha_t, dtype=torch.float64) > torch.as_tensor(alpha_s, dtype=torch.float64)).any()):
        raise ValueError("alpha_t, alpha_s: expected alpha_t <= alpha_s (a reverse step goes from t to s <= t)")
    return _step_probs(log_x_theta, x_t, alpha_t, alpha_s)


def _final_scores(log_x: torch.Tensor, x_t: torch.Tensor, alpha_t, one_minus_t=None) -> torch.Tensor:
    """``log x(v) + log(V a_t 1(v = x_t) + 1 - a_t)``, float64, with ``1 - a_t`` from the alpha where
    ``one_minus_t`` is None."""
    a_t = _as_col(alpha_t, log_x)
    om_t = 1.0 - a_t if one_minus_t is None else _as_col(one_minus_t, log_x)
    V = log_x.shape[-1]
    log_om = torch.log(om_t)
    out = log_x.double() + log_om
    z = x_t.unsqueeze(-1)
    # log(V a_t + 1 - a_t) - log(1 - a_t) extra at the current token: the weight V a_t 1(v = x_t) + 1 - a_t.
    bonus = torch.log(V * a_t + om_t) - log_om
    return out.scatter_add(-1, z, bonus.expand(z.shape))


def _final_mode(log_x: torch.Tensor, x_t: torch.Tensor, alpha_t, one_minus_t, source: str = "", stats=None):
    """``argmax_keep(_final_scores(...), x_t)`` without forming the ``[B, L, V]`` float64 scores: only the current
    token's score is raised, so the winner is either it or the first argmax of ``log_x``, compared in float64 as
    the scores would be (ties keep the current token). The comparison does not depend on a constant added to a
    position's ``log_x``, so logits serve as well as log-probabilities (``stats``: their :class:`ChainStats`)."""
    st = chain_stats(log_x, x_t) if stats is None else stats
    check_finite_rows("log_x_theta", st.lse, source=source)
    a_t = _as_col(alpha_t, log_x).squeeze(-1)
    om_t = _as_col(one_minus_t, log_x).squeeze(-1)
    log_om = torch.log(om_t)
    s_best = st.top.double() + log_om
    s_z = (st.at_z.double() + log_om) + (torch.log(log_x.shape[-1] * a_t + om_t) - log_om)
    return torch.where(s_z >= s_best, x_t, st.best)


def final_step(log_x_theta: torch.Tensor, x_t: torch.Tensor, alpha_t: torch.Tensor | float) -> torch.Tensor:
    """Noise removal into ``s = 0``: ``argmax_v x_theta(v) (V alpha_t 1(v = x_t) + 1 - alpha_t)``, ``[B, L]``.

    This is the mode of ``q(x_0 | x_t, x_theta)`` (the reverse step with ``alpha_s = 1``); ties keep ``x_t``.
    """
    _check_step_inputs(log_x_theta, x_t)
    _check_alpha("alpha_t", alpha_t)
    if bool((torch.as_tensor(alpha_t, dtype=torch.float64) >= 1.0).any()):
        raise ValueError("alpha_t: expected alpha_t < 1 for the final step (t > 0)")
    return argmax_keep(_final_scores(log_x_theta, x_t, alpha_t), x_t)


def _step_parts(log_x: torch.Tensor, x_t: torch.Tensor, alpha_t, alpha_s, gap, one_minus_s, stats=None):
    """The three parts of the step weight of :func:`_step_probs` per position, float64 ``[B, L]``: ``V a_t x(z) +
    stay`` at the current token ``z``, ``c`` at each of the ``V`` tokens, and ``(a_s - a_t) x(v)`` summed over
    ``v``, with ``x = exp(log_x - lse)`` (``log_x`` may be logits; ``lse`` from its :class:`ChainStats`
    ``stats``, found here where None), ``d = a_s - a_t`` and ``c``. Returns ``(stats, d, c, w_z, w_c, w_x)``.

    The sum of ``x`` over the vocabulary is 1 by construction: ``w_x = d``. Summing the float32 probabilities
    instead gives 1 to within about 1e-6 (relative), at the cost of a pass over ``[B, L, V]``; the draw rescales
    its cumulative sum to its own end (:func:`_step_draw`), so the two cannot disagree on where the part ends."""
    st = chain_stats(log_x, x_t) if stats is None else stats
    V = log_x.shape[-1]
    a_t, d, c, stay = (v.squeeze(-1) for v in _step_coefficients(alpha_t, alpha_s, gap, one_minus_s, log_x, V))
    w_z = V * a_t * (st.at_z.double() - st.lse.double()).exp() + stay
    return st, d, c, w_z, (V * c).expand_as(w_z), d.expand_as(w_z)


def _step_draw(log_x: torch.Tensor, x_t: torch.Tensor, u: torch.Tensor, alpha_t, alpha_s, gap, one_minus_s, stats=None):
    """A draw from the step distribution of :func:`_step_probs` with the uniforms ``u`` ``[B, L]``, without forming
    it over the vocabulary.

    ``u`` times the total weight falls in one of its three parts (:func:`_step_parts`), laid end to end in that
    order: the first gives ``z``, the second the token its place in the uniform part names, the third an
    inverse-CDF draw from ``x``. Each token so gets its step probability, to the float32 rounding of the model's
    probabilities. Only the positions that land in the third part (2-18% of them in a step of a 50-step grid,
    ``benchmarks/cpu_bench_chain_step.txt``) read their row of ``log_x`` again, for a cumulative sum over the
    vocabulary; the rest need only the position's :class:`ChainStats`.
    """
    V = log_x.shape[-1]
    st, d, c, w_z, w_c, w_x = _step_parts(log_x, x_t, alpha_t, alpha_s, gap, one_minus_s, stats)
    check_finite_rows("log_x_theta", st.lse)
    z_or_c = w_z + w_c
    total = z_or_c + w_x
    _check_mass(total)
    s = u.double() * total
    in_c, in_x = (s >= w_z) & (s < z_or_c), s >= z_or_c
    # In the uniform part c > 0; elsewhere the quotient is not used.
    k = torch.where(in_c, (s - w_z) / torch.where(in_c, c.expand_as(s), 1.0), 0.0).floor().long().clamp_(0, V - 1)
    out = torch.where(in_c, k, x_t)
    rows = in_x.nonzero(as_tuple=True)
    if rows[0].numel():
        lx = log_x[rows]
        lx = lx.float() if lx.dtype in (torch.float16, torch.bfloat16) else lx
        cdf = (lx - st.lse[rows].to(lx.dtype).unsqueeze(-1)).exp().double().cumsum(-1)
        # Where u falls within the model's part (in [0, 1): s < total), scaled to this cumulative sum's own end, so
        # that the part's weight (w_x) and its float64 cumulative sum cannot disagree on where the part ends.
        target = (s - z_or_c)[rows] / w_x[rows] * cdf[:, -1]
        # side="right" never picks a token the model rules out, at the start of the part or at its end.
        idx = torch.searchsorted(cdf, target.unsqueeze(-1).contiguous(), right=True).squeeze(-1)
        out[rows] = idx.clamp_max(V - 1)
    return out


def chain_update(
    log_x: torch.Tensor,
    x: torch.Tensor,
    t_from: torch.Tensor,
    t_to: torch.Tensor | None,
    *,
    final: str,
    u: torch.Tensor | None,
    source: str,
    stats: ChainStats | None = None,
) -> torch.Tensor:
    """One update of the reverse chain for rows ``x`` ``[n, L]`` at times ``t_from`` ``[n]`` given the denoiser's
    ``log_x`` ``[n, L, V]``, its log posterior up to a constant per position (log-probabilities or logits): with
    ``t_to`` None the final step into t = 0 (``final`` "argmax": the denoiser's own argmax; else the posterior's),
    otherwise a step to ``t_to``, drawn with the uniforms ``u`` ``[n, L]`` or, with ``u`` None, its mode.
    ``alpha_s - alpha_t`` and ``1 - alpha_s`` come from the times, exact where both alphas round to 1. ``source``
    names the denoiser in a non-finite error. ``stats``: ``log_x``'s :class:`ChainStats` at ``x`` where the caller
    has them (:func:`~amtheory.diffusion.chain_kernels.chain_stats`, one read of ``log_x``), else found here."""
    st = chain_stats(log_x, x) if stats is None else stats
    a_t = alpha(t_from)
    if t_to is None:
        if final == "argmax":  # the denoiser's argmax, keeping the current token on ties
            check_finite_rows("log_x_theta", st.lse, source=source)
            return torch.where(st.at_z >= st.top, x, st.best)
        return _final_mode(log_x, x, a_t, one_minus_alpha(t_from), source, st)
    a_s = alpha(t_to)
    gap, om_s = one_minus_alpha(t_from - t_to), one_minus_alpha(t_to)
    if u is None:  # argmax chain: the mode, found without the float64 distribution
        return _step_mode(log_x, x, a_t, a_s, gap, om_s, st)
    return _step_draw(log_x, x, u, a_t, a_s, gap, om_s, st)
