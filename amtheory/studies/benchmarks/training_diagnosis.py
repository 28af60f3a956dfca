"""Diagnose a UDDM training run: where the time of a step goes, and what happens at the first non-finite step.

Trains a DiT of the given size on the first ``--n-train`` packed blocks of a prepared corpus (or the embedded
one), with the vocabulary compacted as ``amtheory.studies.memorization.DataSpec`` does, using the trainer's own pieces
(``amtheory.diffusion.train``: the same batches, dropout seeds, loss, clipping, AdamW and EMA). Three parts:

1. speed: ms/step of :func:`amtheory.diffusion.train.train` itself (one checkpoint included), then a per-phase
   breakdown (data, forward+loss, backward, optimizer = clip + AdamW, EMA) timed with CUDA events on a GPU
   (``time.perf_counter`` on a CPU) over steady-state steps;
2. a traced run of ``--steps`` steps (one host sync per step, so not timed): every ``--trace-every`` steps the
   loss, grad norm, max |logit|, max |activation| after each block, max attention logit per block;
3. at the first step with a non-finite gradient: which parameters have non-finite gradients, the max
   |activation| per block (forward hooks), the max attention logit, the max |logit|, the loss, the times t
   (and x_t = x_0 flags) of the rows whose closed-form loss or logit gradient is not finite, and whether the same
   step recomputed in float32 (no autocast, same batch and dropout masks) is finite. Training goes on (the step is
   skipped, as the trainer does) and the total of skipped steps is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train import (
    EMA,
    NELBOObjective,
    TrainConfig,
    _seed_for,
    apply_update,
    compile_model,
    forward_backward,
    initial_model,
    make_optimizer,
    sample_batch,
    seed_device_rng,
    step_generator,
    train,
)
from amtheory.studies.benchmarks.diagnosis_probes import Probes, diagnose_step, logit_stats

DESCRIPTION = (
    "Diagnose a UDDM training run: where the time of a step goes, and what happens at the first non-finite step."
)


# ------------------------------------------------------------------------------------------------ setup
def load_blocks(source: str, vocab: int | None, length: int, n_train: int) -> tuple[torch.Tensor, int]:
    """The first ``n_train`` training blocks ``[n, length]`` of ``source`` with the vocabulary compacted to
    ``vocab`` ids (None: full ids), and the vocabulary size."""
    from amtheory.studies.memorization import DataSpec, load_data

    corpus = load_data(DataSpec(source, length, vocab))
    return corpus.blocks("train", n_train, length), corpus.vocab_size


def build(args: argparse.Namespace, V: int, device: torch.device):
    """A fresh model (the trainer's initial weights for ``--seed``), its objective, AdamW and EMA."""
    mc = DiTConfig(vocab_size=V, length=args.length, d_model=args.d_model, n_blocks=args.n_blocks,
                   n_heads=args.n_heads, cond_dim=args.cond_dim, dropout=args.dropout)  # fmt: skip
    tc = train_config(args)
    model = initial_model(mc, tc.seed)
    model.to(device)
    loss = "eager"
    if args.compile:
        compile_model(model)
        loss = "compiled"
    objective = NELBOObjective(model, args.chunk_rows, loss).train()
    return mc, tc, model, objective, make_optimizer(model, tc, device), EMA(model, tc.ema, tc.ema_warmup)


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, clip=args.clip, ema=args.ema,
        seed=args.seed, bf16=args.bf16, cpu_bf16=args.cpu_bf16, compile=args.compile, chunk_rows=args.chunk_rows,
        checkpoint_every=max(1, args.bench_steps), log_every=max(1, args.bench_steps),
    )  # fmt: skip


def amp_dtype(tc: TrainConfig, device: torch.device) -> torch.dtype | None:
    return torch.bfloat16 if tc.bf16 and (device.type == "cuda" or tc.cpu_bf16) else None


