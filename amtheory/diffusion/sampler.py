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

from dataclasses import dataclass
from typing import Literal

import torch

from amtheory.core._checks import (
    NonFiniteError,
    check_choice,
    check_finite_rows,
    check_float,
    check_generator,
    check_int,
    check_tokens,
    check_vocab_fits,
    draw_device,
)
from amtheory.core.corruption import Corrupted, corrupt
from amtheory.core.dynamics import Dynamics, RetrievalResult, argmax_keep
from amtheory.diffusion.denoiser import Denoiser, check_time
from amtheory.diffusion.schedule import alpha as alpha_of_t
from amtheory.diffusion.schedule import one_minus_alpha

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


def _step_mode(log_x: torch.Tensor, x_t: torch.Tensor, alpha_t, alpha_s, gap=None, one_minus_s=None) -> torch.Tensor:
    """``argmax_keep(_step_probs(...), x_t)`` without forming the ``[B, L, V]`` float64 distribution.

    Off the current token ``z`` the unnormalized step weight ``(a_s - a_t) x(v) + c`` increases with ``x(v)``
    (``a_s >= a_t``), and ``z`` weighs at least as much as any token with the same ``x``, so only the argmax of
    ``log_x`` (first index on ties, as ``argmax``) can beat ``z``: its weight and that of ``z`` are compared in
    float64 as in :func:`_step_probs` (ties keep ``z``; if the argmax is ``z`` itself, ``z`` stays). One reduction
    over ``log_x`` in its own dtype instead of about eight float64 passes over ``[B, L, V]``.
    """
    z = x_t.unsqueeze(-1)
    l_z = log_x.gather(-1, z).squeeze(-1).double()
    l_other, best = log_x.max(dim=-1)
    # The largest log x is NaN where any entry is NaN or +inf, -inf where all are -inf: nothing to step from.
    check_finite_rows("log_x_theta", l_other)
    V = log_x.shape[-1]
    a_t, d, c, stay = (v.squeeze(-1) for v in _step_coefficients(alpha_t, alpha_s, gap, one_minus_s, log_x, V))
    x_z = l_z.exp()
    w_other = d * l_other.double().exp() + c
    w_z = d * x_z + c + (V * a_t * x_z + stay)
    _check_mass(torch.maximum(w_z, w_other))
    return torch.where(w_z >= w_other, x_t, best)


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


def final_step(log_x_theta: torch.Tensor, x_t: torch.Tensor, alpha_t: torch.Tensor | float) -> torch.Tensor:
    """Noise removal into ``s = 0``: ``argmax_v x_theta(v) (V alpha_t 1(v = x_t) + 1 - alpha_t)``, ``[B, L]``.

    This is the mode of ``q(x_0 | x_t, x_theta)`` (the reverse step with ``alpha_s = 1``); ties keep ``x_t``.
    """
    _check_step_inputs(log_x_theta, x_t)
    _check_alpha("alpha_t", alpha_t)
    if bool((torch.as_tensor(alpha_t, dtype=torch.float64) >= 1.0).any()):
        raise ValueError("alpha_t: expected alpha_t < 1 for the final step (t > 0)")
    return argmax_keep(_final_scores(log_x_theta, x_t, alpha_t), x_t)


