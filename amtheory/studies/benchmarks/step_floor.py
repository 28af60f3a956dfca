"""The least time a group's training step can take, for judging an MFU target against what the model's numbers allow.

A step is its GEMMs, its attention kernels, and passes over memory between them. The GEMMs' and attention's times
are taken as measured (a profile of the step); every other pass is counted at the fewest bytes it can move when each
chain of elementwise operations between two GEMMs is one pass (no elementwise work inside a GEMM), and timed at a
measured bandwidth. Per token, with ``d`` the width, ``h`` the MLP's hidden width, ``s`` the bytes of the residual
stream and its gradient, ``a`` those of the GEMMs' operands and outputs (2, bf16), ``l`` those of the logits, ``VP``
the padded vocabulary:

* each block: the residual additions fused with the norms and modulations after them, forward (read the stream and
  the branch's output, write the stream and the next GEMM's input: ``2 (2 s + 2 a) d``) and backward (read the
  input's gradient, the stream, the stream's gradient and the branch's output for its gate, write the stream's and
  the branch's gradients: ``2 (3 s + 3 a) d``); the MLP's bias and GELU (``2 a h`` forward, ``3 a h`` backward);
* the embedding lookup and its gradient, and the final norm and modulation: ``(7 s + 2 a) d``;
* the loss: the logits read once for their statistics and once for the gradient, which is written in the GEMMs'
  dtype: ``(2 l + a) VP``.

Per parameter of each member, the optimizer: AdamW and the EMA read the weights, gradient (float32), moments and EMA
and write the weights, moments and EMA (``12 + 6 m`` bytes for moments and EMA of ``m`` bytes), and the gradient
norm for clipping reads the gradient once more (4).

:data:`NUMERICS` names two sets of numbers: the trainer's under bf16 autocast (float32 residual stream, logits,
moments and EMA) and all of those in bf16. Both take the GEMMs' time as measured in the trainer's numbers, where the
head's product writes float32 logits; writing bf16 ones would save that product at most their bytes' half at the
bandwidth (0.7 ms for gpu-quick's group of 30). The floor is not a prediction of what a schedule reaches: it leaves
out every pass a real kernel makes twice, and every cost of launching one.
"""

from __future__ import annotations

import argparse
from typing import Any

from amtheory.core._checks import check_choice, check_float, check_int
from amtheory.diffusion.group_model import GroupLayout
from amtheory.diffusion.loss import pad_vocab
from amtheory.diffusion.model import DiTConfig
from amtheory.studies.benchmarks.flops import flops_per_token

__all__ = ["NUMERICS", "floor_bytes", "main", "step_floor"]

#: Bytes of (the residual stream and its gradient, the logits, the AdamW moments and EMA) by name.
NUMERICS = {"trainer": (4, 4, 4), "bf16": (2, 2, 2)}
_A = 2  # bytes of the GEMMs' operands and outputs under bf16 autocast


def floor_bytes(cfg: DiTConfig, group_size: int, batch: int, numerics: str = "trainer") -> dict[str, float]:
    """Bytes a training step of ``group_size`` members of ``cfg`` (``batch`` sequences each) must move outside its
    GEMMs and attention under ``numerics`` (a key of :data:`NUMERICS`), by part: blocks, ends (embedding and final
    norm), loss, optimizer."""
    if not isinstance(cfg, DiTConfig):
        raise TypeError(f"cfg: expected a DiTConfig, got {type(cfg).__name__}")
    check_choice("numerics", numerics, tuple(NUMERICS))
    check_int("group_size", group_size, minimum=1)
    check_int("batch", batch, minimum=1)
    s, logit, m = NUMERICS[numerics]
    d, h, a = cfg.d_model, cfg.mlp_ratio * cfg.d_model, _A
    tokens = group_size * batch * cfg.length
    block = 2 * (2 * s + 2 * a) * d + 2 * (3 * s + 3 * a) * d + 5 * a * h
    return {
        "blocks": float(tokens * cfg.n_blocks * block),
        "ends": float(tokens * (7 * s + 2 * a) * d),
        "loss": float(tokens * (2 * logit + a) * pad_vocab(cfg.vocab_size)),
        "optimizer": float(group_size * GroupLayout.of(cfg).width * (12 + 6 * m + 4)),
    }


