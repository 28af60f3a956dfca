"""The reverse chain as a retrieval dynamics (``ReverseDiffusion``), sampling from uniform noise, the fixed-point
test, and forward corruption to a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from amtheory.core._checks import (
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
from amtheory.core.dynamics import Dynamics, RetrievalResult
from amtheory.diffusion.chain_kernels import chain_stats
from amtheory.diffusion.denoiser import Denoiser, check_time
from amtheory.diffusion.sampler.steps import _TIME_TOL, chain_update
from amtheory.diffusion.schedule import alpha as alpha_of_t


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

    def start_times(self, n_queries: int) -> torch.Tensor:
        """Each query's start time, float64 ``[n_queries]``: ``t_start`` for all, or its per-query tuple."""
        if isinstance(self.t_start, tuple):
            if len(self.t_start) != n_queries:
                raise ValueError(f"t_start: expected one time per query ({n_queries}), got {len(self.t_start)}")
            return torch.tensor(self.t_start, dtype=torch.float64)
        return torch.full((n_queries,), self.t_start, dtype=torch.float64)

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
        observe: Callable[..., None] | None = None,
    ) -> RetrievalResult:
        """Run the chain on ``queries`` (``[B, L]``, the corrupted sequences at ``t_start``).

        ``max_steps`` is accepted for the ``Dynamics`` interface and not used: the grid fixes the chain's length.
        Every query completes its chain (``converged`` all True, ``cycled`` all False); ``steps`` counts the
        reverse steps applied to each query, the final one included.

        ``observe``: called as ``observe(step, rows, t, x_t, log_x)`` with every denoiser prediction the chain
        makes, before the step uses it: ``step`` counts the chain's steps from 0, ``rows`` (CPU long) are the
        queries of this call, ``t`` (float64 ``[r]``) their current times, ``x_t`` ``[r, L]`` their states and
        ``log_x`` ``[r, L, V]`` the prediction ``log p(x_0 | x_t)``. It reads and must not modify them; the chain and
        its draws are the same with or without it.
        """
        if not isinstance(memory, Denoiser):
            raise TypeError(
                f"memory: ReverseDiffusion needs an amtheory.diffusion Denoiser, got {type(memory).__name__}"
            )
        x = memory.check_queries("queries", queries).clone()
        if max_steps is not None:
            check_int("max_steps", max_steps, minimum=0)
        check_generator("generator", generator)
        if observe is not None and not callable(observe):
            raise TypeError(f"observe: expected a callable or None, got {type(observe).__name__}")
        B, L = x.shape
        dev = x.device
        t0 = self.start_times(B)
        chunk = self.batch_size or memory.batch_size or max(B, 1)
        V = memory.vocab_size_
        check_vocab_fits(V, (min(chunk, B), L, V), device=dev, what="the reverse-step distributions")
        where = draw_device(generator, dev)
        steps = torch.zeros(B, dtype=torch.long)
        for step, (active, t_from, t_to, is_final) in enumerate(self._schedule(t0)):
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
                log_x = memory._chain_logits(x_c, tf)
                stats = chain_stats(log_x, x_c)
                if observe is not None:
                    check_finite_rows("log_x_theta", stats.lse, source=type(memory).__name__)
                    observe(step, r_cpu, tf, x_c, log_x - stats.lse.to(log_x.dtype).unsqueeze(-1))
                t_to_r = None if is_final else t_to[r_cpu].to(dev)
                new = chain_update(
                    log_x,
                    x_c,
                    tf,
                    t_to_r,
                    final=self.final,
                    u=None if u is None else u[r],
                    source=type(memory).__name__,
                    stats=stats,
                )
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
    observe: Callable[..., None] | None = None,
) -> torch.Tensor:
    """``n`` samples ``[n, L]`` from the denoiser: uniform noise at ``t = 1``, then the reverse chain.

    The default (ancestral steps on an ``n_steps`` grid, argmax last step) is the paper's generation recipe.
    ``length`` must equal the stored length (the denoiser's queries are checked against it); None uses it.
    ``observe`` sees every prediction of the chain (``ReverseDiffusion.run``) without changing the samples.
    """
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser: expected an amtheory.diffusion Denoiser, got {type(denoiser).__name__}")
    check_int("n", n, minimum=1)
    check_generator("generator", generator)
    L = denoiser.length_ if length is None else check_int("length", length, minimum=1)
    dev = denoiser.device
    noise = torch.randint(0, denoiser.vocab_size_, (n, L), generator=generator, device=draw_device(generator, dev))
    dyn = ReverseDiffusion(t_start=1.0, n_steps=n_steps, sampler=sampler, final=final, grid="global")
    return dyn.run(denoiser, noise.to(dev), generator=generator, observe=observe).states


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
