"""The batched reverse chain of a lockstep group (``amtheory.diffusion.group_eval.group_reverse_chain``) at the
memorization study's shapes: the recovery chain (ancestral steps) or the fixed-point chain (argmax steps) of 30
members on 64 queries each, as a measured group runs them. Reported per shape: milliseconds a chain step, token
steps a second, and the milliseconds a step takes per GiB of the float32 log-probabilities it forms (the step's
passes over the vocabulary, in time); with ``--profile``, the kernels of one chain by part.

    python experiments/bench_group_chain.py --device cpu --tiny --out /tmp/t     # the code path, seconds
    python experiments/bench_group_chain.py --out /tmp/out --profile              # CUDA, the gpu preset's shapes

The members are freshly initialized DiTs whose zero-initialized output head is drawn at random (a uniform
prediction would make every draw fall in the same part of the step distribution); the measured models' steps
draw from the model's part on 2-18% of positions (``benchmarks/cpu_bench_chain_step.txt``)."""

from __future__ import annotations

import argparse
import itertools
import math
import platform
from typing import Any

import torch

from amtheory.core.benchmarking import timed
from amtheory.diffusion.group_eval import GroupDenoiser, group_reverse_chain
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.sampler import ReverseDiffusion
from amtheory.studies.benchmarks.group_training import picked_shapes
from amtheory.studies.benchmarks.measure import command_log, device_label, median_time_and_peak, write_record
from amtheory.studies.benchmarks.training_report import profile_step

__all__ = ["bench_group_chain", "main"]


def _group(cfg: DiTConfig, members: int, batch: int, device: torch.device, block_fn=None) -> GroupDenoiser:
    states = []
    for g in range(members):
        torch.manual_seed(g)
        model = DiT(cfg)
        torch.nn.init.normal_(model.out.weight, std=1.0 / math.sqrt(cfg.d_model))
        states.append(model.state_dict())
    amp = torch.bfloat16 if device.type == "cuda" else None  # as a measured group runs (evaluate_models_in_groups)
    return GroupDenoiser.from_states(cfg, states, device=device, batch_size=batch, autocast_dtype=amp,
                                     block_fn=block_fn)  # fmt: skip


def bench_group_chain(
    shapes: dict[str, DiTConfig], *, members: int, batch: int, t_start: float, n_steps: int, sampler: str,
    repeats: int, device: torch.device, profile: bool, log, compile: str = "off",
) -> dict[str, Any]:  # fmt: skip
    """Time one chain of each shape (median of ``repeats`` after a first one, timed apart as ``first_chain_s``: with
    compiled blocks, it compiles them; and on CUDA the memory one chain allocates); rows of the record.
    ``compile``: the blocks eager ("off") or under ``torch.compile`` with static ("static") or dynamic ("dynamic")
    shapes."""
    from amtheory.diffusion.group_model import compiled_block

    rows = []
    for name, cfg in shapes.items():
        d = _group(cfg, members, batch, device, None if compile == "off" else compiled_block(compile == "dynamic"))
        dyn = ReverseDiffusion(t_start=t_start, n_steps=n_steps, sampler=sampler, final="posterior", grid="global",
                               batch_size=batch)  # fmt: skip
        steps = sum(1 for _ in dyn._schedule(dyn.start_times(batch)))
        x = torch.randint(0, cfg.vocab_size, (members, batch, cfg.length), generator=torch.Generator().manual_seed(0))
        x = x.to(device)

        def chain(i: int, d=d, dyn=dyn, x=x) -> torch.Tensor:
            gens = [torch.Generator().manual_seed(1000 * i + g) for g in range(members)]
            return group_reverse_chain(d, dyn, x, generators=gens)

        calls = itertools.count()  # each chain with draws of its own
        # The first chain, timed apart: it compiles the blocks, where they are compiled.
        first = timed(lambda c=calls, f=chain: f(next(c)), device, repeats=1, warmup=0)
        s, peak = median_time_and_peak(lambda c=calls, f=chain: f(next(c)), device, warmup=0, repeats=repeats)
        gib = members * batch * cfg.length * cfg.vocab_size * 4 / 2**30  # float32 log-probabilities of one step
        row = {"shape": name, "compile": compile, "d_model": cfg.d_model, "n_blocks": cfg.n_blocks, "members": members,
               "batch": batch,
               "steps": steps, "chain_s": s, "ms_per_step": 1e3 * s / steps,
               "token_steps_s": members * batch * cfg.length * steps / s,
               "ms_per_step_per_gib": 1e3 * s / steps / gib, "peak_gib": peak / 2**30,
               "first_chain_s": first}  # fmt: skip
        rows.append(row)
        blocks = "eager" if compile == "off" else f"{compile} compiled"
        log(
            f"{name} ({cfg.d_model} x {cfg.n_blocks}), blocks {blocks}, "
            f"{members} members x {batch} queries, {steps} {sampler} steps: "
            f"{row['ms_per_step']:.2f} ms a step, {row['token_steps_s']:,.0f} token steps/s, "
            f"{row['ms_per_step_per_gib']:.2f} ms a step per GiB of float32 log-probabilities ({gib:.2f} GiB)"
            + (f", {row['peak_gib']:.2f} GiB allocated by a chain" if math.isfinite(peak) else "")
            + f"; the first chain {first:.1f} s"
        )
        if profile:
            profile_step(chain, device, f"{name} chain of {members}", first=next(calls), n=1)
    return {"rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python experiments/bench_group_chain.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, 3 members of 4 queries (checks the code path)")
    ap.add_argument("--shapes", default=None, help="comma list of shape names to run (default: all)")
    ap.add_argument("--members", type=int, default=None, help="models in the group (default 30; --tiny: 3)")
    ap.add_argument("--batch", type=int, default=None, help="queries a member a pass (default 64; --tiny: 4)")
    ap.add_argument("--t-start", type=float, default=0.5, help="corruption level the chain starts from")
    ap.add_argument("--n-steps", type=int, default=50, help="steps of the global grid over [0, 1]")
    ap.add_argument("--sampler", choices=("ancestral", "argmax"), default="ancestral",
                    help="ancestral: the recovery chain; argmax: the fixed-point chain")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3, help="timed chains (median reported)")
    ap.add_argument("--profile", action="store_true", help="profile one more chain of each shape (kernels by part)")
    ap.add_argument("--compile", choices=("off", "static", "dynamic"), default="off",
                    help="the blocks eager (default) or under torch.compile with static or dynamic shapes")  # fmt: skip
    ap.add_argument("--out", required=True, help="folder for bench_group_chain.txt and .json")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    shapes, _ = picked_shapes(ap, a)
    log, lines, command = command_log("bench_group_chain", argv)
    record = bench_group_chain(
        shapes, members=a.members or (3 if a.tiny else 30), batch=a.batch or (4 if a.tiny else 64),
        t_start=a.t_start, n_steps=a.n_steps, sampler=a.sampler, repeats=a.repeats, device=device,
        profile=a.profile, log=log, compile=a.compile,
    )  # fmt: skip
    record.update(command=command, device=device_label(device, platform.processor() or "cpu"),
                  torch=torch.__version__)  # fmt: skip
    log(f"device: {record['device']}; torch {record['torch']}")
    write_record(a.out, "bench_group_chain", lines, record)
    return record