def _draw_from_probs(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from probabilities ``p`` ``[..., V]`` with uniforms ``u`` ``[...]``."""
    cdf = p.cumsum(-1)
    # side="right" never picks a zero-probability token, even for u = 0.
    idx = torch.searchsorted(cdf, (u.double() * cdf[..., -1]).unsqueeze(-1).contiguous(), right=True).squeeze(-1)
    return idx.clamp_max(p.shape[-1] - 1)


@dataclass(frozen=True)
class ReverseDiffusion(Dynamics):
    """Reverse uniform-diffusion chain from ``t_start`` to 0, as a retrieval dynamics for a ``Denoiser``.

    ``grid="global"``: the times ``k / n_steps`` of a uniform grid over [0, 1]; each query starts at its own
    ``t_start`` and steps to every grid time below it (the paper's "1000-step grid": 250 steps from t = 0.25).
    ``grid="local"``: ``n_steps`` uniform steps over [0, t_start] per query. The step into ``t = 0`` is the final
    noise removal (``final="posterior"``: the mode of the alpha_s = 1 posterior, which keeps confident-enough
    current tokens; ``final="argmax"``: the argmax of x_theta alone). The other steps draw from
    ``q(x_s | x_t, x_theta)`` (``sampler="ancestral"``) or take its mode (``sampler="argmax"``; ties keep x_t).

    ``t_start``: a float in (0, 1], or one time per query (a [B] tensor or sequence, stored as a tuple); each
    query then joins the shared grid when the grid time falls below its own start. ``batch_size``: queries per
    denoiser call (None: the denoiser's own ``batch_size``, else all); results do not depend on it.
    """

    t_start: float | tuple[float, ...] = 0.25
    n_steps: int = 1000
    sampler: Literal["ancestral", "argmax"] = "ancestral"
    final: Literal["posterior", "argmax"] = "posterior"
    grid: Literal["global", "local"] = "global"
    batch_size: int | None = None

    def __post_init__(self):
        check_int("n_steps", self.n_steps, minimum=1)
        check_choice("sampler", self.sampler, ("ancestral", "argmax"))
        check_choice("final", self.final, ("posterior", "argmax"))
        check_choice("grid", self.grid, ("global", "local"))
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, minimum=1)
        t = self.t_start
        if isinstance(t, (torch.Tensor, list, tuple)):
            tt = torch.as_tensor(t if isinstance(t, torch.Tensor) else list(t)).detach().cpu()
            if not tt.is_floating_point() or tt.dim() != 1 or tt.numel() == 0:
                raise ValueError(f"t_start: expected a float or a non-empty 1-d sequence of times, got {t!r}")
            check_time("t_start", tt, tt.shape[0], "cpu")
            object.__setattr__(self, "t_start", tuple(float(v) for v in tt.double()))
        else:
            object.__setattr__(self, "t_start", check_float("t_start", t, minimum=0.0, maximum=1.0, strict_min=True))

    def describe(self) -> dict:
        t = self.t_start
        return {
            "dynamics": "reverse_diffusion",
            "sampler": self.sampler,
            "n_steps": self.n_steps,
            "grid": self.grid,
            "final": self.final,
            "t_start": list(t) if isinstance(t, tuple) else t,
        }

    def _schedule(self, t0: torch.Tensor):
        """Yield ``(active [B] bool, t_from [B], t_to [B], is_final)`` on the CPU, in float64."""
        n = self.n_steps
        if self.grid == "local":
            cur = t0 * n / n
            for k in range(n - 1, -1, -1):
                s = t0 * k / n
                # Near the smallest float, grid times repeat or round to 0: such zero-length steps are skipped, so
                # the final step starts from a time above 0.
                active = (cur > s) & (s > 0) if k > 0 else torch.ones_like(t0, dtype=torch.bool)
                if not bool(active.any()):
                    continue
                yield active, cur.clone(), s, k == 0
                cur = torch.where(active, s, cur)
            return
        cur = t0.clone()
        for k in range(n - 1, -1, -1):
            s = k / n
            # Every query takes the final step into 0, however close to 0 it started.
            active = cur > s + _TIME_TOL if k > 0 else cur > 0.0
            if not bool(active.any()):
                continue
            yield active, cur.clone(), torch.full_like(cur, s), k == 0
            cur = torch.where(active, torch.full_like(cur, s), cur)

    def run(
        self,
        memory: Denoiser,
        queries: torch.Tensor,
        *,
        max_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> RetrievalResult:
        """Run the chain on ``queries`` (``[B, L]``, the corrupted sequences at ``t_start``).

        ``max_steps`` is accepted for the ``Dynamics`` interface and not used: the grid fixes the chain's length.
        Every query completes its chain (``converged`` all True, ``cycled`` all False); ``steps`` counts the
        reverse steps applied to each query, the final one included.
        """
        if not isinstance(memory, Denoiser):
            raise TypeError(
                f"memory: ReverseDiffusion needs an amtheory.diffusion Denoiser, got {type(memory).__name__}"
            )
        x = memory.check_queries("queries", queries).clone()
        if max_steps is not None:
            check_int("max_steps", max_steps, minimum=0)
        check_generator("generator", generator)
        B, L = x.shape
        dev = x.device
        if isinstance(self.t_start, tuple):
            if len(self.t_start) != B:
                raise ValueError(f"t_start: expected one time per query ({B}), got {len(self.t_start)}")
            t0 = torch.tensor(self.t_start, dtype=torch.float64)
        else:
            t0 = torch.full((B,), self.t_start, dtype=torch.float64)
        chunk = self.batch_size or memory.batch_size or max(B, 1)
        V = memory.vocab_size_
        check_vocab_fits(V, (min(chunk, B), L, V), device=dev, what="the reverse-step distributions")
        where = draw_device(generator, dev)
        steps = torch.zeros(B, dtype=torch.long)
        for active, t_from, t_to, is_final in self._schedule(t0):
            steps += active.long()
            u = None
            if self.sampler == "ancestral" and not is_final:
                # One draw for the whole batch per step, so results do not depend on the chunking.
                u = torch.rand((B, L), generator=generator, device=where).to(dev)
            rows = active.nonzero().squeeze(-1)
            for lo in range(0, rows.numel(), chunk):
                r_cpu = rows[lo : lo + chunk]
                r = r_cpu.to(dev)
                x_c = x[r]
                tf = t_from[r_cpu].to(dev)
                log_x = memory._log_posterior(x_c, tf)
                a_t = alpha_of_t(tf)
                if is_final:
                    if self.final == "argmax":
                        sc = log_x.double()
                    else:
                        sc = _final_scores(log_x, x_c, a_t, one_minus_alpha(tf))
                    check_finite_rows("log_x_theta", sc.amax(-1), source=type(memory).__name__)
                    new = argmax_keep(sc, x_c)
                else:
                    tt = t_to[r_cpu].to(dev)
                    a_s = alpha_of_t(tt)
                    # alpha_s - alpha_t and 1 - alpha_s from the times: exact where both alphas round to 1.
                    gap, om_s = one_minus_alpha(tf - tt), one_minus_alpha(tt)
                    if u is None:  # argmax chain: the mode, found without the float64 distribution
                        new = _step_mode(log_x, x_c, a_t, a_s, gap, om_s)
                    else:
                        new = _draw_from_probs(_step_probs(log_x, x_c, a_t, a_s, gap, om_s), u[r])
                x[r] = new
        # Flat scalar entries, so that result tables get one column each (denoiser, t_eval, weights, ...).
        info = {**self.describe(), **memory.describe()}
        return RetrievalResult(
            states=x,
            steps=steps.to(dev),
            converged=torch.ones(B, dtype=torch.bool, device=dev),
            cycled=torch.zeros(B, dtype=torch.bool, device=dev),
            info=info,
        )


def generate(
    denoiser: Denoiser,
    n: int,
    *,
    length: int | None = None,
    n_steps: int = 1000,
    sampler: Literal["ancestral", "argmax"] = "ancestral",
    final: Literal["posterior", "argmax"] = "argmax",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` samples ``[n, L]`` from the denoiser: uniform noise at ``t = 1``, then the reverse chain.

    The default (ancestral steps on an ``n_steps`` grid, argmax last step) is the paper's generation recipe.
    ``length`` must equal the stored length (the denoiser's queries are checked against it); None uses it.
    """
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser: expected an amtheory.diffusion Denoiser, got {type(denoiser).__name__}")
    check_int("n", n, minimum=1)
    check_generator("generator", generator)
    L = denoiser.length_ if length is None else check_int("length", length, minimum=1)
    dev = denoiser.device
    noise = torch.randint(0, denoiser.vocab_size_, (n, L), generator=generator, device=draw_device(generator, dev))
    dyn = ReverseDiffusion(t_start=1.0, n_steps=n_steps, sampler=sampler, final=final, grid="global")
    return dyn.run(denoiser, noise.to(dev), generator=generator).states


def fixed_point_share(
    denoiser: Denoiser,
    sequences: torch.Tensor,
    *,
    n_steps: int = 1000,
    final: Literal["posterior", "argmax"] = "posterior",
) -> torch.Tensor:
    """Per sequence (``[B]`` bool): do argmax reverse dynamics from ``t = 1``, started at the clean sequence, return
    it unchanged? (The fixed-point test of Pham et al. 2026; the argmax chain is deterministic.)"""
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser: expected an amtheory.diffusion Denoiser, got {type(denoiser).__name__}")
    x = denoiser.check_queries("sequences", sequences)
    dyn = ReverseDiffusion(t_start=1.0, n_steps=n_steps, sampler="argmax", final=final, grid="global")
    return (dyn.run(denoiser, x).states == x).all(-1)


def corrupt_forward(
    x0: torch.Tensor,
    t: torch.Tensor | float,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> Corrupted:
    """Draw ``x_t ~ q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t)/V``: each token is replaced with
    probability ``1 - alpha_t`` by a uniform draw over all V tokens. ``t``: a float in [0, 1] or one time per row
    of ``x0`` (``[B]`` for ``x0`` ``[B, L]``)."""
    check_tokens("x0", x0, vocab_size=vocab_size, min_rank=1)
    if not isinstance(t, torch.Tensor):
        t = check_float("t", t, minimum=0.0, maximum=1.0)
        return corrupt(x0, vocab_size=vocab_size, p=1.0 - alpha_of_t(t), generator=generator)
    if x0.dim() != 2 or t.dim() != 1 or t.shape[0] != x0.shape[0] or not t.is_floating_point():
        raise ValueError(
            f"t: expected a float or a float tensor [B] for x0 [B, L], got t {tuple(t.shape)} {t.dtype} "
            f"for x0 {tuple(x0.shape)}"
        )
    tc = t.detach().double().cpu()
    if tc.numel() and not (float(tc.min()) >= 0.0 and float(tc.max()) <= 1.0):
        raise ValueError(f"t: expected times in [0, 1], got values in [{float(tc.min())}, {float(tc.max())}]")
    states = x0.clone()
    # One Bernoulli level per distinct time, in increasing order, so the draws are reproducible.
    for v in torch.unique(tc).tolist():
        r = (tc == v).nonzero().squeeze(-1).to(x0.device)
        states[r] = corrupt(x0[r], vocab_size=vocab_size, p=1.0 - alpha_of_t(v), generator=generator).states
    changed = states != x0
    return Corrupted(states=states, changed=changed, fraction_changed=changed.float().mean(dim=-1))
