"""How far a denoiser is from the memorization limit.

On the same forward-corrupted inputs ``x_t ~ q(x_t | x_0)``, compare a denoiser's per-token posterior with the
exact posterior of the memorizing denoiser over the reference set (``EmpiricalDenoiser``):

    KL_i(x_t) = sum_v p_emp(x_0,i = v | x_t) [log p_emp(x_0,i = v | x_t) - log p_den(x_0,i = v | x_t)],

averaged over positions, together with the share of positions whose most probable token differs. A UDDM in the
memorization regime computes the empirical posterior (Pham et al. 2026), so the KL is near zero there and grows as
the model generalizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from amtheory.core._checks import check_generator, check_int
from amtheory.core.entropy import PART_ENTRIES
from amtheory.diffusion.denoiser import Denoiser, check_time
from amtheory.diffusion.empirical import EmpiricalDenoiser
from amtheory.diffusion.sampler import corrupt_forward


def per_token_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` per position ``[..., L]`` from log-probabilities ``[..., L, V]``; terms with p = 0 vanish.

    Summed in float64 over parts of at most ``PART_ENTRIES`` entries (``amtheory.core.entropy``), so its temporaries
    stay small whatever the size of the inputs (a lockstep group computes it for every member at once)."""
    log_p, log_q = torch.broadcast_tensors(log_p, log_q)
    V = log_p.shape[-1]
    lp_all, lq_all = log_p.reshape(-1, V), log_q.reshape(-1, V)
    out = torch.empty(lp_all.shape[0], dtype=torch.float64, device=log_p.device)
    step = max(1, PART_ENTRIES // max(V, 1))
    for lo in range(0, lp_all.shape[0], step):
        lp, lq = lp_all[lo : lo + step].double(), lq_all[lo : lo + step].double()
        p = lp.exp()
        # 0 log 0 = 0 even where q is 0 too; p > 0 with q = 0 gives +inf, as it should.
        out[lo : lo + step] = torch.where(p > 0, p * (lp - lq), 0.0).sum(-1)
    return out.reshape(log_p.shape[:-1])


def kl_from_memorization(
    denoiser: Denoiser,
    empirical: EmpiricalDenoiser,
    x0: torch.Tensor,
    *,
    ts: Sequence[float] = (0.05, 0.1, 0.25, 0.5),
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
):
    """Per (sequence, t): mean per-token ``KL(p_empirical || p_denoiser)`` on shared inputs ``x_t ~ q(. | x0)``.

    Returns a tidy pandas DataFrame with columns ``sequence`` (row of ``x0``), ``t``, ``fraction_changed`` (of the
    corrupted input), ``kl`` (nats per token), ``kl_changed`` (mean over the positions the corruption changed;
    NaN where none changed) and ``argmax_differs`` (share of positions whose most probable clean token differs).
    ``x0`` ``[B, L]`` lives on ``empirical``'s device; the denoiser's inputs are moved to its own device.
    """
    import pandas as pd

    for name, d in (("denoiser", denoiser), ("empirical", empirical)):
        if not isinstance(d, Denoiser):
            raise TypeError(f"{name}: expected an amtheory.diffusion Denoiser, got {type(d).__name__}")
    if not isinstance(empirical, EmpiricalDenoiser):
        raise TypeError(f"empirical: expected an EmpiricalDenoiser, got {type(empirical).__name__}")
    x0 = empirical.check_queries("x0", x0)
    if denoiser.vocab_size_ != empirical.vocab_size_ or denoiser.length_ != empirical.length_:
        raise ValueError(
            f"denoiser: expected vocab_size {empirical.vocab_size_} and length {empirical.length_} as the empirical "
            f"denoiser's, got vocab_size {denoiser.vocab_size_} and length {denoiser.length_}"
        )
    check_generator("generator", generator)
    if batch_size is not None:
        check_int("batch_size", batch_size, minimum=1)
    ts = [float(t) for t in ts]
    if not ts:
        raise ValueError("ts: expected at least one time in (0, 1], got none")
    for t in ts:
        check_time("ts", t, 1, "cpu")
    B = x0.shape[0]
    step = batch_size or max(B, 1)
    frames = []
    for t in ts:
        xt = corrupt_forward(x0, t, empirical.vocab_size_, generator)
        kl, kl_ch, differs = [], [], []
        for lo in range(0, B, step):
            x_c = xt.states[lo : lo + step]
            lp_e = empirical.log_posterior(x_c, t)
            lp_d = denoiser.log_posterior(x_c.to(denoiser.device), t).to(lp_e.device)
            k = per_token_kl(lp_e, lp_d)
            ch = xt.changed[lo : lo + step]
            kl.append(k.mean(-1))
            n_ch = ch.sum(-1)
            kl_ch.append(
                torch.where(n_ch > 0, torch.where(ch, k, torch.zeros_like(k)).sum(-1) / n_ch.clamp_min(1), torch.nan)
            )
            differs.append((lp_e.argmax(-1) != lp_d.argmax(-1)).double().mean(-1))
        frames.append(
            pd.DataFrame(
                {
                    "sequence": range(B),
                    "t": t,
                    "fraction_changed": xt.fraction_changed.double().cpu().numpy(),
                    "kl": torch.cat(kl).cpu().numpy(),
                    "kl_changed": torch.cat(kl_ch).cpu().numpy(),
                    "argmax_differs": torch.cat(differs).cpu().numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
