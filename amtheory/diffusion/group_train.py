"""Training G diffusion LMs of one shape at once, each as it would train alone.

Small DiTs (128-256 wide) spend most of a training step in Python and kernel launches, not in arithmetic. A
:class:`GroupTrainer` trains G of them in one step: their weights stacked in one ``[G, P]`` matrix
(:mod:`amtheory.diffusion.group_model`), one forward and backward pass of batched products for all of them. Each
member keeps everything that makes it a separate run:

* its own initial weights, data (training sets of different sizes), batches, times and noise: member ``g`` draws
  with the single-model trainer's own functions (:func:`~amtheory.diffusion.train_step.sample_batch` from
  :func:`~amtheory.diffusion.train_step.step_generator` of its seed), so its stream is the one
  :func:`amtheory.diffusion.train.train` draws for that seed;
* its own gradient-norm clipping (the norm over its row of the stacked gradient), AdamW moments and step count
  (bias correction per member), EMA and EMA count, and its own skipped steps: a member whose gradient norm is not
  finite leaves its weights, moments, step count and EMA as they are, the others step.

Members share the optimisation settings (a :class:`~amtheory.diffusion.train_config.TrainConfig` equal but for the
seed) and a network without dropout. The map, loss and update are those of the single-model trainer up to float
rounding (tests/test_group_train.py checks losses, weights and EMA). Checkpointed runs, one folder per member in the
single trainer's format: :func:`amtheory.diffusion.group_run.train_group`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from amtheory.core._checks import check_int, check_tokens
from amtheory.diffusion.group_model import (
    GroupLayout,
    GroupTables,
    compiled_block,
    compiled_final,
    compiled_once,
    group_hidden,
    group_nelbo,
)
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.loss import stratified_times
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.schedule import alpha, alpha_prime
from amtheory.diffusion.train_config import TrainConfig
from amtheory.diffusion.train_step import (
    initial_model,
    loss_rows_kernel,
    make_optimizer,
    step_generator,
    training_attention_backends,
)

__all__ = [
    "BETAS", "EPS", "GroupTrainer", "check_group_configs", "compiled_member_update",
    "initial_state", "member_update_",
]  # fmt: skip

#: AdamW's betas and eps (those of :func:`amtheory.diffusion.train_step.make_optimizer`).
BETAS, EPS = (0.9, 0.999), 1e-8


def member_update_(
    weights: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, ema: torch.Tensor,
    clip: torch.Tensor, keep: torch.Tensor, decay: torch.Tensor, step_size: torch.Tensor, beta2: torch.Tensor,
    bc2_sqrt: torch.Tensor, ema_rate: torch.Tensor,
) -> None:  # fmt: skip
    """Every member's AdamW step and EMA update in place, elementwise over ``[G, P]`` with its own factors ``[G, 1]``
    (computed by :meth:`GroupTrainer.update`): the gradient times ``clip``, zeroed where ``keep`` is 0 (so that a
    skipped member's NaN cannot leak); weights times ``decay``; moments with beta1 and ``beta2``; the step
    ``step_size * exp_avg / (sqrt(exp_avg_sq) / bc2_sqrt + eps)``; the EMA moved by ``ema_rate`` towards the new
    weights. Written out of place apart from the state it updates, so that under ``torch.compile`` it is one pass
    over the members' weights, moments and EMA (eager, it makes three ``[G, P]`` temporaries)."""
    b1, b2 = BETAS
    g = torch.where(keep > 0, grad * clip, 0.0)
    weights.mul_(decay)
    exp_avg.lerp_(g, (1.0 - b1) * keep)
    exp_avg_sq.mul_(beta2).add_(g * g * ((1.0 - b2) * keep))
    denom = exp_avg_sq.sqrt().div(bc2_sqrt).add(EPS)
    weights.sub_(denom.reciprocal().mul(exp_avg).mul(step_size))
    ema.lerp_(weights, ema_rate)


def compiled_member_update():
    """:func:`member_update_` under ``torch.compile`` (static shapes), built once per process: one fused pass where
    the eager update makes about fifteen (benchmarks/h100_profile_group_train.txt)."""
    return compiled_once("member update", member_update_, False)


def check_group_configs(train_configs: Sequence[TrainConfig]) -> TrainConfig:
    """The shared settings of a group's members: their configs must be TrainConfigs equal in every field but
    ``seed``; returns the first."""
    if isinstance(train_configs, TrainConfig) or not isinstance(train_configs, Sequence) or not train_configs:
        raise TypeError(f"train_configs: expected a non-empty sequence of TrainConfig, got {train_configs!r:.80}")
    first = train_configs[0]
    for g, tc in enumerate(train_configs):
        if not isinstance(tc, TrainConfig):
            raise TypeError(f"train_configs[{g}]: expected a TrainConfig, got {type(tc).__name__}")
        a, b = dataclasses.replace(tc, seed=0).to_dict(), dataclasses.replace(first, seed=0).to_dict()
        if a != b:
            diff = sorted(k for k in a if a[k] != b[k])
            raise ValueError(
                f"train_configs[{g}]: members of a group share every setting but the seed; differs from "
                f"train_configs[0] in {diff}"
            )
    if first.norm == "fused":
        raise ValueError("train_configs: norm 'fused' is not available to a group (its norms are torch operations)")
    return first


def initial_state(model_config: DiTConfig, seed: int) -> dict[str, torch.Tensor]:
    """The initial weights of the single-model trainer for ``seed`` (drawn on the CPU, outside the caller's RNG)."""
    return initial_model(model_config, seed).state_dict()


class GroupTrainer:
    """G members of ``model_config`` trained together; member ``g`` has ``train_configs[g]`` (equal but for the
    seed) and the training blocks ``data[g]`` ``[N_g, L]``.

    State on ``device``: ``weights [G, P]`` (a leaf; :attr:`layout` names its columns), AdamW's ``exp_avg``,
    ``exp_avg_sq [G, P]`` and ``adam_steps [G]``, ``ema [G, P]`` and ``ema_count [G]``, ``skipped [G]``. A new
    trainer holds the members' initial weights (:func:`initial_state` of each seed).
    """

    def __init__(
        self,
        model_config: DiTConfig,
        train_configs: Sequence[TrainConfig],
        data: Sequence[torch.Tensor],
        *,
        device: torch.device | str = "cpu",
    ):
        if not isinstance(model_config, DiTConfig):
            raise TypeError(f"model_config: expected a DiTConfig, got {type(model_config).__name__}")
        if model_config.dropout != 0.0:
            raise ValueError(
                f"model_config.dropout: expected 0 for a group of models (no dropout masks are drawn), got "
                f"{model_config.dropout}"
            )
        cfg = check_group_configs(train_configs)
        if not isinstance(data, Sequence) or len(data) != len(train_configs):
            raise ValueError(
                f"data: expected one tensor of training blocks per member ({len(train_configs)}), got "
                f"{len(data) if isinstance(data, Sequence) else type(data).__name__}"
            )
        for g, d in enumerate(data):
            check_tokens(f"data[{g}]", d, vocab_size=model_config.vocab_size, rank=2, length=model_config.length)
            if d.shape[0] < 1:
                raise ValueError(f"data[{g}]: expected at least one training sequence, got 0")
        self.device = torch.device(device)
        self.model_config, self.cfg = model_config, cfg
        self.seeds = [tc.seed for tc in train_configs]
        self.G = len(train_configs)
        # The members' blocks side by side in one tensor (each member's a view of it), so that a step gathers every
        # member's batch in one indexing.
        self._pool = torch.cat([d.to(self.device) for d in data])
        sizes = [int(d.shape[0]) for d in data]
        starts = [sum(sizes[:g]) for g in range(self.G)]
        self.data = [self._pool[o : o + n] for o, n in zip(starts, sizes)]
        self._starts = torch.tensor(starts, device=self.device)[:, None]
        self.layout = GroupLayout.of(model_config)
        self.tables = GroupTables(model_config, self.device)
        dev = self.device
        self.weights = self.layout.pack([initial_state(model_config, s) for s in self.seeds]).to(dev)
        self.weights.requires_grad_(True)
        self.exp_avg = torch.zeros_like(self.weights, requires_grad=False)
        self.exp_avg_sq = torch.zeros_like(self.exp_avg)
        self.adam_steps = torch.zeros(self.G, dtype=torch.float64, device=dev)
        self.ema = self.weights.detach().clone()
        self.ema_count = torch.zeros(self.G, dtype=torch.float64, device=dev)
        self.skipped = torch.zeros(self.G, dtype=torch.float32, device=dev)
        kernels = Kernels(cfg.loss_kernel, cfg.attention, "torch").resolved(dev, compile=cfg.compile)
        self.attention = kernels.attention
        self.loss_kernel = loss_rows_kernel(kernels.loss)
        self.block_fn = compiled_block(dynamic=False) if cfg.compile else None
        self.final_fn = compiled_final() if cfg.compile else None
        self._member_update = compiled_member_update() if cfg.compile else member_update_
        self.autocast_dtype = torch.bfloat16 if (cfg.bf16 and (dev.type == "cuda" or cfg.cpu_bf16)) else None
        self._generators = [torch.Generator(device=dev) for _ in range(self.G)]

    # ------------------------------------------------------------------------------------------- one step
    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The members' batches of step ``step``, stacked ``[G, ...]``: member ``g`` draws exactly what the
        single-model trainer draws at that step for its seed and data
        (:func:`~amtheory.diffusion.train_step.sample_batch`).

        Each member's four draws come from its own generator in ``sample_batch``'s order (block indices, the
        antithetic times' uniform, the keep uniforms, the noise tokens); everything computed from them is done once
        for all members, so that the host issues a handful of operations per member, not sample_batch's sixty."""
        check_int("step", step, minimum=0)
        V, B, L, dev = self.model_config.vocab_size, self.cfg.batch_size, self.model_config.length, self.device
        idx, u, keep_u, noise = [], [], [], []
        for d, s, gen in zip(self.data, self.seeds, self._generators):
            gen = step_generator(s, 0, step, dev, gen)
            idx.append(torch.randint(0, d.shape[0], (B,), generator=gen, device=dev))
            u.append(torch.rand((), generator=gen, device=dev, dtype=torch.float64))
            keep_u.append(torch.rand((B, L), generator=gen, device=dev))
            noise.append(torch.randint(0, V, (B, L), generator=gen, device=dev))
        x0 = self._pool[torch.stack(idx) + self._starts]
        t = stratified_times(torch.stack(u), B)
        a = alpha(t)
        xt = torch.where(torch.stack(keep_u) < a[..., None], x0, torch.stack(noise))
        return {"x0": x0, "xt": xt, "alpha": a, "alpha_prime": alpha_prime(t), "sigma": -torch.log(a)}

    def losses(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each member's mean NELBO ``[G]`` on its part of ``batch`` (differentiable in :attr:`weights`)."""
        params = self.layout.views(self.weights)
        h = group_hidden(self.layout, params, self.tables, batch["xt"], batch["sigma"], attention=self.attention,
                         block_fn=self.block_fn, final_fn=self.final_fn)  # fmt: skip
        return group_nelbo(
            h, params["out.weight"], params["out.bias"], batch["x0"], batch["xt"], batch["alpha"],
            batch["alpha_prime"], chunk_rows=self.cfg.chunk_rows, kernel=self.loss_kernel,
        )  # fmt: skip

    def step(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Optimizer step ``step`` of every member: (mean losses, gradient norms, found_inf), each ``[G]``.

        Nothing here waits for the device: a member whose norm is not finite is skipped by masks."""
        batch = self.batch(step)
        accum = self.cfg.grad_accum
        micro = self.cfg.batch_size // accum
        loss_sum = torch.zeros(self.G, device=self.device)
        dt = self.autocast_dtype
        for m in range(accum):
            part = batch if accum == 1 else {k: v[:, m * micro : (m + 1) * micro] for k, v in batch.items()}
            with training_attention_backends():
                with torch.autocast(self.device.type, dtype=dt, enabled=dt is not None):
                    losses = self.losses(part)
                (losses.sum() / accum if accum > 1 else losses.sum()).backward()
            loss_sum += losses.detach()
        norm, found_inf = self.update(self.cfg.lr_at(step))
        return (loss_sum / accum if accum > 1 else loss_sum), norm, found_inf

    @torch.no_grad()
    def update(self, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip each member's gradient to norm ``clip``, take an AdamW step at ``lr`` and average, all per member
        and masked by ``found_inf = 1 - isfinite(norm)``; returns (norms, found_inf) ``[G]``. Clears the
        gradient."""
        grad = self.weights.grad
        if grad is None:
            raise RuntimeError("weights: no gradient to apply; run a backward pass of losses() first")
        cfg = self.cfg
        norm = torch.linalg.vector_norm(grad, dim=1)
        found_inf = (~torch.isfinite(norm)).to(torch.float32)
        keep = 1.0 - found_inf
        b1, b2 = BETAS
        steps = self.adam_steps + keep.double()
        # Bias corrections in float64 (the single trainer's optimizer computes them from Python floats); a member
        # that has never stepped gets 1 instead of 0 (its update is masked anyway).
        bc1 = torch.where(steps > 0, 1.0 - b1**steps, 1.0)
        bc2_sqrt = torch.where(steps > 0, 1.0 - b2**steps, 1.0).sqrt().float()[:, None]
        k = keep[:, None]
        # torch.nn.utils.clip_grad_norm_'s coefficient, per member (NaN for a skipped member, whose gradient the
        # update zeroes).
        coef = torch.clamp(cfg.clip / (norm + 1e-6), max=1.0)[:, None] if cfg.clip > 0 else torch.ones_like(k)
        # EMA: shadow <- lerp(shadow, w, (1 - d) keep), d = min(decay, (1 + n) / (10 + n)) after n updates.
        self.ema_count.add_(keep.double())
        if cfg.ema_warmup:
            d = torch.clamp((1.0 + self.ema_count) / (10.0 + self.ema_count), max=cfg.ema)
        else:
            d = torch.full_like(self.ema_count, cfg.ema)
        self._member_update(
            self.weights.detach(), grad, self.exp_avg, self.exp_avg_sq, self.ema, coef, k,
            1.0 - lr * cfg.weight_decay * k, (lr * keep.double() / bc1).float()[:, None],
            torch.where(k > 0, b2, 1.0), bc2_sqrt, ((1.0 - d) * keep.double()).float()[:, None],
        )  # fmt: skip
        self.adam_steps.copy_(steps)
        self.skipped.add_(found_inf)
        self.weights.grad = None
        return norm, found_inf

    # ------------------------------------------------------------------------------------------- members
    def member_model(self, g: int, *, ema: bool = False) -> DiT:
        """Member ``g`` as a :class:`DiT` on the trainer's device (its EMA weights with ``ema``)."""
        check_int("g", g, minimum=0, maximum=self.G - 1)
        model = DiT(self.model_config).to(self.device)
        model.load_state_dict(self.layout.unpack((self.ema if ema else self.weights.detach())[g]))
        return model

    def member_optimizer(self, g: int, model: DiT) -> torch.optim.Optimizer:
        """The single trainer's AdamW over ``model`` (member ``g``'s :meth:`member_model`) holding member ``g``'s
        moments and step count, as a checkpoint stores them."""
        opt = make_optimizer(model, self.cfg, self.device)
        sd = opt.state_dict()
        n_steps = float(self.adam_steps[g])
        if n_steps > 0:
            m = self.layout.unpack(self.exp_avg[g])
            v = self.layout.unpack(self.exp_avg_sq[g])
            sd["state"] = {
                i: {"step": torch.tensor(n_steps, dtype=torch.float32), "exp_avg": m[n], "exp_avg_sq": v[n]}
                for i, n in enumerate(self.layout.names)
            }
        for group in sd["param_groups"]:
            group["lr"] = self.cfg.lr
        opt.load_state_dict(sd)
        return opt

    def member_ema_state(self, g: int) -> dict[str, torch.Tensor]:
        return self.layout.unpack(self.ema[g])

    @torch.no_grad()
    def load_member(
        self, g: int, model_state: dict[str, torch.Tensor], ema_state: dict[str, torch.Tensor] | None,
        optimizer_state: dict, *, ema_updates: int, skipped: int,
    ) -> None:  # fmt: skip
        """Set member ``g`` from a single-trainer checkpoint's model, EMA and AdamW states and counters."""
        check_int("g", g, minimum=0, maximum=self.G - 1)
        self.weights[g] = self.layout.pack([model_state])[0].to(self.device)
        self.ema[g] = self.layout.pack([ema_state if ema_state is not None else model_state])[0].to(self.device)
        state = optimizer_state.get("state", {}) if isinstance(optimizer_state, dict) else None
        if state is None:
            raise ValueError(f"optimizer_state: expected an AdamW state_dict, got {type(optimizer_state).__name__}")
        if state:
            by_name = [state.get(i) for i in range(len(self.layout.names))]
            if any(s is None or "exp_avg" not in s for s in by_name):
                raise ValueError("optimizer_state: expected AdamW moments for every parameter of the DiT")
            m = {n: s["exp_avg"] for n, s in zip(self.layout.names, by_name)}
            v = {n: s["exp_avg_sq"] for n, s in zip(self.layout.names, by_name)}
            self.exp_avg[g] = self.layout.pack([m])[0].to(self.device)
            self.exp_avg_sq[g] = self.layout.pack([v])[0].to(self.device)
            self.adam_steps[g] = float(by_name[0]["step"])
        else:
            self.exp_avg[g] = 0.0
            self.exp_avg_sq[g] = 0.0
            self.adam_steps[g] = 0.0
        self.ema_count[g] = float(check_int("ema_updates", ema_updates, minimum=0))
        self.skipped[g] = float(check_int("skipped", skipped, minimum=0))
