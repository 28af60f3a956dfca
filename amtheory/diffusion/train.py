"""Training of the uniform discrete diffusion LM on a fixed set of token blocks.

The recipe of docs/theory.md, "The denoising network and its training": AdamW (lr 3e-4, no weight decay), linear
warm-up then constant, gradient clipping at 1.0, EMA 0.9999, antithetic training times t ~ U[1e-3, 1], the
continuous-time NELBO (computed by :func:`amtheory.diffusion.loss.chunked_nelbo`, float32 from float32 logits),
a fixed number of steps whatever the training-set size (batches drawn with replacement, so a set of 16 sequences
works).

A step whose gradient norm is not finite is skipped on the device: ``found_inf = 1 - isfinite(norm)`` reaches
the fused AdamW kernel (the mechanism of ``torch.amp.GradScaler``), masks the EMA's lerp weight and adds to a
device-side counter, so no step waits for the GPU; the counter is read at log points only.

Randomness is a pure function of ``(seed, rank, step)``: the data indices, times and noise of step s come from
one generator per run re-seeded for each step, and the dropout masks from the device's default generator
re-seeded for each step. Training therefore owns the global RNG of its device during a run; :func:`train`
saves it once at the start and restores it at the end, so the caller's RNG state is unchanged afterwards. A
checkpoint holds the complete RNG state in ``(seed, step)``, and a resumed run is bit-identical to an
uninterrupted one on CPU. Under ``torchrun`` the model is wrapped in DistributedDataParallel (nccl on CUDA,
gloo on CPU); each rank draws its own batches; rank 0 writes.

CLI (one CPU run, then the paper's tiny model on a GPU)::

    python -m amtheory.diffusion.train --data data/brown-sotu --n-train 64 --preset cpu-micro --length 32 \
        --batch-size 16 --steps 200 --warmup 20 --lr 1e-3 --device cpu --out runs/micro
    torchrun --nproc-per-node 8 -m amtheory.diffusion.train --data data/brown-sotu --n-train 1024 \
        --preset tiny --steps 100000 --batch-size 512 --compile --out runs/tiny-1024
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amtheory.core._checks import check_tokens
from amtheory.diffusion.checkpoint import (
    CheckpointError,
    clear_interrupted_writes,
    load_resumable,
    mark_latest,
    save_checkpoint,
    step_checkpoints,
)
from amtheory.diffusion.distributed import all_mean, setup_distributed
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.resume import LOG, check_resume, data_sha256, drop_log_after, last_logged_loss, weights_sha256
from amtheory.diffusion.train_config import LOSS_KERNELS, TrainConfig
from amtheory.diffusion.train_step import (  # the step's building blocks, re-exported
    EMA,
    TRAINING_SDPA_BACKENDS,
    NELBOObjective,
    _seed_for,
    apply_update,
    compile_model,
    compiled_loss_kernel,
    forward_backward,
    initial_model,
    make_optimizer,
    masked_optimizer_step,
    optimizer_step,
    sample_batch,
    seed_device_rng,
    step_generator,
    training_attention_backends,
)

__all__ = [
    "EMA",
    "LOSS_KERNELS",
    "TRAINING_SDPA_BACKENDS",
    "NELBOObjective",
    "TrainConfig",
    "apply_update",
    "compile_model",
    "compiled_loss_kernel",
    "forward_backward",
    "make_optimizer",
    "masked_optimizer_step",
    "optimizer_step",
    "sample_batch",
    "seed_device_rng",
    "step_generator",
    "train",
    "training_attention_backends",
]


# ----------------------------------------------------------------------------------------------- the loop
def train(
    model_config: DiTConfig,
    train_config: TrainConfig,
    data_BL: torch.Tensor,
    out_dir: str | os.PathLike,
    *,
    device: torch.device | str = "cpu",
    resume: bool = True,
    progress: bool = True,
    tensorboard_dir: str | os.PathLike | None = None,
    meta: dict[str, Any] | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train a :class:`DiT` on the token blocks ``data_BL`` [N, L] for ``train_config.steps`` steps.

    Checkpoints go to ``out_dir/checkpoints`` every ``checkpoint_every`` steps and at the end, the newest
    ``keep_checkpoints`` kept; older ones are removed only after a newer one is written, and none newer than the one
    just written is ever removed. With ``resume`` the newest intact checkpoint is continued whatever ``LATEST``
    names (see :func:`amtheory.diffusion.checkpoint.load_resumable`): damaged ones are passed over with a
    RuntimeWarning, listed in the summary's ``resume_notes``, and it is an error when checkpoints exist but none is
    intact, when one holds a pickle or another foreign file, or when the model config, a train config field
    outside RESUMABLE_CHANGES, the data, ``meta["vocab_sha256"]`` differ from the checkpoint's, or ``steps`` is
    below its step. ``resume=False`` refuses a folder that already holds checkpoints. At the start, rank 0 removes
    the temporary folders of interrupted checkpoint writes and drops from ``log.jsonl`` the records past the step
    it starts from. ``meta`` (e.g. ``vocab_sha256``) is stored in every checkpoint, with the data's sha256 and the
    seeds. ``callback(step, record)`` runs on rank 0 after each completed step. Returns a summary: steps, losses at
    the log points, skipped steps (since step 0, resumed runs included), tokens/s, the last checkpoint, a hash of
    the weights, the resume notes and the most memory PyTorch allocated on the rank's GPU in this process (None
    off CUDA). The global RNG of ``device`` (and the CPU's) is used by the run and restored when it ends.
    """
    if not isinstance(model_config, DiTConfig):
        raise TypeError(f"model_config: expected a DiTConfig, got {type(model_config).__name__}")
    if not isinstance(train_config, TrainConfig):
        raise TypeError(f"train_config: expected a TrainConfig, got {type(train_config).__name__}")
    check_tokens("data_BL", data_BL, vocab_size=model_config.vocab_size, rank=2, length=model_config.length)
    if data_BL.shape[0] < 1:
        raise ValueError("data_BL: expected at least one training sequence, got 0")
    cfg = train_config
    rank, world, device, owns_group = setup_distributed(torch.device(device))
    try:
        summary = _train(model_config, cfg, data_BL, Path(out_dir), device, rank, world, resume, progress,
                         tensorboard_dir, meta or {}, callback)  # fmt: skip
    except BaseException:
        if owns_group:  # no barrier here: the other ranks may never reach it
            import torch.distributed as dist

            dist.destroy_process_group()
        raise
    if owns_group:
        import torch.distributed as dist

        dist.barrier()  # rank 0 may still be writing the last checkpoint
        dist.destroy_process_group()
    return summary


