"""The per-row terms of the uniform-diffusion NELBO shared by every loss path: argument checks, the loss of a row
from its statistics and the coefficients of its gradient (the formulas of :mod:`amtheory.diffusion.loss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from amtheory.core._checks import check_tokens


# --------------------------------------------------------------------------------------------------- checks
def _check_alphas(alpha_t: object, alpha_prime_t: object, B: int, device: torch.device, check_values: bool):
    out = []
    for name, v in (("alpha_t", alpha_t), ("alpha_prime_t", alpha_prime_t)):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = torch.full((B,), float(v), device=device)
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"{name}: expected a float tensor of shape ({B},), got {v!r:.80}")
        if v.dim() == 0:
            v = v.expand(B)
        if v.shape != (B,):
            raise ValueError(f"{name}: expected shape ({B},) (one value per sequence), got {tuple(v.shape)}")
        out.append(v.to(device))
    a, ap = out
    if check_values and B:
        if not bool(((a > 0) & (a < 1)).all()):
            raise ValueError(f"alpha_t: expected values in (0, 1), got range [{float(a.min())}, {float(a.max())}]")
        if not bool((torch.isfinite(ap) & (ap <= 0)).all()):
            raise ValueError(
                f"alpha_prime_t: expected finite values <= 0 (alpha_t decreases in t), got range "
                f"[{float(ap.min())}, {float(ap.max())}]"
            )
    return a, ap


def _check_pair(x0: object, xt: object, V: int, check_values: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = check_tokens("x0", x0, vocab_size=V if check_values else None, rank=2)
    xt = check_tokens("xt", xt, vocab_size=V if check_values else None, rank=2)
    if xt.shape != x0.shape:
        raise ValueError(f"xt: expected the shape of x0 {tuple(x0.shape)}, got {tuple(xt.shape)}")
    return x0, xt


# --------------------------------------------------------------------------------------------------- the loss
def _softplus_gap(lam: torch.Tensor, ell: torch.Tensor) -> torch.Tensor:
    """``softplus(lam) - softplus(lam + ell)``, accurate as ``ell -> 0`` (a confident model) for any ``lam``.

    For ``lam > 0`` both softplus values are about ``lam`` and their float32 difference would lose everything
    below ulp(lam); ``softplus(x) = x + softplus(-x)`` turns it into ``softplus(-lam) - softplus(-lam - ell) - ell``.
    """
    far = F.softplus(-lam) - F.softplus(-lam - ell) - ell
    return torch.where(lam > 0, far, F.softplus(lam) - F.softplus(lam + ell))


def _lam(a_N: torch.Tensor, V: int) -> torch.Tensor:
    """``lam = log(V alpha / (1 - alpha))`` per row: ``softplus(l + lam)`` is ``log(q_theta / c)`` of the docstring
    of :mod:`amtheory.diffusion.loss`."""
    return torch.log(V * a_N) - torch.log1p(-a_N)


def row_terms(l_k, l_i, S_rest, same, lam, a_N, ap_N, V: int):
    """The NELBO of each row from its statistics: ``l_k``, ``l_i`` the log-probabilities at ``x_0`` and ``x_t``,
    ``S_rest = sum_{j != x_0} softplus(l_j + lam)``, ``same = (x_0 == x_t)``, ``lam`` of :func:`_lam`. Returns
    ``(loss, c, u, w)`` with ``u = log r`` and ``w = -alpha' / (alpha xbar_i)`` (the two-case, one-hot-free form of
    the docstring of :mod:`amtheory.diffusion.loss`)."""
    c = (1.0 - a_N) / V
    gap_k = _softplus_gap(lam, l_k)  # = log(q_{x0} / q_theta_{x0})
    # The literal formula on the given log-probabilities: in float32 their x0 entry is quantised to ulp(logit), so
    # they need not sum to one, and for a model that has memorized a row this term can come out near -1e-12.
    kl = (a_N + c) * gap_k - c * S_rest
    u = torch.where(same, gap_k, -F.softplus(l_i + lam))  # log r
    xbar_i = torch.where(same, V * a_N + 1.0 - a_N, 1.0 - a_N)
    w = (-ap_N) / (a_N * xbar_i)
    return w * (kl + torch.expm1(u) - u), c, u, w


def row_coefficients(l_k, l_i, G, lam, c, u, w, a_N, scale: float):
    """``scale * dloss/dlogits_j = A sigmoid(l_j + lam) + P x_theta_j + ck [j = x_0] + ci [j = x_t]``; returns
    ``(A, P, ck, ci)`` per row from ``G = sum_j sigmoid(l_j + lam)`` and the terms of :func:`row_terms`.

    From ``dloss/dl_j = w (-c s_j - alpha s_{x0} [j = x0] - expm1(u) s_{x_t} [j = x_t])`` (``s = sigmoid(l +
    lam)``) and ``dloss/dlogit_j = dloss/dl_j - x_theta_j sum_m dloss/dl_m``.
    """
    ws = w * scale
    A = -ws * c
    ck = -ws * a_N * torch.sigmoid(l_k + lam)
    ci = -ws * torch.expm1(u) * torch.sigmoid(l_i + lam)
    return A, -(A * G + ck + ci), ck, ci