# ------------------------------------------------------------------------------------------------ timing
class _Clock:
    """Phase timer: CUDA events on a GPU (no sync until the end), perf_counter on a CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list[list[Any]] = []

    def mark(self) -> Any:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def elapsed_ms(self, a: Any, b: Any) -> float:
        return a.elapsed_time(b) if self.cuda else 1e3 * (b - a)


def phase_breakdown(args, data: torch.Tensor, V: int, device: torch.device) -> dict[str, float]:
    """Mean ms per phase over ``--bench-steps`` steps after 10 warm-up steps (the trainer's step, split)."""
    _, tc, model, objective, opt, ema = build(args, V, device)
    amp = amp_dtype(tc, device)
    skipped = torch.zeros((), device=device)
    gen = torch.Generator(device=device)
    clock = _Clock(device)
    names = ("data", "forward+loss", "backward", "optimizer", "ema")
    rows = []
    n_warm = 10
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        for step in range(n_warm + args.bench_steps):
            for g in opt.param_groups:
                g["lr"] = tc.lr_at(step)
            m0 = clock.mark()
            batch = sample_batch(data, tc.batch_size, V, step_generator(tc.seed, 0, step, device, gen))
            m1 = clock.mark()
            seed_device_rng(device, _seed_for(tc.seed, 0, step, "dropout"))
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = objective(batch["x0"], batch["xt"], batch["alpha"], batch["alpha_prime"], batch["sigma"])
            m2 = clock.mark()
            loss.backward()
            m3 = clock.mark()
            _, found_inf = apply_update(opt, clip=tc.clip, ema=None, skipped=skipped)
            m4 = clock.mark()
            ema.update(found_inf)
            m5 = clock.mark()
            if step >= n_warm:
                rows.append((m0, m1, m2, m3, m4, m5))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out = {n: 0.0 for n in names}
    for r in rows:
        for i, n in enumerate(names):
            out[n] += clock.elapsed_ms(r[i], r[i + 1]) / len(rows)
    out["total"] = sum(out[n] for n in names)
    out["skipped"] = float(skipped)
    return out


def trainer_speed(args, data: torch.Tensor, mc_V: int, device: torch.device) -> dict[str, float]:
    """ms/step of ``train()`` over ``--bench-steps`` steps (compilation and one checkpoint included), twice: the
    second run shows the steady state once compiled code is cached."""
    mc, tc, *_ = build(args, mc_V, device)
    tc = TrainConfig(**{**tc.to_dict(), "steps": args.bench_steps})
    res = {}
    for label in ("first", "second"):
        folder = tempfile.mkdtemp(prefix="uddm-diag-")
        try:
            s = train(mc, tc, data, folder, device=device, progress=False)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        res[f"{label}_ms_per_step"] = 1e3 * s["wall_s"] / args.bench_steps
        res[f"{label}_skipped"] = s["skipped_steps"]
    return res


# ------------------------------------------------------------------------------------------------ the traced run
def traced_run(args, data: torch.Tensor, V: int, device: torch.device) -> dict[str, Any]:
    _, tc, model, objective, opt, ema = build(args, V, device)
    amp = amp_dtype(tc, device)
    probes = Probes(model)
    skipped = torch.zeros((), device=device)
    gen = torch.Generator(device=device)
    trace, first_bad = [], None
    armed = {"step": args.inject_nan_at}

    def inject(g: torch.Tensor) -> torch.Tensor:  # a one-shot NaN, to test the diagnosis itself
        if armed["step"] == -2:
            armed["step"] = -1
            return g * float("nan")
        return g

    model.blocks[-1].mlp[2].weight.register_hook(inject)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        for step in range(tc.steps):
            for g in opt.param_groups:
                g["lr"] = tc.lr_at(step)
            batch = sample_batch(data, tc.batch_size, V, step_generator(tc.seed, 0, step, device, gen))
            if step == armed["step"]:
                armed["step"] = -2
            loss = forward_backward(objective, batch, grad_accum=1, autocast_dtype=amp,
                                    dropout_seed=_seed_for(tc.seed, 0, step, "dropout"))  # fmt: skip
            grads_finite = bool(torch.stack([torch.isfinite(p.grad).all() for p in model.parameters()
                                             if p.grad is not None]).all())  # fmt: skip
            if not grads_finite and first_bad is None:
                first_bad = diagnose_step(step, loss, batch, probes, objective, model, opt, tc, amp)
                print(json.dumps({"first_nonfinite_step": first_bad}, indent=1), flush=True)
                if args.stop_at_first:
                    break
            if not grads_finite:  # skipped, as the trainer skips it (the diagnosis may have cleared the gradients)
                opt.zero_grad(set_to_none=True)
                skipped += 1
                norm = torch.full((), float("nan"))
            else:
                norm, _ = apply_update(opt, clip=tc.clip, ema=ema, skipped=skipped)
            if (step + 1) % args.trace_every == 0 or step == 0 or step + 1 == tc.steps:
                stats = logit_stats(model, batch, args.chunk_rows)
                rec = {"step": step + 1, "loss": round(float(loss), 5), "grad_norm": float(norm),
                       "skipped": int(skipped), "max_abs_logit": round(stats["max_abs_logit"], 2),
                       "max_abs_h": round(stats["max_abs_h"], 2),
                       "block_act_max": [round(v, 1) for v in probes.activation_max()],
                       **{k: [round(v, 1) for v in vs] for k, vs in probes.attention_stats().items()}}  # fmt: skip
                trace.append(rec)
                print(json.dumps(rec), flush=True)
    return {"trace": trace, "first_nonfinite": first_bad, "skipped": int(skipped), "steps": tc.steps}


# ------------------------------------------------------------------------------------------------ CLI
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--data", default=None, help="corpus folder or 'embedded' (default: data/brown-sotu if present)")
    p.add_argument("--vocab", type=int, default=8192, help="compacted vocabulary size (0: full ids)")
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--n-train", type=int, default=32)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-blocks", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--cond-dim", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--clip", type=float, default=TrainConfig.clip)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--chunk-rows", type=int, default=2048)
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast on CPU too")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--bench-steps", type=int, default=100, help="steps of each timing part (0: skip timing)")
    p.add_argument("--trace-every", type=int, default=50)
    p.add_argument("--stop-at-first", action="store_true", help="stop the traced run at the first bad step")
    p.add_argument("--inject-nan-at", type=int, default=-1, help="make this step's gradient NaN once (a self-test)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="write the whole result as JSON here")
    p.add_argument("--small", action="store_true", help="a small CPU run (embedded corpus, micro model)")
    a = p.parse_args(argv)
    if a.small:
        a.data = a.data or "embedded"
        a.vocab, a.length, a.n_train = 512, 32, 8
        a.d_model, a.n_blocks, a.n_heads, a.cond_dim = 32, 2, 2, 32
        a.batch_size, a.steps, a.warmup, a.lr = 16, min(a.steps, 30), 5, 3e-3
        a.bench_steps, a.trace_every = min(a.bench_steps, 5), 10
        a.device = a.device or "cpu"
    if a.data is None:
        a.data = "data/brown-sotu" if Path("data/brown-sotu").is_dir() else "embedded"
    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return a


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    t0 = time.perf_counter()
    data, V = load_blocks(args.data, args.vocab or None, args.length, args.n_train)
    data = data.to(device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}; data {args.data}: {data.shape[0]} blocks x {args.length}, V = {V}; "
          f"DiT {args.d_model}x{args.n_blocks}x{args.n_heads}; batch {args.batch_size}, lr {args.lr}, "
          f"bf16 {args.bf16 and (device.type == 'cuda' or args.cpu_bf16)}, compile {args.compile}",
          flush=True)  # fmt: skip
    result: dict[str, Any] = {"args": vars(args), "vocab_size": V, "device": str(device), "torch": torch.__version__}
    if args.bench_steps > 0:
        result["trainer"] = trainer_speed(args, data, V, device)
        print("trainer (train()):", json.dumps(result["trainer"]), flush=True)
        result["phases_ms"] = phase_breakdown(args, data, V, device)
        print("phases (ms/step):", json.dumps({k: round(v, 3) for k, v in result["phases_ms"].items()}), flush=True)
    result["run"] = traced_run(args, data, V, device)
    first = result["run"]["first_nonfinite"]
    print(f"traced run: {result['run']['skipped']} of {result['run']['steps']} steps skipped; "
          f"first non-finite step: {None if first is None else first['step']}; "
          f"wall {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return result
