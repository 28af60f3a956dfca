"""One training step of the uniform discrete diffusion LM: the per-step randomness, the batch and its forward noise,
the objective (model plus chunked NELBO) and its loss kernel, the EMA, and the optimizer update that skips
non-finite steps on the device. ``amtheory.diffusion.train`` runs these steps into a checkpointed, resumable
training run.

Randomness is a pure function of ``(seed, rank, step)``: the data indices, times and noise of step s come from a
generator re-seeded from it, and so do the dropout masks, so a run resumed from a checkpoint is bit-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable

import torch
from torch import nn

from amtheory.core._checks import check_int
from amtheory.diffusion.checkpoint import CheckpointError
from amtheory.diffusion.kernels import LOSS_KERNELS
from amtheory.diffusion.loss import TRITON_ROWS, antithetic_times, chunked_nelbo, forward_noise, rows_loss_and_grad
from amtheory.diffusion.model import DiT
from amtheory.diffusion.train_config import TrainConfig


# ----------------------------------------------------------------------------------------------- building blocks
def _seed_for(seed: int, rank: int, step: int, stream: str) -> int:
    digest = hashlib.sha256(f"{seed}/{rank}/{step}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def initial_model(model_config, seed: int) -> DiT:
    """The model a training run with ``seed`` starts from: its weights depend on the seed alone (drawn on the CPU,
    outside the caller's random state), so one model trained alone and the same member of a group start equal."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_for(seed, 0, 0, "init"))
        return DiT(model_config)


def step_generator(
    seed: int, rank: int, step: int, device: torch.device | str, generator: torch.Generator | None = None
) -> torch.Generator:
    """The generator of step ``step`` on ``rank`` (data indices, times, noise), on ``device``.

    With ``generator`` (a generator on ``device``) that object is re-seeded and returned: a run keeps one
    generator and re-seeds it every step instead of building a new one.
    """
    if generator is None:
        generator = torch.Generator(device=device)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    return generator.manual_seed(_seed_for(seed, rank, step, "batch"))


def seed_device_rng(device: torch.device | str, seed: int) -> None:
    """Re-seed the default generator of ``device`` (the one dropout draws from) with ``seed``.

    This replaces that device's global RNG state: callers that need theirs back save and restore it around a
    whole run (:func:`train` does), which costs one save and one restore instead of two per step.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[idx].manual_seed(seed)
    elif dev.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        raise ValueError(f"device: expected a cpu or cuda device, got {dev}")


def sample_batch(
    data_NL: torch.Tensor, batch_size: int, vocab_size: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Draw ``batch_size`` training sequences with replacement, antithetic times, and their forward noise.

    Everything is drawn on ``data_NL``'s device, which must be the generator's. Returns x0, xt, alpha, alpha_prime
    and sigma (= -log alpha).
    """
    dev = data_NL.device
    idx = torch.randint(0, data_NL.shape[0], (batch_size,), generator=generator, device=dev)
    x0 = data_NL[idx]
    t = antithetic_times(batch_size, generator=generator, device=dev)
    xt, a, ap = forward_noise(x0, t, vocab_size, generator=generator, check=False)
    return {"x0": x0, "xt": xt, "alpha": a, "alpha_prime": ap, "sigma": -torch.log(a)}


_COMPILED_KERNEL: dict[str, Callable] = {}


def compiled_loss_kernel() -> Callable:
    """:func:`rows_loss_and_grad` under ``torch.compile`` (static shapes), built once per process.

    Every model and every run share one compiled object, so a sweep of many training runs compiles the loss
    kernel once per chunk shape rather than once per run.
    """
    if "kernel" not in _COMPILED_KERNEL:
        _COMPILED_KERNEL["kernel"] = torch.compile(rows_loss_and_grad, dynamic=False)
    return _COMPILED_KERNEL["kernel"]


def compile_model(model: DiT) -> None:
    """Compile each transformer block of ``model`` in place (regional compilation), once per model.

    The blocks share one code object and Dynamo passes their parameters as graph inputs, so the first block's
    graph serves the others; the embedding, time MLP and the chunked loss (whose kernel is
    :func:`compiled_loss_kernel`) stay eager. A second call on a model whose blocks are compiled does nothing.
    """
    if not isinstance(model, DiT):
        raise TypeError(f"model: expected a DiT, got {type(model).__name__}")
    # One code object, several graphs: the first block (no pending update) and the others, training and
    # evaluation, each model size of a sweep. Beyond dynamo's default limit (8) a block would fall back to eager.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for blk in model.blocks:
        if getattr(blk, "_compiled_call_impl", None) is None:
            blk.compile()


def loss_rows_kernel(loss: str) -> Callable | str:
    """The ``kernel`` argument of :func:`chunked_nelbo` for the resolved loss choice ``loss``: "triton"
    (:data:`TRITON_ROWS`), "compiled" (:func:`compiled_loss_kernel`) or "eager" (:func:`rows_loss_and_grad`)."""
    if loss == "triton":
        return TRITON_ROWS
    if loss == "compiled":
        return compiled_loss_kernel()
    if loss == "eager":
        return rows_loss_and_grad
    if loss in LOSS_KERNELS:  # "auto" depends on the device: Kernels.resolved picks the concrete choice
        raise ValueError(f"loss: expected a resolved choice ('triton', 'compiled' or 'eager'), got {loss!r}")
    raise ValueError(f"loss: expected one of {LOSS_KERNELS[1:]}, got {loss!r}")


class NELBOObjective(nn.Module):
    """``model`` and its chunked NELBO in one module, so DistributedDataParallel sees the whole forward; ``loss``
    is the resolved loss kernel choice (:meth:`amtheory.diffusion.kernels.Kernels.resolved`)."""

    def __init__(self, model: DiT, chunk_rows: int = TrainConfig.chunk_rows, loss: str = "eager"):
        super().__init__()
        self.model = model
        self.chunk_rows = chunk_rows
        self.loss = loss
        self.kernel = loss_rows_kernel(loss)

    def forward(self, x0, xt, alpha, alpha_prime, sigma) -> torch.Tensor:
        h = self.model.hidden(xt, sigma, check=False)
        out = self.model.out
        return chunked_nelbo(
            h, out.weight, x0, xt, alpha, alpha_prime,
            head_bias=out.bias, chunk_rows=self.chunk_rows, kernel=self.kernel, check=False,
        )  # fmt: skip


class EMA:
    """Exponential moving average of a model's parameters (float32, same device).

    ``shadow <- lerp(shadow, param, (1 - d) (1 - found_inf))`` with ``d = min(decay, (1 + n) / (10 + n))`` after
    ``n`` taken updates (``warmup``) or ``d = decay``. The count ``n`` lives on the device (float64, so ``d`` is
    the value a Python float would give), so a skipped step neither moves the average nor needs a host sync.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        # Detached views, made once: float32 parameters are averaged without a copy per step.
        self._sources = [p.detach() for p in self.params]
        self.shadow = [p.detach().float().clone() for p in self.params]
        self.decay = decay
        self.warmup = warmup
        dev = self.shadow[0].device if self.shadow else torch.device("cpu")
        self._count = torch.zeros((), dtype=torch.float64, device=dev)

    @property
    def updates(self) -> int:
        """Updates taken so far (reads the device counter: a host sync)."""
        return int(self._count.item())

    @updates.setter
    def updates(self, n: int) -> None:
        self._count.fill_(float(check_int("updates", n, minimum=0)))

    def update(self, found_inf: torch.Tensor | None = None) -> None:
        """One EMA step; ``found_inf`` (a 0-dim float tensor, 1.0 = skip) leaves the average and count as they are."""
        keep = None if found_inf is None else 1.0 - found_inf.to(self._count.device, torch.float64)
        self._count.add_(1.0 if keep is None else keep)
        if self.warmup:
            d = torch.clamp((1.0 + self._count) / (10.0 + self._count), max=self.decay)
        else:
            d = torch.full_like(self._count, self.decay)
        w = (1.0 - d) if keep is None else (1.0 - d) * keep
        w = w.float()
        src = [s if s.dtype == torch.float32 else s.float() for s in self._sources]
        torch._foreach_lerp_(self.shadow, src, [w] * len(src))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow))

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise CheckpointError(f"ema_state: missing {sorted(missing)[:5]}")
        for s, n in zip(self.shadow, self.names):
            s.copy_(state[n])


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (betas 0.9/0.999, eps 1e-8); the fused kernel on CUDA (it skips a step on the device when told to),
    the foreach one on CPU (its skipped steps are undone by :func:`masked_optimizer_step`)."""
    return torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay,
        fused=device.type == "cuda",
    )  # fmt: skip


