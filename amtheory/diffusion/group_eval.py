"""Evaluating G diffusion LMs of one shape at once, each as it would be evaluated alone.

A :class:`GroupDenoiser` holds the members' weights stacked ``[G, P]`` (:mod:`amtheory.diffusion.group_model`) and
gives ``log p_theta(x_0 | x_t)`` ``[G, B, L, V]`` of every member in one batched forward pass
(:func:`~amtheory.diffusion.group_model.group_hidden`, then :func:`~amtheory.diffusion.group_model.group_head`):
member ``g``'s rows are those of :class:`~amtheory.diffusion.backend.UniformDiffusionLM` wrapping its DiT, up to
float rounding. On it:

* :meth:`GroupDenoiser.entropy`: the per-token entropy of the prediction (``conditional_entropy`` at ``beta = 1``);
* :meth:`GroupDenoiser.nelbo`: the NELBO per token (``nelbo_per_token`` on each member's log posterior), and
  :func:`group_stratified_nelbo` the study's test NELBO of blocks (:func:`stratified_nelbo_draws`: stratified
  times and forward noise, drawn per member from its own generator as the study draws them for one model);
* :func:`group_reverse_chain` (a :class:`~amtheory.diffusion.sampler.ReverseDiffusion` for all members),
  :func:`group_generate` and :func:`group_fixed_points`. The randomness is per member: member ``g`` draws its noise
  and its uniforms from ``generators[g]`` in the order the single-model chain draws them from its generator, so its
  result is what ``ReverseDiffusion.run`` / ``generate`` give for that member and that generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from amtheory.core._checks import check_finite_rows, check_generator, check_int, check_tokens, draw_device
from amtheory.core.entropy import entropy_from_log_probs
from amtheory.diffusion.chain_kernels import chain_stats
from amtheory.diffusion.denoiser import check_time
from amtheory.diffusion.group_model import GroupLayout, GroupTables, group_head, group_hidden
from amtheory.diffusion.loss import T_MIN, forward_noise, nelbo_per_token
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.sampler import ReverseDiffusion
from amtheory.diffusion.sampler.steps import chain_update
from amtheory.diffusion.schedule import alpha, alpha_prime
from amtheory.diffusion.schedule import sigma as sigma_of_t

__all__ = [
    "GroupDenoiser",
    "group_fixed_points",
    "group_generate",
    "group_reverse_chain",
    "group_stratified_nelbo",
    "stratified_nelbo_draws",
]


class GroupDenoiser:
    """The denoisers ``p_theta(x_0 | x_t)`` of G DiTs of ``config``, with stacked weights ``weights [G, P]``
    (:class:`~amtheory.diffusion.group_model.GroupLayout` order; copied to ``device``, float32).

    ``batch_size``: the most sequences per member in one forward pass (None: all). ``autocast_dtype``
    (``torch.bfloat16`` or ``torch.float16``) runs the forward pass under autocast, as ``UniformDiffusionLM`` does;
    log-probabilities are float32 either way. ``attention``: the blocks' attention kernel ("auto": as the DiT picks).
    ``block_fn``: what runs each block in place of :func:`~amtheory.diffusion.group_model.group_block` (its
    compiled version, for instance; see :func:`~amtheory.diffusion.group_model.group_hidden`).
    """

    def __init__(
        self,
        config: DiTConfig,
        weights: torch.Tensor,
        *,
        device: torch.device | str | None = None,
        batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        attention: str = "auto",
        block_fn: Callable[..., torch.Tensor] | None = None,
    ):
        if not isinstance(config, DiTConfig):
            raise TypeError(f"config: expected a DiTConfig, got {type(config).__name__}")
        if config.dropout != 0.0:
            raise ValueError(f"config.dropout: expected 0 for a group of models, got {config.dropout}")
        self.layout = GroupLayout.of(config)
        P = self.layout.width
        if not isinstance(weights, torch.Tensor) or not weights.is_floating_point():
            raise TypeError(f"weights: expected a float tensor [G, {P}], got {weights!r:.80}")
        if weights.dim() != 2 or weights.shape[0] < 1 or weights.shape[1] != P:
            raise ValueError(f"weights: expected a tensor [G, {P}] with G >= 1 (one row per member), got "
                             f"{tuple(weights.shape)}")  # fmt: skip
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1)
        if autocast_dtype is not None and autocast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"autocast_dtype: expected None, torch.bfloat16 or torch.float16, got {autocast_dtype}")
        if block_fn is not None and not callable(block_fn):
            raise TypeError(f"block_fn: expected None or a function like group_block, got {block_fn!r:.60}")
        target = torch.device(device) if device is not None else weights.device
        self.config, self.batch_size, self.block_fn = config, batch_size, block_fn
        self.autocast_dtype, self.attention = autocast_dtype, attention
        self.weights = weights.detach().to(device=target, dtype=torch.float32).clone()
        # The device of the weights, "cuda" resolved to "cuda:0": the device checks compare tensors' devices with it.
        self.device = self.weights.device
        self.params = self.layout.views(self.weights)
        self.tables = GroupTables(config, self.device)

    @classmethod
    def from_states(cls, config: DiTConfig, states: Sequence[dict[str, torch.Tensor]], **kw) -> GroupDenoiser:
        """From G DiT state dicts (``model.state_dict()`` of each member)."""
        if not isinstance(states, Sequence) or isinstance(states, dict):
            raise TypeError(f"states: expected a sequence of DiT state dicts, got {type(states).__name__}")
        if not isinstance(config, DiTConfig):
            raise TypeError(f"config: expected a DiTConfig, got {type(config).__name__}")
        return cls(config, GroupLayout.of(config).pack(list(states)), **kw)

    @classmethod
    def from_trainer(cls, trainer, *, ema: bool = True, **kw) -> GroupDenoiser:
        """From a :class:`~amtheory.diffusion.group_train.GroupTrainer`'s EMA (``ema``) or raw weights."""
        if not hasattr(trainer, "layout") or not hasattr(trainer, "ema"):
            raise TypeError(f"trainer: expected a GroupTrainer, got {type(trainer).__name__}")
        if not isinstance(ema, bool):
            raise TypeError(f"ema: expected a bool, got {type(ema).__name__}")
        kw.setdefault("device", trainer.device)
        return cls(trainer.model_config, trainer.ema if ema else trainer.weights.detach(), **kw)

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | Path], *, ema: bool = True, **kw) -> GroupDenoiser:
        """From G single-model checkpoints of one shape (``load_model``; EMA weights by default)."""
        from amtheory.diffusion.checkpoint import load_model

        if isinstance(paths, (str, Path)) or not isinstance(paths, Sequence) or not paths:
            raise TypeError(f"paths: expected a non-empty sequence of checkpoint folders, got {paths!r:.80}")
        models = [load_model(p, ema=ema, device="cpu")[0] for p in paths]
        config = models[0].config
        for g, m in enumerate(models):
            if m.config != config:
                raise ValueError(f"paths[{g}]: expected the model config of paths[0] {config}, got {m.config}")
        return cls.from_states(config, [m.state_dict() for m in models], **kw)

    def subgroup(self, members: Sequence[int], **kw) -> GroupDenoiser:
        """The denoiser of the members ``members`` (indices, in that order), with this one's settings unless ``kw``
        (``batch_size``, ``autocast_dtype``, ``attention``, ``block_fn``) overrides them."""
        if isinstance(members, (str, bytes)) or not isinstance(members, Sequence) or not members:
            raise TypeError(f"members: expected a non-empty sequence of member indices, got {members!r}")
        for g in members:
            check_int("members", g, minimum=0, maximum=self.n_members - 1)
        idx = torch.tensor(list(members), device=self.weights.device)
        settings = {"batch_size": self.batch_size, "autocast_dtype": self.autocast_dtype, "attention": self.attention,
                    "block_fn": self.block_fn}  # fmt: skip
        return GroupDenoiser(self.config, self.weights.index_select(0, idx), device=self.device, **{**settings, **kw})

    @property
    def n_members(self) -> int:
        return int(self.weights.shape[0])

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    # --------------------------------------------------------------------------------------------- checks
    def check_queries(self, name: str, x: object) -> torch.Tensor:
        """Tokens ``[G, B, L]`` in ``[0, V)`` with ``L <= config.length``, on the denoiser's device."""
        x = check_tokens(name, x, vocab_size=self.vocab_size, rank=3)
        if x.shape[0] != self.n_members:
            raise ValueError(f"{name}: expected one row of queries per member ({self.n_members}), got {x.shape[0]}")
        if x.shape[2] > self.config.length:
            raise ValueError(f"{name}: expected sequence length <= {self.config.length}, got {x.shape[2]}")
        if x.device != self.device:
            raise ValueError(f"{name}: expected a tensor on the denoiser's device {self.device}, got {x.device}")
        return x

    def check_times(self, name: str, t: object, B: int) -> torch.Tensor:
        """A float, ``[B]`` (shared by the members) or ``[G, B]`` times in (0, 1] as float64 ``[G, B]``."""
        G = self.n_members
        if isinstance(t, torch.Tensor) and t.dim() == 2:
            if tuple(t.shape) != (G, B):
                raise ValueError(f"{name}: expected a float, [{B}] or [{G}, {B}] times, got shape {tuple(t.shape)}")
            return check_time(name, t.reshape(-1), G * B, self.device).view(G, B)
        return check_time(name, t, B, self.device).expand(G, B)

    # --------------------------------------------------------------------------------------------- the denoiser
    def _logits(self, x_GBL: torch.Tensor, t_GB: torch.Tensor) -> torch.Tensor:
        sigma = sigma_of_t(t_GB.to(device=self.device, dtype=torch.float64)).to(torch.float32)
        dt = self.autocast_dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dt, enabled=dt is not None):
            h = group_hidden(self.layout, self.params, self.tables, x_GBL, sigma, attention=self.attention,
                             block_fn=self.block_fn)  # fmt: skip
            return group_head(h, self.params["out.weight"], self.params["out.bias"])

    def _forward(self, x_GBL: torch.Tensor, t_GB: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            lp = torch.log_softmax(self._logits(x_GBL, t_GB).float(), dim=-1)
        check_finite_rows("weights", lp.amax(-1), source="the logits of a member of the group")
        return lp

    def _batches(self, B: int) -> list[slice]:
        """The query slices that one forward pass takes per member: ``batch_size`` of the ``B`` at a time (all
        where it is None)."""
        step = self.batch_size or max(B, 1)
        return [slice(i, i + step) for i in range(0, B, step)]

    def _log_posterior(self, x_GBL: torch.Tensor, t_GB: torch.Tensor) -> torch.Tensor:
        return self._by_batch(self._forward, x_GBL, t_GB)

    def _chain_logits(self, x_GBL: torch.Tensor, t_GB: torch.Tensor) -> torch.Tensor:
        """The members' logits ``[G, B, L, V]``: their log posteriors up to a constant per position, unchecked (the
        chain step's log-sum-exp, :func:`~amtheory.diffusion.chain_kernels.chain_stats`, finds non-finite rows)."""
        return self._by_batch(self._logits, x_GBL, t_GB)

    def _by_batch(self, fn, x_GBL: torch.Tensor, t_GB: torch.Tensor) -> torch.Tensor:
        """``fn`` over the query slices of :meth:`_batches`, joined along the queries."""
        parts = [fn(x_GBL[:, b], t_GB[:, b]) for b in self._batches(x_GBL.shape[1])]
        return torch.cat(parts, dim=1) if len(parts) != 1 else parts[0]

    def log_posterior(self, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """``log p_theta(x_0,i = v | x_t)`` ``[G, B, L, V]`` (float32) of every member on its queries ``x_t [G, B,
        L]`` at times ``t`` (a float, ``[B]`` shared by the members, or ``[G, B]``)."""
        x = self.check_queries("x_t", x_t)
        return self._log_posterior(x, self.check_times("t", t, x.shape[1]))

    def entropy(self, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Per-token entropy ``[G, B, L]`` (float32, nats) of ``p_theta(x_0 | x_t)``: what ``conditional_entropy``
        gives for member ``g`` alone (``beta = 1``, ``conditionals_kwargs={"t": t}``), ``batch_size`` sequences per
        member at a time (only their log posterior is held)."""
        x = self.check_queries("x_t", x_t)
        B = x.shape[1]
        t_GB = self.check_times("t", t, B)
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for b in self._batches(B):
            out[:, b] = entropy_from_log_probs(self._forward(x[:, b], t_GB[:, b]), source=type(self).__name__).float()
        return out

    def nelbo(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """The continuous-time NELBO per token ``[G, B, L]`` of each member (``nelbo_per_token`` of its log
        posterior) for clean blocks ``x0``, noisy ``x_t`` ``[G, B, L]`` at times ``t`` (float, ``[B]`` or
        ``[G, B]``), ``batch_size`` blocks per member at a time (only their log posterior is held)."""
        x = self.check_queries("x_t", x_t)
        x0 = self.check_queries("x0", x0)
        if x0.shape != x.shape:
            raise ValueError(f"x0: expected the shape of x_t {tuple(x.shape)}, got {tuple(x0.shape)}")
        G, B, L = x.shape
        t_GB = self.check_times("t", t, B)
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for b in self._batches(B):
            xs, x0s, ts = x[:, b], x0[:, b], t_GB[:, b]
            n = xs.shape[1]
            lp = self._forward(xs, ts).reshape(G * n, L, -1)
            tt = ts.reshape(-1)
            per_token = nelbo_per_token(lp.float(), x0s.reshape(G * n, L), xs.reshape(G * n, L), alpha(tt).float(),
                                        alpha_prime(tt).float())  # fmt: skip
            out[:, b] = per_token.view(G, n, L)
        return out


# ------------------------------------------------------------------------------------------------- the NELBO
def stratified_nelbo_draws(
    x: torch.Tensor, n_times: int, vocab_size: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The memorization study's draws for the NELBO of blocks ``x [B, L]``: one uniform ``u`` per block, the
    stratified times ``t_k = T_MIN + (1 - T_MIN)(u + k) / n_times`` (float64 ``[B n_times]``, block-major) and the
    forward noise at them; returns ``(x0, x_t, t)`` with ``x0 = x`` repeated ``n_times`` times per block."""
    check_int("n_times", n_times, minimum=1)
    x = check_tokens("x", x, vocab_size=vocab_size, rank=2)
    check_generator("generator", generator)
    B = x.shape[0]
    u = torch.rand(B, 1, generator=generator, dtype=torch.float64)
    t = (T_MIN + (1.0 - T_MIN) * ((u + torch.arange(n_times, dtype=torch.float64)) / n_times)).reshape(-1)
    x0 = x.repeat_interleave(n_times, 0)
    xt, _, _ = forward_noise(x0, t.float(), vocab_size, generator=generator)
    return x0, xt, t


def group_stratified_nelbo(
    denoiser: GroupDenoiser, blocks: torch.Tensor, n_times: int, generators: Sequence[torch.Generator | None]
) -> torch.Tensor:
    """Each member's NELBO per token of each of its blocks ``blocks [G, B, L]``, averaged over ``n_times``
    stratified times (:func:`stratified_nelbo_draws` from ``generators[g]``): float64 ``[G, B]``, what the study's
    measurement gives for member ``g`` alone with that generator."""
    _check_denoiser(denoiser)
    x = check_tokens("blocks", blocks, vocab_size=denoiser.vocab_size, rank=3)
    G, B, L = x.shape
    gens = _check_generators(generators, G)
    draws = [stratified_nelbo_draws(x[g].cpu(), n_times, denoiser.vocab_size, gens[g]) for g in range(G)]
    x0, xt, t = (torch.stack([d[i] for d in draws]).to(denoiser.device) for i in range(3))
    per_token = denoiser.nelbo(x0, xt, t)
    return per_token.double().mean(-1).view(G, B, n_times).mean(-1).cpu()


# ------------------------------------------------------------------------------------------------- the chain
def _check_denoiser(denoiser: object) -> None:
    if not isinstance(denoiser, GroupDenoiser):
        raise TypeError(f"denoiser: expected a GroupDenoiser, got {type(denoiser).__name__}")


def _check_generators(generators: object, G: int) -> list[torch.Generator | None]:
    if generators is None:
        return [None] * G
    if isinstance(generators, torch.Generator) or not isinstance(generators, Sequence) or len(generators) != G:
        got = len(generators) if isinstance(generators, Sequence) else type(generators).__name__
        raise ValueError(f"generators: expected None or one torch.Generator per member ({G}), got {got}")
    return [check_generator(f"generators[{g}]", gen) for g, gen in enumerate(generators)]


def group_reverse_chain(
    denoiser: GroupDenoiser,
    dynamics: ReverseDiffusion,
    queries: torch.Tensor,
    *,
    generators: Sequence[torch.Generator | None] | None = None,
    observe: Callable[..., None] | None = None,
) -> torch.Tensor:
    """``dynamics`` (a :class:`ReverseDiffusion`) run for every member on its queries ``[G, B, L]``: the final
    states ``[G, B, L]``; member ``g``'s are ``dynamics.run(member_g, queries[g], generator=generators[g])``'s.
    ``observe``: called as ``ReverseDiffusion.run`` calls it, ``observe(step, rows, t, x_t, log_x)``, with the
    members' queries ``x_t [G, n, L]`` and normalized log posteriors ``log_x [G, n, L, V]``.

    ``generators``: one per member (each step's uniforms ``[B, L]`` come from member ``g``'s, in the single chain's
    order), or None (the global generator, member by member each step; argmax chains draw nothing).
    """
    _check_denoiser(denoiser)
    if not isinstance(dynamics, ReverseDiffusion):
        raise TypeError(f"dynamics: expected a ReverseDiffusion, got {type(dynamics).__name__}")
    x = denoiser.check_queries("queries", queries).clone()
    G, B, L = x.shape
    gens = _check_generators(generators, G)
    dev = x.device
    t0 = dynamics.start_times(B)
    chunk = dynamics.batch_size or denoiser.batch_size or max(B, 1)
    if observe is not None and not callable(observe):
        raise TypeError(f"observe: expected a callable or None, got {type(observe).__name__}")
    for step, (active, t_from, t_to, is_final) in enumerate(dynamics._schedule(t0)):
        u = None
        if dynamics.sampler == "ancestral" and not is_final:
            u = torch.stack([torch.rand((B, L), generator=g, device=draw_device(g, dev)).to(dev) for g in gens])
        rows = active.nonzero().squeeze(-1)
        for lo in range(0, rows.numel(), chunk):
            r_cpu = rows[lo : lo + chunk]
            r = r_cpu.to(dev)
            n = r.numel()
            x_c = x[:, r]
            tf = t_from[r_cpu].to(dev)
            # Logits, unchecked: the step's one read of them (its log-sum-exp) raises on a member's non-finite
            # output, so neither a log-softmax nor a second pass to look for one is needed.
            log_x = denoiser._chain_logits(x_c, tf.expand(G, n)).reshape(G * n, L, -1)
            x_f, tf_f = x_c.reshape(G * n, L), tf.repeat(G)
            tt = None if is_final else t_to[r_cpu].to(dev).repeat(G)
            uu = None if u is None else u[:, r].reshape(G * n, L)
            stats = chain_stats(log_x, x_f)
            if observe is not None:
                check_finite_rows("log_x_theta", stats.lse, source=type(denoiser).__name__)
                observe(step, r_cpu, tf, x_c, (log_x - stats.lse.to(log_x.dtype).unsqueeze(-1)).view(G, n, L, -1))
            new = chain_update(log_x, x_f, tf_f, tt, final=dynamics.final, u=uu, source=type(denoiser).__name__,
                               stats=stats)  # fmt: skip
            x[:, r] = new.view(G, n, L)
    return x


def group_generate(
    denoiser: GroupDenoiser,
    n: int,
    *,
    n_steps: int = 1000,
    sampler: str = "ancestral",
    final: str = "argmax",
    generators: Sequence[torch.Generator | None] | None = None,
    observe: Callable[..., None] | None = None,
) -> torch.Tensor:
    """``n`` samples ``[G, n, L]`` of every member from uniform noise at ``t = 1`` (``L = config.length``): member
    ``g``'s are ``generate(member_g, n, ..., generator=generators[g])``'s (its noise, then its chain's draws);
    ``observe`` as in :func:`group_reverse_chain`."""
    _check_denoiser(denoiser)
    check_int("n", n, minimum=1)
    G, L, V, dev = denoiser.n_members, denoiser.config.length, denoiser.vocab_size, denoiser.device
    gens = _check_generators(generators, G)
    dyn = ReverseDiffusion(t_start=1.0, n_steps=n_steps, sampler=sampler, final=final, grid="global")
    noise = torch.stack([torch.randint(0, V, (n, L), generator=g, device=draw_device(g, dev)).to(dev) for g in gens])
    return group_reverse_chain(denoiser, dyn, noise, generators=gens, observe=observe)


def group_fixed_points(
    denoiser: GroupDenoiser, sequences: torch.Tensor, *, n_steps: int = 1000, final: str = "posterior"
) -> torch.Tensor:
    """``fixed_point_share`` of every member on its sequences ``[G, B, L]``: ``[G, B]`` bool, True where the argmax
    reverse chain from ``t = 1`` started at the sequence returns it unchanged."""
    _check_denoiser(denoiser)
    x = denoiser.check_queries("sequences", sequences)
    dyn = ReverseDiffusion(t_start=1.0, n_steps=n_steps, sampler="argmax", final=final, grid="global")
    return (group_reverse_chain(denoiser, dyn, x) == x).all(-1)
