"""The reverse uniform-diffusion chain as a retrieval dynamics.

One reverse step from time ``t`` to ``s < t`` draws each token from the posterior of the forward process given
the denoiser's clean-token prediction ``x = x_theta(x_t)`` (UDLM, Schiff et al. 2025; Duo, Sahoo et al. 2025),
with ``alpha_ts = alpha_t / alpha_s`` and ``z = onehot(x_t)``:

    q(x_s | x_t, x) ∝ V alpha_t x*z + (alpha_ts - alpha_t) z + (alpha_s - alpha_t) x + (1 - alpha_ts)(1 - alpha_s)/V,

normalized by ``V alpha_t <x, z> + 1 - alpha_t``. The last step, into ``s = 0`` (``alpha_s = 1``), removes the
remaining noise: ``argmax_v x(v) (V alpha_t 1(v = x_t) + 1 - alpha_t)``, which keeps the current token unless the
denoiser is confident otherwise (the argmax of ``x`` alone rewrites clean tokens of a weak model).

Every coefficient is written with ``alpha_s - alpha_t`` and ``1 - alpha_s`` (``1 - alpha_ts = (alpha_s -
alpha_t) / alpha_s``, ``alpha_ts - alpha_t = alpha_t (1 - alpha_s) / alpha_s``), sums of non-negative terms that
the chain forms from the times themselves (``schedule.one_minus_alpha``): at times so small that ``alpha`` rounds
to 1 the steps stay exact instead of dividing 0 by 0.

``ReverseDiffusion`` runs this chain from a corruption level ``t_start`` to 0 and plugs into
``amtheory.retrieve``; ``generate`` samples from uniform noise; ``fixed_point_share`` is the fixed-point test of
Pham et al. (2026): argmax dynamics from ``t = 1`` started at a clean sequence.
"""

from __future__ import annotations

from amtheory.diffusion.sampler.chain import ReverseDiffusion, corrupt_forward, fixed_point_share, generate
from amtheory.diffusion.sampler.steps import final_step, posterior_step_probs

__all__ = [
    "ReverseDiffusion",
    "corrupt_forward",
    "final_step",
    "fixed_point_share",
    "generate",
    "posterior_step_probs",
]