def _supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    # Fused Adam/AdamW/SGD read `found_inf` and skip in the kernel (what GradScaler relies on).
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False)) and all(
        g.get("fused", False) for g in optimizer.param_groups
    )


def masked_optimizer_step(optimizer: torch.optim.Optimizer, found_inf: torch.Tensor) -> None:
    """``optimizer.step()`` unless ``found_inf`` (0-dim float, 1.0 = skip) is set, decided on the device.

    Fused optimizers take ``found_inf`` themselves (parameters, moments and step count untouched when it is 1).
    Others step, then every parameter and state tensor is set back to its saved value where ``found_inf`` is 1
    (``torch.where``, so NaN never leaks). Their state does not exist before the first step, so that one step
    alone is decided on the host.
    """
    if _supports_found_inf(optimizer):
        optimizer.grad_scale = None
        optimizer.found_inf = found_inf
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale, optimizer.found_inf
        return
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if any(len(optimizer.state.get(p, {})) == 0 for p in params):
        if not bool(found_inf):  # first step: nothing to restore from yet
            optimizer.step()
        return
    tensors = params + [v for p in params for v in optimizer.state[p].values() if isinstance(v, torch.Tensor)]
    saved = [t.detach().clone() for t in tensors]
    optimizer.step()
    skip = found_inf.bool()
    with torch.no_grad():
        for t, s in zip(tensors, saved):
            t.copy_(torch.where(skip.to(t.device), s, t))


