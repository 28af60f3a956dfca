"""Denoisers of uniform discrete diffusion as associative memories.

A denoiser gives, for a noisy sequence ``x_t`` at diffusion time ``t``, the per-position posterior over the clean
tokens, ``p(x_0,i = v | x_t)`` (the "mean" parameterization ``x_theta`` of UDLM / Duo). Seen as an associative
memory at a fixed small time ``t_eval`` its update scores are that log posterior, so the generic ``Sync`` and
``Async`` dynamics and the conformance suite apply unchanged; the reverse-diffusion sampler
(``amtheory.diffusion.sampler.ReverseDiffusion``) uses the full time dependence. A denoiser has no energy
(Pham et al. 2026, "Language Diffusion Models are Associative Memories ...").
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from amtheory.core._checks import check_beta, check_float, check_int, check_vocab_fits
from amtheory.core.interface import AssociativeMemory, gibbs_logits


def check_time(name: str, t: object, batch: int, device: torch.device | str) -> torch.Tensor:
    """Validate a diffusion time (a float or a ``[B]`` / 0-d float tensor in (0, 1]); returns float64 ``[B]``."""
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a float or a floating-point tensor of times in (0, 1], got {t.dtype}")
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != batch):
            raise ValueError(f"{name}: expected a float or a tensor of shape [{batch}], got shape {tuple(t.shape)}")
        t64 = t.detach().to(device=device, dtype=torch.float64)
        if t64.numel():
            lo, hi = float(t64.min()), float(t64.max())
            if not (lo > 0.0 and hi <= 1.0):  # also rejects NaN
                raise ValueError(f"{name}: expected times in (0, 1], got values in [{lo}, {hi}]")
        return t64.expand(batch).clone() if t64.dim() == 0 else t64
    t = check_float(name, t, minimum=0.0, maximum=1.0, strict_min=True)
    return torch.full((batch,), t, dtype=torch.float64, device=device)


class Denoiser(AssociativeMemory):
    """Abstract base of every uniform-diffusion denoiser ``p(x_0 | x_t)``.

    Subclasses implement ``_store`` and ``_log_posterior`` (unchecked, on validated inputs);
    ``log_posterior`` is the checked public entry. ``scores(x) = log_posterior(x, t_eval)``: the deterministic
    update moves each token to the most probable clean token at the small time ``t_eval``.

    ``t_eval``: the time at which the denoiser acts as a fixed map (and at which ``conditionals`` defaults), in
    (0, 1]; ``batch_size``: the most sequences handed to ``_log_posterior`` at once by the sampler and the
    distance measures (None: all at once).
    """

    has_energy: ClassVar[bool] = False

    def __init__(self, *, t_eval: float = 1e-5, batch_size: int | None = None):
        self.t_eval = check_float("t_eval", t_eval, minimum=0.0, maximum=1.0, strict_min=True)
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1)
        self.batch_size = batch_size

    @abc.abstractmethod
    def _log_posterior(self, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        """``log p(x_0,i = v | x_t)`` ``[B, L, V]`` (float) for validated tokens and float64 times ``[B]``."""

    def _chain_logits(self, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        """What the reverse chain reads: ``log p(x_0,i = v | x_t)`` up to a constant per position, ``[B, L, V]``,
        for validated inputs (the log posterior itself; a network's logits where it has them, which spares a
        normalization over the vocabulary)."""
        return self._log_posterior(x_BL, t_B)

    def log_posterior(self, x_t_BL: torch.Tensor, t_B: torch.Tensor | float) -> torch.Tensor:
        """Per-position log posterior ``log p(x_0,i = v | x_t)`` ``[B, L, V]`` at time ``t`` (float or ``[B]``).

        Each row is a normalized log-probability vector over the V tokens; ``t`` must lie in (0, 1].
        """
        x = self.check_queries("x_t_BL", x_t_BL)
        t = check_time("t_B", t_B, x.shape[0], x.device)
        return self._log_posterior(x, t)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_0 | x_t = x)`` at ``t_eval``, ``[B, L, V]``."""
        return self.log_posterior(x, self.t_eval)

    def conditionals(
        self, x: torch.Tensor, *, beta: float = 1.0, t: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        """``p(x_0,i = v | x_t = x)^beta``, renormalized per position, ``[B, L, V]`` (float32).

        ``t`` defaults to ``t_eval``; ``beta = 1`` is the denoiser's own posterior, ``beta = 0`` the uniform one.
        """
        x = self.check_queries("x", x)
        beta = check_beta("beta", beta)
        t_B = check_time("t", self.t_eval if t is None else t, x.shape[0], x.device)
        check_vocab_fits(self.vocab_size_, (*x.shape, self.vocab_size_), device=x.device, what="the conditionals")
        # gibbs_logits floors log p = -inf (tokens of zero posterior), so beta = 0 gives the uniform distribution,
        # and subtracts the largest log p before scaling, so a huge beta gives the posterior's mode.
        z = gibbs_logits(self._log_posterior(x, t_B), beta, source=type(self).__name__)
        return torch.softmax(z, dim=-1).to(torch.float32)

    def entropy(self, x: torch.Tensor, *, t: torch.Tensor | float | None = None) -> torch.Tensor:
        """Per-token entropy ``[B, L]`` (float32, nats) of ``p(x_0 | x_t = x)`` at ``t`` (default ``t_eval``): what
        ``conditional_entropy(self, x, beta=1.0, conditionals_kwargs={"t": t})`` gives, from the log posterior
        directly (:func:`~amtheory.core.entropy.entropy_from_log_probs`) rather than through float64 copies of
        ``[B, L, V]``; ``batch_size`` sequences at a time."""
        from amtheory.core.entropy import entropy_from_log_probs

        x = self.check_queries("x", x)
        t_B = check_time("t", self.t_eval if t is None else t, x.shape[0], x.device)
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        step = self.batch_size or max(x.shape[0], 1)
        for lo in range(0, x.shape[0], step):
            lp = self._log_posterior(x[lo : lo + step], t_B[lo : lo + step])
            out[lo : lo + step] = entropy_from_log_probs(lp, source=type(self).__name__).float()
        return out

    def describe(self) -> dict:
        """What every result computed with this denoiser should record about it."""
        return {"denoiser": type(self).__name__, "t_eval": self.t_eval}