def _train(model_config, cfg, data_BL, out, device, rank, world, resume, progress, tb_dir, user_meta, callback):
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(
            f"batch_size: expected a multiple of world size x grad_accum = {world * cfg.grad_accum}, "
            f"got {cfg.batch_size}"
        )
    per_rank = cfg.batch_size // world
    V = model_config.vocab_size
    ckpt_root = out / "checkpoints"
    data_sha = data_sha256(data_BL)
    meta = {
        **user_meta,
        "data": {**user_meta.get("data", {}), "n": int(data_BL.shape[0]), "length": int(data_BL.shape[1]),
                 "sha256": data_sha},
        "seed": cfg.seed,
        "world_size": world,
        "torch": torch.__version__,
    }  # fmt: skip

    model = initial_model(model_config, cfg.seed)
    model.to(device)
    ema = EMA(model, cfg.ema, cfg.ema_warmup)
    optimizer = make_optimizer(model, cfg, device)
    start, resumed_from, skipped_before = 0, None, 0
    # Training seconds of this run before this call (from its checkpoint; NaN where an older checkpoint lacks them).
    wall_before = 0.0
    if not resume and ((ckpt_root / "LATEST").exists() or step_checkpoints(ckpt_root)):
        raise ValueError(
            f"out_dir: {out} already holds checkpoints and resume=False; pass resume=True to continue that run "
            "or choose an empty folder"
        )
    stored, notes = load_resumable(ckpt_root, device=device) if resume else (None, [])
    if stored is not None:
        check_resume(stored, model_config, cfg, meta)
        if stored["train_state"]["optimizer"] is None:
            raise CheckpointError(f"{stored['path']}: holds no optimizer state; cannot resume from it")
        model.load_state_dict(stored["model_state"])
        if stored["ema_state"] is not None:
            ema.load_state_dict(stored["ema_state"])
        optimizer.load_state_dict(stored["train_state"]["optimizer"])
        start = int(stored["step"])
        ema.updates = int(stored["train_state"]["extra"].get("ema_updates", start))
        skipped_before = int(stored["train_state"]["extra"].get("skipped", 0))
        wall_before = float(stored["train_state"]["extra"].get("train_wall_s", math.nan))
        resumed_from = stored["path"]
    if rank == 0:
        for note in notes:
            warnings.warn(f"resume: {note}", RuntimeWarning, stacklevel=3)
        clear_interrupted_writes(ckpt_root)
        if out.is_dir():
            drop_log_after(out, start)

    if cfg.compile:
        compile_model(model)
    # The run's own settings (they may differ from the checkpoint's), resolved once for this device.
    kernels = Kernels(cfg.loss_kernel, cfg.attention, cfg.norm).resolved(device, compile=cfg.compile)
    model.kernels = kernels
    objective: nn.Module = NELBOObjective(model, cfg.chunk_rows, kernels.loss)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
    data = data_BL.to(device)
    amp_dtype = torch.bfloat16 if (cfg.bf16 and (device.type == "cuda" or cfg.cpu_bf16)) else None

    writer = bar = None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError("tensorboard_dir: TensorBoard logging needs `pip install tensorboard`") from e
            writer = SummaryWriter(str(tb_dir))
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.steps, initial=start, desc="uddm train", dynamic_ncols=True)

    losses: list[tuple[int, float]] = []
    # Skipped steps are counted on the device and read at log points and checkpoints only.
    skipped = torch.full((), float(skipped_before), device=device)
    last_ckpt = resumed_from
    interval_loss = torch.zeros((), device=device)
    interval_n = 0
    t0 = time.perf_counter()
    norm = torch.zeros(())

    train_wall = wall_before  # the run's training seconds as its newest checkpoint records them

    def checkpoint(step: int) -> str:
        nonlocal train_wall
        name = f"step-{step:08d}"
        train_wall = wall_before + time.perf_counter() - t0
        path = save_checkpoint(
            ckpt_root / name, model=model, ema_state=ema.state_dict(), optimizer=optimizer, step=step,
            model_config=model_config, train_config=cfg, meta=meta,
            extra_state={"ema_updates": ema.updates, "skipped": int(skipped.item()), "train_wall_s": train_wall},
        )  # fmt: skip
        mark_latest(ckpt_root, name)
        # Only checkpoints older than the one just written go, so newer work is never pruned.
        older = [p for n, p in step_checkpoints(ckpt_root) if n < step]
        for p in older[: max(0, len(older) - (cfg.keep_checkpoints - 1))]:
            shutil.rmtree(p, ignore_errors=True)
        return str(path)

    objective.train()
    gen = torch.Generator(device=device)  # one per run, re-seeded every step
    # Training owns the global RNG of its device (dropout is re-seeded every step): save it once, restore at the end.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        for step in range(start, cfg.steps):
            for g in optimizer.param_groups:
                g["lr"] = cfg.lr_at(step)
            batch = sample_batch(data, per_rank, V, step_generator(cfg.seed, rank, step, device, gen))
            loss, norm, _ = optimizer_step(
                objective, optimizer, batch, grad_accum=cfg.grad_accum, clip=cfg.clip, autocast_dtype=amp_dtype,
                dropout_seed=_seed_for(cfg.seed, rank, step, "dropout"), ema=ema, skipped=skipped,
            )  # fmt: skip
            interval_loss += loss
            interval_n += 1
            done = step + 1
            record: dict[str, float] = {}
            if done % cfg.log_every == 0 or done == cfg.steps:
                mean_loss = float(all_mean(interval_loss / interval_n, world))
                interval_loss.zero_()
                interval_n = 0
                n_skipped = int(skipped.item())
                record = {"step": done, "loss": mean_loss, "lr": cfg.lr_at(step), "grad_norm": float(norm),
                          "skipped": n_skipped, "elapsed_s": time.perf_counter() - t0}  # fmt: skip
                losses.append((done, mean_loss))
                if rank == 0:
                    with open(out / LOG, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    if writer is not None:
                        for k in ("loss", "lr", "grad_norm"):
                            writer.add_scalar(f"train/{k}", record[k], done)
                    if bar is not None:
                        bar.set_postfix(loss=f"{mean_loss:.4f}", skipped=n_skipped)
            if rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                last_ckpt = checkpoint(done)
            if bar is not None:
                bar.update(1)
            if callback is not None and rank == 0:
                callback(done, record)

    wall = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    trained = cfg.steps - start
    return {
        "steps": cfg.steps,
        "start_step": start,
        "resumed_from": resumed_from,
        "losses": losses,
        "final_loss": losses[-1][1] if losses else last_logged_loss(out),
        "skipped_steps": int(skipped.item()),
        "wall_s": wall,
        # The run's training seconds over every call that trained it, as its last checkpoint records them.
        "train_wall_s": train_wall,
        "tokens_per_s": trained * cfg.batch_size * model_config.length / wall if trained and wall > 0 else None,
        "checkpoint": last_ckpt,
        "rank": rank,
        "world_size": world,
        "device": str(device),
        "weights_sha256": weights_sha256(list(model.parameters())),
        "ema_sha256": weights_sha256(ema.shadow),
        "resume_notes": notes,
        # What PyTorch allocated at most on this rank's GPU in this process (None off CUDA).
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


# ----------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> dict[str, Any]:
    """The ``amtheory train`` command (:mod:`amtheory.diffusion.train_cli`)."""
    from amtheory.diffusion.train_cli import main as cli_main

    return cli_main(argv, train)


if __name__ == "__main__":
    main()