def step_floor(
    cfg: DiTConfig, group_size: int, batch: int, *, gemm_ms: float, attention_ms: float, bandwidth: float,
    rate: float, numerics: str = "trainer",
) -> dict[str, Any]:  # fmt: skip
    """The floor of a step in ms (the measured ``gemm_ms`` and ``attention_ms`` plus :func:`floor_bytes` at
    ``bandwidth`` bytes/s), by part, and the MFU it would give against ``rate`` FLOP/s under the performed and the
    6 N count with the head (:func:`~amtheory.studies.benchmarks.flops.flops_per_token`)."""
    for name, v in (("gemm_ms", gemm_ms), ("attention_ms", attention_ms), ("bandwidth", bandwidth), ("rate", rate)):
        check_float(name, v, minimum=0.0, strict_min=True)
    ms = {k: 1e3 * b / bandwidth for k, b in floor_bytes(cfg, group_size, batch, numerics).items()}
    total = gemm_ms + attention_ms + sum(ms.values())
    tokens = group_size * batch * cfg.length
    mfu = {c: flops_per_token(cfg, c) * tokens / (total / 1e3) / rate for c in ("performed", "with_head")}
    return {"numerics": numerics, "gemm": gemm_ms, "attention": attention_ms, **ms, "total": total, "mfu": mfu}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from amtheory.studies.benchmarks.group_training import preset_shapes

    shapes, batch = preset_shapes(False)
    ap = argparse.ArgumentParser(prog="python experiments/group_step_floor.py", description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(shapes), default="gpu-quick")
    ap.add_argument("--group-size", type=int, default=30)
    ap.add_argument("--gemm-ms", type=float, required=True, help="the step's GEMM time, ms (a profile's)")
    ap.add_argument("--attention-ms", type=float, required=True, help="the step's attention kernels' time, ms")
    ap.add_argument("--bandwidth", type=float, required=True, help="bytes/s a streaming kernel reaches on the card")
    ap.add_argument("--rate", type=float, required=True, help="the measured bf16 matrix-product rate, FLOP/s")
    ap.add_argument("--measured-ms", type=float, default=None, help="the step's measured time, ms, set beside")
    a = ap.parse_args(argv)
    cfg = shapes[a.shape]
    rows = [
        step_floor(
            cfg,
            a.group_size,
            batch,
            gemm_ms=a.gemm_ms,
            attention_ms=a.attention_ms,
            bandwidth=a.bandwidth,
            rate=a.rate,
            numerics=n,
        )  # fmt: skip
        for n in NUMERICS
    ]
    print(f"{a.shape}, {a.group_size} members of {batch} x {cfg.length} tokens: the step's floor in ms")
    print("| numerics | GEMM | attention | blocks | ends | loss | optimizer | floor | MFU (performed) | MFU (6 N) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        parts = " | ".join(f"{r[k]:.2f}" for k in ("gemm", "attention", "blocks", "ends", "loss", "optimizer", "total"))
        print(f"| {r['numerics']} | {parts} | {r['mfu']['performed']:.1%} | {r['mfu']['with_head']:.1%} |")
    tokens = a.group_size * batch * cfg.length
    for c in ("performed", "with_head"):
        need = flops_per_token(cfg, c) * tokens / (0.3 * a.rate) * 1e3
        print(f"30% MFU under the {c} count needs {need:.1f} ms a step", end="")
        print(f"; measured {a.measured_ms:.1f} ms" if a.measured_ms else "")
    return rows