#: Attention kernels used while training. cuDNN's fused attention is left out: under bf16 its backward pass
#: returned non-finite gradients once a model memorizing 32 blocks had attention logits near 1000 and a row
#: log-sum-exp near -110, while the flash, memory-efficient and math kernels gave finite gradients for the very
#: same step (experiments/diagnose_training.py; see benchmarks/README.md).
TRAINING_SDPA_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")


def training_attention_backends() -> contextlib.AbstractContextManager:
    """Restrict scaled-dot-product attention to ``TRAINING_SDPA_BACKENDS`` (a no-op where torch lacks the API)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - older torch
        return contextlib.nullcontext()
    return sdpa_kernel([getattr(SDPBackend, name) for name in TRAINING_SDPA_BACKENDS])


def forward_backward(
    objective: nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    grad_accum: int,
    autocast_dtype: torch.dtype | None,
    dropout_seed: int | None = None,
) -> torch.Tensor:
    """Accumulate the gradient of the mean NELBO over ``batch`` in ``grad_accum`` micro-batches; returns the loss.

    With ``dropout_seed`` the device's default generator is re-seeded first (see :func:`seed_device_rng`).
    ``autocast_dtype`` (e.g. bf16) enables autocast on the batch's device, CPU included.
    """
    dev = batch["x0"].device
    B = batch["x0"].shape[0]
    micro = B // grad_accum
    ddp = isinstance(objective, nn.parallel.DistributedDataParallel)
    if dropout_seed is not None:
        seed_device_rng(dev, dropout_seed)
    loss_sum = torch.zeros((), device=dev)
    for m in range(grad_accum):
        part = batch if grad_accum == 1 else {k: v[m * micro : (m + 1) * micro] for k, v in batch.items()}
        sync = contextlib.nullcontext() if (not ddp or m == grad_accum - 1) else objective.no_sync()
        amp = torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
        with sync, training_attention_backends():
            with amp:
                loss = objective(part["x0"], part["xt"], part["alpha"], part["alpha_prime"], part["sigma"])
            (loss / grad_accum if grad_accum > 1 else loss).backward()
        loss_sum += loss.detach()
    return loss_sum / grad_accum if grad_accum > 1 else loss_sum


def apply_update(
    optimizer: torch.optim.Optimizer,
    *,
    clip: float,
    ema: EMA | None = None,
    skipped: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip, step and average, skipping on the device if the gradient norm is not finite; returns (norm, found_inf).

    ``found_inf = 1 - isfinite(norm)`` (0-dim float32) masks the optimizer step (:func:`masked_optimizer_step`)
    and the EMA; it is added to ``skipped`` (a device counter) when given. No host sync.
    """
    params = [p for g in optimizer.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm=clip if clip > 0 else math.inf, foreach=True)
    found_inf = (~torch.isfinite(norm)).to(torch.float32)
    masked_optimizer_step(optimizer, found_inf)
    if ema is not None:
        ema.update(found_inf)
    if skipped is not None:
        skipped.add_(found_inf.to(skipped.dtype))
    optimizer.zero_grad(set_to_none=True)
    return norm.detach(), found_inf


def optimizer_step(
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    *,
    grad_accum: int,
    clip: float,
    autocast_dtype: torch.dtype | None,
    dropout_seed: int | None = None,
    ema: EMA | None = None,
    skipped: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step over ``batch`` in ``grad_accum`` micro-batches; returns (mean loss, grad norm, found_inf).

    :func:`forward_backward` then :func:`apply_update`: a step whose gradient norm is not finite is skipped on
    the device (parameters, moments and EMA untouched; ``found_inf`` = 1.0, added to ``skipped`` when given).
    Nothing here waits for the device. ``dropout_seed`` re-seeds the device's default generator.
    """
    loss = forward_backward(
        objective, batch, grad_accum=grad_accum, autocast_dtype=autocast_dtype, dropout_seed=dropout_seed
    )
    norm, found_inf = apply_update(optimizer, clip=clip, ema=ema, skipped=skipped)
    return loss, norm, found_inf
