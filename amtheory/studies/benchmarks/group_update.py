"""The optimizer and EMA update of a training group on its own: the eager update (one operation per pass over the
members' ``[G, P]`` float32 state) against the compiled one
(:func:`~amtheory.diffusion.group_train.compiled_member_update`), for the memorization study's model shapes.

Each update is :meth:`~amtheory.diffusion.group_train.GroupTrainer.update` on a fixed gradient (one member's not
finite, so the masking is timed too), timed over ``repeats`` calls after ``warmup``. Reported: milliseconds per
update, the compiled update's speed-up, and the bandwidth both would reach if they moved only the state a fused
update must touch: the gradient read twice (its norm, then the step), the weights, both moments and the EMA read and
written, ten ``[G, P]`` float32 passes in all.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import platform
from typing import Any

import torch

from amtheory.diffusion.group_train import GroupTrainer
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train_config import TrainConfig
from amtheory.studies.benchmarks.group_training import preset_shapes
from amtheory.studies.benchmarks.measure import (
    command_log,
    device_label,
    median_time_and_peak,
    pick_shapes,
    write_record,
)

__all__ = ["PASSES", "bench_group_update", "main"]

#: ``[G, P]`` float32 passes that a fused update cannot avoid (see the module docstring).
PASSES = 10


def _trainer(cfg: DiTConfig, G: int, device: torch.device, compile: bool) -> GroupTrainer:
    tc = TrainConfig(steps=1, batch_size=1, lr=1e-3, warmup=0, ema=0.999, weight_decay=0.1, bf16=False,
                     compile=compile, loss_kernel="eager")  # fmt: skip
    data = torch.zeros((1, cfg.length), dtype=torch.long)
    return GroupTrainer(cfg, [dataclasses.replace(tc, seed=g) for g in range(G)], [data] * G, device=device)


def bench_group_update(
    cfg: DiTConfig, G: int, *, device: torch.device, repeats: int, warmup: int
) -> dict[str, Any]:  # fmt: skip
    """One row: the shape, G, P, and per mode (``eager``, ``compiled``) the median seconds per update and the
    bandwidth of ``PASSES`` passes over the state in that time."""
    row: dict[str, Any] = {"G": G}
    for mode in ("eager", "compiled"):
        trainer = _trainer(cfg, G, device, compile=mode == "compiled")
        P = trainer.weights.shape[1]
        grad = 1e-3 * torch.randn((G, P), generator=torch.Generator().manual_seed(0)).to(device)
        grad[-1, 0] = float("nan")

        def update(trainer: GroupTrainer = trainer, grad: torch.Tensor = grad) -> None:
            trainer.weights.grad = grad
            trainer.update(1e-3)

        seconds, peak = median_time_and_peak(update, device, warmup, repeats)
        row.update({"P": P, f"{mode}_s": seconds, f"{mode}_peak_bytes": peak,
                    f"{mode}_gb_s": PASSES * G * P * 4 / seconds / 1e9})  # fmt: skip
        del trainer, grad, update
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row["speedup"] = row["eager_s"] / row["compiled_s"]
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python experiments/bench_group_update.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="two tiny shapes (check the code path)")
    ap.add_argument("--shapes", default=None, help="comma list of the gpu preset's model names (default: all)")
    ap.add_argument("--group-size", type=int, default=30, help="members of the group (default 30, the preset's)")
    ap.add_argument("--repeats", type=int, default=5, help="timed updates per mode (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed updates first (default 2; the first compiles)")
    ap.add_argument("--out", required=True, help="folder for bench_group_update.json and .txt")
    a = ap.parse_args(argv)
    for name in ("group_size", "repeats"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(a, name)}")
    if a.warmup < 1:
        ap.error(f"--warmup: expected at least 1 (the first compiled call compiles), got {a.warmup}")
    shapes = pick_shapes(ap, preset_shapes(a.tiny)[0], a.shapes)
    device = torch.device(a.device)
    log, lines, command = command_log("bench_group_update", argv)
    name = device_label(device, platform.processor() or "cpu")
    log(f"# device: {name}; torch {torch.__version__}; {torch.get_num_threads()} threads")
    log("| shape | G | P | eager ms | compiled ms | speed-up | eager GB/s | compiled GB/s |")
    log("|---|---|---|---|---|---|---|---|")
    rows = []
    for shape, cfg in shapes.items():
        r = {"shape": shape, **bench_group_update(cfg, a.group_size, device=device, repeats=a.repeats,
                                                  warmup=a.warmup)}  # fmt: skip
        rows.append(r)
        log(f"| {shape} | {r['G']} | {r['P']:,} | {1e3 * r['eager_s']:.2f} | {1e3 * r['compiled_s']:.2f} | "
            f"{r['speedup']:.2f} | {r['eager_gb_s']:.1f} | {r['compiled_gb_s']:.1f} |")  # fmt: skip
    record = {"command": command, "device": name, "torch": torch.__version__, "passes": PASSES, "rows": rows}
    write_record(a.out, "bench_group_update", lines, record)
    return record
