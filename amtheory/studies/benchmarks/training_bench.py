"""GPU training benchmark of the UDDM: a plain training step against the trainer's optimised one.

At batch 512 x 128 tokens and V = 30522, for the paper's "tiny" and "small" DiTs (small as 2 x 256 with gradient
accumulation), formulations of one optimizer step (AdamW, clipping 1.0, EMA, the continuous-time NELBO):

- plain: bf16 autocast, SDPA restricted to its math kernel, the full [B, L, V] float32 logits and log-probs
  materialised and the loss computed from them in eager mode, foreach AdamW, no compile;
- compiled/chunkN: the trainer's step (:func:`amtheory.diffusion.train.optimizer_step`): bf16 autocast, flash
  SDPA, transformer blocks compiled (regional ``torch.compile``), the chunked NELBO (N rows of logits at a time,
  vocabulary padded to aligned GEMMs, no [B, L, V] tensor) whose closed-form gradient kernel is compiled, fused
  AdamW;
- triton/chunkN: the same step with the loss kernel "triton" (the trainer's default on CUDA): two Triton kernels
  over each chunk's logits (:mod:`amtheory.diffusion.loss_kernels`).

The optimised variants' blocks use the fused rotary attention kernels (:mod:`amtheory.diffusion.attention_kernels`,
the default on CUDA); with ``--attention auto,sdpa`` each is also run with SDPA's flash kernel and the rotary
positions in the compiled block (variants named ``...+sdpa``), so the fused attention's gain is measured in the
same run. Likewise their residual updates and norms use the fused kernels of
:mod:`amtheory.diffusion.norm_kernels` where the trainer would (models at least 512 wide); ``--norm auto,torch``
also runs them as compiled torch operations (variants named ``...+torchnorm``).

Each is timed over ``--steps`` steps after warm-up with CUDA events: ms/step, tokens/s, peak memory
(``torch.cuda.max_memory_allocated``) and MFU = (6 x parameters x tokens + attention FLOPs) / peak, the parameters
counted without the embedding and output head or with the head (:data:`~amtheory.studies.benchmarks.flops.FLOP_COUNTS`;
both count the conditioning maps, applied once a sequence, as if applied to every token), the peak the bf16 rate of an
8192^3 matmul measured in the same run or the H100's nominal 989 TFLOP/s. At the end, a table of MFU under every
count and peak for the quoted plain figures (:data:`QUOTED_PLAIN`) and this run's fastest step: which accounting
reproduces the quoted MFU, and what it gives here (``--accounting-from`` prints it for a recorded run).
``--opt-accum small=1,small=2`` times the optimised variants at several micro-batch counts.
Then the cost of retrieval evaluation: sequences x reverse steps per second of one bf16 forward pass (+
softmax) at batch 512 under ``torch.inference_mode``, and of whole reverse chains (``UniformDiffusionLM`` under
``ReverseDiffusion``, ancestral and argmax, float64 posterior steps). ``--profile`` prints the top kernels of each
optimised step. A failing variant prints its error and the run goes on;
a time budget (``--budget-s``, default 270 s) skips what would not fit.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from typing import Any

import torch

from amtheory.core.benchmarking import bf16_matmul_rate, timed_steps
from amtheory.diffusion import loss_kernels
from amtheory.diffusion.model import DiTConfig
from amtheory.studies.benchmarks.flops import step_flops
from amtheory.studies.benchmarks.measure import error_text, free_memory, peak_gib, write_json
from amtheory.studies.benchmarks.training_report import accounting_from, print_accounting, print_tables, profile_step
from amtheory.studies.benchmarks.training_step import (
    GPU_BATCH,
    GPU_L,
    GPU_V,
    H100_BF16_DENSE,
    eval_cost,
    fresh_model,
    optimised_step,
    plain_step,
    reverse_chain_cost,
)

DESCRIPTION = "GPU training benchmark of the UDDM: a plain training step against the trainer's optimised one."


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--small-cpu", action="store_true", help="a tiny version on the CPU (tests the code path)")
    p.add_argument("--configs", default=None, help="comma list of presets (default tiny,small)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20)")
    p.add_argument("--chunk-rows", default=None, help="comma list of loss chunk sizes to try (default 1024,4096)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--no-eval", action="store_true", help="time training only (no retrieval evaluation)")
    p.add_argument(
        "--compile", action="store_true", help="with --small-cpu: compile on the CPU too (needs a C++ compiler)"
    )
    p.add_argument("--budget-s", type=float, default=270.0, help="skip what would start after this many seconds")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--profile", action="store_true", help="print the top kernels of each optimised variant's step")
    p.add_argument(
        "--compile-mode", default=None, help="torch.compile mode of the blocks (e.g. max-autotune-no-cudagraphs)"
    )
    p.add_argument(
        "--compile-options", default=None, metavar="JSON",
        help='inductor options of the compiled blocks, e.g. \'{"coordinate_descent_tuning": true}\'',
    )  # fmt: skip
    p.add_argument("--variants", default=None, help="comma list of variant prefixes to run (default: all)")
    p.add_argument(
        "--attention", default="auto",
        help="comma list of the optimised variants' block attention: 'auto' (the fused kernels on CUDA) and/or "
        "'sdpa' (variants named '...+sdpa')",
    )  # fmt: skip
    p.add_argument(
        "--norm", default="auto",
        help="comma list of the optimised variants' residual updates and norms: 'auto' (the trainer's choice: the "
        "fused kernels on CUDA from width 512) "
        "and/or 'torch' (compiled torch operations; variants named '...+torchnorm')",
    )  # fmt: skip
    p.add_argument("--tiles", default=None, help="Triton loss-kernel tiles: the JSON bench_loss_kernels.py wrote")
    p.add_argument(
        "--accounting-from", default=None, metavar="JSON",
        help="print only the MFU accounting table of a recorded run (the JSON of --json); needs no GPU",
    )  # fmt: skip
    p.add_argument(
        "--opt-accum", default=None,
        help="micro-batch counts of the optimised variants, e.g. 'small=1,small=2' (plain keeps the default: 2 for "
        "small and medium, 1 otherwise)",
    )  # fmt: skip
    a = p.parse_args(argv)
    if a.accounting_from:
        return accounting_from(a.accounting_from)

    if a.small_cpu:
        device = torch.device("cpu")
        torch.set_num_threads(1)
        V, L, batch, mm_n, warm = 300, 32, 8, 256, 1
        configs = (a.configs or "cpu-micro").split(",")
        steps = a.steps or 3
        chunks = [int(c) for c in (a.chunk_rows or "64").split(",")]
        accum = {c: 1 for c in configs}
        compile_ = a.compile
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device; use --small-cpu for the CPU version")
        device = torch.device("cuda")
        V, L, batch, mm_n, warm = GPU_V, GPU_L, GPU_BATCH, 8192, 3
        configs = (a.configs or "tiny,small").split(",")
        steps = a.steps or 20
        chunks = [int(c) for c in (a.chunk_rows or "1024,4096").split(",")]
        accum = {c: (2 if c in ("small", "medium") else 1) for c in configs}
        compile_ = not a.no_compile
    opt_accum = _parse_accum(a.opt_accum, configs, batch) if a.opt_accum else {}
    compile_options = json.loads(a.compile_options) if a.compile_options else None
    if compile_options is not None:
        if a.compile_mode:
            raise SystemExit("--compile-options: torch.compile takes either a mode or options, not both")
        print(f"compiled blocks' inductor options: {compile_options}")
    attention_suffixes = []
    for att in a.attention.split(","):
        if att not in ("auto", "sdpa"):
            raise SystemExit(f"--attention: expected a comma list of 'auto' and 'sdpa', got {a.attention!r}")
        attention_suffixes.append("" if att == "auto" else "+sdpa")
    norm_suffixes = []
    for nrm in a.norm.split(","):
        if nrm not in ("auto", "torch"):
            raise SystemExit(f"--norm: expected a comma list of 'auto' and 'torch', got {a.norm!r}")
        norm_suffixes.append("" if nrm == "auto" else "+torchnorm")
    suffixes = [sa + sn for sa in attention_suffixes for sn in norm_suffixes]
    if a.tiles:
        with open(a.tiles) as f:
            loss_kernels.GPU_TILES.update(json.load(f)["tiles"])
        print(f"Triton loss-kernel tiles: {loss_kernels.GPU_TILES}")
    t_start = time.perf_counter()

    def over_budget(what: str) -> bool:
        if time.perf_counter() - t_start > a.budget_s:
            print(f"[skip] {what}: past the {a.budget_s:.0f} s budget")
            return True
        return False

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; batch {batch} x {L} tokens, V = {V}")
    rate = bf16_matmul_rate(device, mm_n)
    print(f"measured {'bf16' if device.type == 'cuda' else 'fp32'} matmul rate ({mm_n}^3): {rate / 1e12:.3g} TFLOP/s")
    data = torch.randint(0, V, (4 * batch, L), device=device, generator=torch.Generator(device=device).manual_seed(1))
    loss_kernel = "compiled" if compile_ else "eager"

    rows: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    for cname in configs:
        cfg = DiTConfig.preset(cname, V, L)
        model_ne = None
        flops = None
        triton_ok = loss_kernels.available(device)
        variants = ["plain"] + [f"compiled/chunk{c}" for c in chunks]
        variants += [f"triton/chunk{c}" for c in chunks] if triton_ok else []
        # "+sdpa": the same step with the blocks' attention through SDPA instead of the fused kernels; "+torchnorm":
        # with the residual updates and norms as compiled torch operations instead of the fused kernels.
        variants = [v + s for v in variants for s in ([""] if v == "plain" else suffixes)]
        if a.variants:
            variants = [v for v in variants if v.startswith(tuple(a.variants.split(",")))]
        runs = [
            (v, n) for v in variants for n in ([accum[cname]] if v == "plain" else opt_accum.get(cname, [accum[cname]]))
        ]
        for variant, n_micro in runs:
            if over_budget(f"{cname} {variant} (accum {n_micro})"):
                continue
            row: dict[str, Any] = {"config": cname, "variant": variant, "accum": n_micro}
            model = None
            try:
                free_memory(device)
                torch._dynamo.reset()  # each variant compiles afresh (no recompile limit carried over)
                model = fresh_model(cfg, device)
                model_ne = model.count_parameters()["non_embedding"]
                flops = step_flops(cfg, batch, count="non_embedding")
                flops_head = step_flops(cfg, batch, count="with_head")
                if variant == "plain":
                    fn = plain_step(model, data, batch, n_micro, device)
                else:
                    if compile_:
                        for blk in model.blocks:
                            blk.compile(mode=a.compile_mode, options=compile_options)
                    c = int(variant.split("chunk")[1].split("+")[0])
                    k = "triton" if variant.startswith("triton") else loss_kernel
                    att = "sdpa" if "+sdpa" in variant else "auto"
                    nrm = "torch" if "+torchnorm" in variant else "auto"
                    fn = optimised_step(model, data, batch, n_micro, device, c, k, att, nrm)
                t0 = time.perf_counter()
                sec = timed_steps(fn, device, repeats=steps, warmup=warm)
                if a.profile and variant != "plain":
                    profile_step(fn, device, f"{cname} {variant}", steps + warm)
                row.update(
                    ms_step=sec * 1e3, tokens_s=batch * L / sec, mfu=flops / sec / rate,
                    mfu_head=flops_head / sec / rate, params_non_embedding=model_ne,
                    mfu_nominal=flops / sec / H100_BF16_DENSE if device.type == "cuda" else None,
                    mfu_head_nominal=flops_head / sec / H100_BF16_DENSE if device.type == "cuda" else None,
                    peak_gb=peak_gib(device), wall_s=time.perf_counter() - t0,
                )  # fmt: skip
            except Exception as e:  # one failing variant must not end the benchmark
                traceback.print_exc()
                row["error"] = error_text(e)
            finally:
                del model
                free_memory(device)
            rows.append(row)
            print(json.dumps(row, default=str))
        if not a.no_eval and not over_budget(f"{cname} retrieval evaluation"):
            try:
                model = fresh_model(cfg, device)
                row = {"config": cname, "seq_steps_per_s": eval_cost(model, data, batch, device, steps)}
                row.update(reverse_chain_cost(model, data, batch, device, n_steps=20 if device.type == "cuda" else 3))
                evals.append(row)
            except Exception as e:
                traceback.print_exc()
                evals.append({"config": cname, "error": f"{type(e).__name__}: {e}"[:160]})
            finally:
                model = None
                free_memory(device)

    print_tables(rows, evals, rate, device, batch, L)
    if device.type == "cuda":
        print_accounting(rows, rate, V, L, batch)
    print(f"total wall time {time.perf_counter() - t_start:.0f} s")
    if a.json:
        write_json(a.json, {"device": name, "matmul_flops": rate, "train": rows, "eval": evals}, indent=2)
    return rows


def _parse_accum(spec: str, configs: list[str], batch: int) -> dict[str, list[int]]:
    """``'small=1,small=2'`` -> ``{'small': [1, 2]}``; each count must divide the batch."""
    out: dict[str, list[int]] = {}
    for item in spec.split(","):
        cname, sep, n = item.partition("=")
        if not sep or cname not in configs or not n.isdigit() or int(n) < 1 or batch % int(n):
            raise SystemExit(
                f"--opt-accum: expected CONFIG=N items with CONFIG in {configs} and N a divisor of {batch}, "
                f"got {item!r}"
            )
        out.setdefault(cname, []).append(int(n))
    return out
