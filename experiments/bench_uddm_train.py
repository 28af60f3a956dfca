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
counted without the embedding and output head or with the head (:data:`FLOP_COUNTS`), the peak the bf16 rate of an
8192^3 matmul measured in the same run or the H100's nominal 989 TFLOP/s. At the end, a table of MFU under every
count and peak for the quoted plain figures (:data:`QUOTED_PLAIN`) and this run's fastest step: which accounting
reproduces the quoted MFU, and what it gives here (``--accounting-from`` prints it for a recorded run).
``--opt-accum small=1,small=2`` times the optimised variants at several micro-batch counts.
Then the cost of retrieval evaluation: sequences x reverse steps per second of one bf16 forward pass (+
softmax) at batch 512 under ``torch.inference_mode``, and of whole reverse chains (``UniformDiffusionLM`` under
``ReverseDiffusion``, ancestral and argmax, float64 posterior steps). ``--profile`` prints the top kernels of each
optimised step. A failing variant prints its error and the run goes on;
a time budget (``--budget-s``, default 270 s) skips what would not fit.

    python experiments/bench_uddm_train.py               # CUDA, about 3-5 minutes on one H100
    python experiments/bench_uddm_train.py --small-cpu   # a few seconds on a CPU (checks the code path)
    python experiments/bench_uddm_train.py --accounting-from benchmarks/h100_bench_uddm_train.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from amtheory.core.benchmarking import bf16_matmul_rate
from amtheory.diffusion import loss_kernels
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.loss import _nelbo_rows
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.train import (
    EMA,
    NELBOObjective,
    TrainConfig,
    make_optimizer,
    optimizer_step,
    sample_batch,
    step_generator,
)

H100_BF16_DENSE = 989e12
#: Vocabulary (bert-base-uncased), sequence length and batch of the GPU benchmark.
GPU_V, GPU_L, GPU_BATCH = 30522, 128, 512


# ------------------------------------------------------------------------------------------------ helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[int], Any], n_warm: int, n: int, device: torch.device) -> float:
    """Mean seconds per call of ``fn(i)`` over ``n`` calls after ``n_warm`` warm-up calls."""
    for i in range(n_warm):
        fn(i)
    _sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(n):
            fn(n_warm + i)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / n
    t0 = time.perf_counter()
    for i in range(n):
        fn(n_warm + i)
    return (time.perf_counter() - t0) / n


#: How parameters are counted in MFU: "non_embedding" leaves out the token embedding and the output head's weight
#: matrix (6 x the rest x tokens), "with_head" counts the head's product too (a dense GEMM of 6 V D FLOPs per
#: token on the tensor cores; at d = 256 it is as large as the rest of the model), "all" every parameter (the
#: embedding lookup as if it were a product). Attention's 12 L D per token and block is added to each.
FLOP_COUNTS = ("non_embedding", "with_head", "all")

#: The plain-formulation figures this benchmark is set against (one H100, bf16 autocast, unfused loss): ms per
#: step at the given batch and the MFU quoted with them. Which parameter count and which peak rate reproduce the
#: quoted MFU from the quoted time is printed by :func:`_print_accounting`.
QUOTED_PLAIN = {
    "tiny": {"ms": 154.0, "batch": 512, "mfu": 0.05},
    "small": {"ms": 178.0, "batch": 256, "mfu": 0.17},
}


def step_flops(cfg: DiTConfig, n_params_ne: int, batch: int, *, count: str = "non_embedding") -> float:
    """Training FLOPs of one step: 6 x parameters x tokens (counted as ``count`` of :data:`FLOP_COUNTS` says,
    ``n_params_ne`` being the non-embedding count) plus attention, 4 B L^2 D per layer forward (QK^T and AV), x3
    for training."""
    if count not in FLOP_COUNTS:
        raise ValueError(f"count: expected one of {FLOP_COUNTS}, got {count!r}")
    tokens = batch * cfg.length
    matrices = {"non_embedding": 0, "with_head": 1, "all": 2}[count]
    params = n_params_ne + matrices * cfg.vocab_size * cfg.d_model
    return 6 * params * tokens + 12 * cfg.n_blocks * batch * cfg.length**2 * cfg.d_model


def _new_model(cfg: DiTConfig, device: torch.device) -> DiT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.device(device):
            model = DiT(cfg)
    return model.train()


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


# ------------------------------------------------------------------------------------------------ variants
def plain_step(model: DiT, data: torch.Tensor, batch: int, accum: int, device: torch.device) -> Callable[[int], Any]:
    """A direct training step: full logits, eager loss, math attention, foreach AdamW."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    V, L = model.config.vocab_size, model.config.length
    model.kernels = Kernels(attention="sdpa", norm="torch")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.999), weight_decay=0.0)
    ema = EMA(model, 0.9999)
    amp = device.type == "cuda"
    micro = batch // accum

    def step(i: int) -> None:
        b = sample_batch(data, batch, V, step_generator(0, 0, i, device))
        for m in range(accum):
            p = {k: v[m * micro : (m + 1) * micro] for k, v in b.items()}
            with (
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp),
                sdpa_kernel([SDPBackend.MATH]),
            ):
                # The usual formulation: a bf16 output layer under autocast, then full float32 log-probs.
                h = model.hidden(p["xt"], p["sigma"], check=False)
                logits = torch.nn.functional.linear(h, model.out.weight, model.out.bias)
                logp = logits.float().log_softmax(-1)  # [B, L, V] float32
                loss = _nelbo_rows(
                    logp.reshape(-1, V), p["x0"].reshape(-1), p["xt"].reshape(-1),
                    p["alpha"].repeat_interleave(L), p["alpha_prime"].repeat_interleave(L),
                ).mean()  # fmt: skip
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update()

    return step


def optimised_step(
    model: DiT,
    data: torch.Tensor,
    batch: int,
    accum: int,
    device: torch.device,
    chunk_rows: int,
    loss: str,
    attention: str = "auto",
    norm: str = "auto",
) -> Callable[[int], Any]:
    """The trainer's own step (amtheory.diffusion.train.optimizer_step) with compiled blocks and loss kernel;
    ``loss`` is the resolved loss kernel ("triton", "compiled" or "eager"), ``attention`` the blocks' attention
    (:data:`amtheory.diffusion.attention_kernels.ATTENTION_KERNELS`), ``norm`` their residual updates and norms
    (:data:`amtheory.diffusion.norm_kernels.NORM_KERNELS`)."""
    V = model.config.vocab_size
    tc = TrainConfig(steps=1, batch_size=batch, grad_accum=accum, chunk_rows=chunk_rows)
    model.kernels = Kernels(loss=loss, attention=attention, norm=norm)
    objective = NELBOObjective(model, chunk_rows, loss)
    opt = make_optimizer(model, tc, device)
    ema = EMA(model, 0.9999)
    amp = torch.bfloat16 if device.type == "cuda" else None

    def step(i: int) -> None:
        b = sample_batch(data, batch, V, step_generator(0, 0, i, device))
        optimizer_step(objective, opt, b, grad_accum=accum, clip=1.0, autocast_dtype=amp, dropout_seed=i, ema=ema)

    return step


def eval_cost(model: DiT, data: torch.Tensor, batch: int, device: torch.device, n: int) -> float:
    """Sequences x reverse steps per second: one denoiser call (forward + softmax) on ``batch`` sequences."""
    model.eval()
    x = data[:batch]
    sigma = torch.full((batch,), 0.5, device=device)
    amp = device.type == "cuda"

    def fwd(i: int) -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(x, sigma, check=False).softmax(-1)

    sec = _time(fwd, 2, n, device)
    model.train()
    return batch / sec


def reverse_chain_cost(model: DiT, data: torch.Tensor, batch: int, device: torch.device, n_steps: int) -> dict:
    """Sequences x reverse steps per second of whole retrievals: ``UniformDiffusionLM`` (bf16 forward on CUDA)
    under ``ReverseDiffusion`` from t = 1 on an ``n_steps`` grid, ancestral and argmax (float64 posterior steps)."""
    from amtheory.diffusion.backend import UniformDiffusionLM
    from amtheory.diffusion.sampler import ReverseDiffusion

    amp = torch.bfloat16 if device.type == "cuda" else None
    uddm = UniformDiffusionLM(model, vocab_size=model.config.vocab_size, batch_size=batch, autocast_dtype=amp)
    uddm.store(data[:batch])
    out = {}
    for sampler in ("ancestral", "argmax"):
        dyn = ReverseDiffusion(t_start=1.0, n_steps=n_steps, sampler=sampler)
        g = torch.Generator(device=device).manual_seed(0)
        sec = _time(lambda i, dyn=dyn, g=g: dyn.run(uddm, data[:batch], generator=g), 1, 2, device)
        out[f"reverse_{sampler}_seq_steps_per_s"] = batch * n_steps / sec
    model.train()
    return out


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        return _accounting_from(a.accounting_from)

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
                _free(device)
                torch._dynamo.reset()  # each variant compiles afresh (no recompile limit carried over)
                model = _new_model(cfg, device)
                model_ne = model.count_parameters()["non_embedding"]
                flops = step_flops(cfg, model_ne, batch)
                flops_head = step_flops(cfg, model_ne, batch, count="with_head")
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
                sec = _time(fn, warm, steps, device)
                if a.profile and variant != "plain":
                    _profile(fn, device, f"{cname} {variant}", steps + warm)
                row.update(
                    ms_step=sec * 1e3, tokens_s=batch * L / sec, mfu=flops / sec / rate,
                    mfu_head=flops_head / sec / rate, params_non_embedding=model_ne,
                    mfu_nominal=flops / sec / H100_BF16_DENSE if device.type == "cuda" else None,
                    mfu_head_nominal=flops_head / sec / H100_BF16_DENSE if device.type == "cuda" else None,
                    peak_gb=_peak_gb(device), wall_s=time.perf_counter() - t0,
                )  # fmt: skip
            except Exception as e:  # one failing variant must not end the benchmark
                traceback.print_exc()
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
            finally:
                del model
                _free(device)
            rows.append(row)
            print(json.dumps(row, default=str))
        if not a.no_eval and not over_budget(f"{cname} retrieval evaluation"):
            try:
                model = _new_model(cfg, device)
                row = {"config": cname, "seq_steps_per_s": eval_cost(model, data, batch, device, steps)}
                row.update(reverse_chain_cost(model, data, batch, device, n_steps=20 if device.type == "cuda" else 3))
                evals.append(row)
            except Exception as e:
                traceback.print_exc()
                evals.append({"config": cname, "error": f"{type(e).__name__}: {e}"[:160]})
            finally:
                model = None
                _free(device)

    _print_tables(rows, evals, rate, device, batch, L)
    if device.type == "cuda":
        _print_accounting(rows, rate, V, L, batch)
    print(f"total wall time {time.perf_counter() - t_start:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": name, "matmul_flops": rate, "train": rows, "eval": evals}, f, indent=2, default=str)
    return rows


def _accounting_from(path: str) -> list[dict[str, Any]]:
    """The MFU accounting table of a run recorded with ``--json`` (non-embedding counts from the configs)."""
    with open(path) as f:
        rec = json.load(f)
    V, L = GPU_V, GPU_L
    rows = [dict(r) for r in rec["train"]]
    for r in rows:
        if "params_non_embedding" not in r:
            with torch.device("meta"):
                r["params_non_embedding"] = DiT(DiTConfig.preset(r["config"], V, L)).count_parameters()["non_embedding"]
    print(f"recorded run: {path} ({rec['device']}; measured bf16 rate {rec['matmul_flops'] / 1e12:.0f} TFLOP/s)")
    _print_accounting(rows, rec["matmul_flops"], V, L, GPU_BATCH)
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


def _profile(fn: Callable[[int], Any], device: torch.device, label: str, first: int, n: int = 3) -> None:
    """Print where ``n`` steps of ``fn`` spend their device time (top kernels), after the timed steps."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for i in range(n):
            fn(first + i)
        _sync(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"--- profile: {label}, {n} steps, sorted by {key}")
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=70))
    if device.type == "cuda":
        _print_kernel_split(prof.events(), n)


#: Kernel-name fragments of each part of a training step (first match wins; the rest is "other"). Inductor's
#: generated kernels (names starting "triton_") count as fused elementwise whatever ops their names list.
INDUCTOR = "fused elementwise (inductor)"
KERNEL_CATEGORIES = (
    ("loss kernels (Triton)", ("_row_stats_kernel", "_row_grad_kernel")),
    ("residual and norm kernels (Triton)", ("_add_norm_fwd_kernel", "_add_norm_bwd_kernel")),
    ("attention", ("flash", "fmha", "attention", "cudnn", "_attn_fwd_kernel", "_attn_bwd_kernel")),
    ("GEMM", ("nvjet", "gemm", "cutlass", "sm90_xmma", "splitk")),
    ("optimizer and EMA", ("multi_tensor", "adam", "foreach", "lerp")),
    ("eager elementwise and reductions", ("elementwise", "reduce", "vectorized", "unrolled", "copy", "fill")),
)


def kernel_category(name: str) -> str:
    """The part of a training step a CUDA kernel belongs to, from its name (:data:`KERNEL_CATEGORIES`)."""
    low = name.lower()
    if low.startswith("triton_"):
        return INDUCTOR
    for cat, frags in KERNEL_CATEGORIES:
        if any(f.lower() in low for f in frags):
            return cat
    return "other"


def _print_kernel_split(events: Any, n: int) -> None:
    """Device time per step by part of the step (kernel events only: no operator is counted twice)."""
    from torch.autograd import DeviceType

    per: dict[str, float] = {}
    top: dict[str, dict[str, float]] = {}
    for e in events:
        if e.device_type != DeviceType.CUDA:
            continue
        us = e.time_range.elapsed_us()
        cat = kernel_category(e.name)
        per[cat] = per.get(cat, 0.0) + us
        top.setdefault(cat, {})[e.name] = top.get(cat, {}).get(e.name, 0.0) + us
    total = sum(per.values())
    print(f"device time per step by part: {total / n / 1e3:.1f} ms in kernels")
    for cat, us in sorted(per.items(), key=lambda kv: -kv[1]):
        names = sorted(top[cat].items(), key=lambda kv: -kv[1])[:4]
        heads = "; ".join(f"{k[:60]} {v / n / 1e3:.2f}" for k, v in names)
        print(f"  {cat:34s} {us / n / 1e3:7.2f} ms ({100 * us / total:4.1f}%)  top: {heads}")
    every = sorted(top.get(INDUCTOR, {}).items(), key=lambda kv: -kv[1])
    if every:
        print(f"  {INDUCTOR}, every kernel (ms per step):")
        for k, v in every:
            print(f"    {v / n / 1e3:6.2f}  {k[:150]}")


def _fastest_optimised(rows: list[dict[str, Any]], cname: str) -> dict[str, Any] | None:
    """The timed optimised row of config ``cname`` with the fewest ms per step (None if there is none)."""
    opts = [r for r in rows if r["config"] == cname and r["variant"] != "plain" and "ms_step" in r]
    return min(opts, key=lambda r: r["ms_step"]) if opts else None


def _print_accounting(rows: list[dict[str, Any]], rate: float, V: int, L: int, batch: int) -> None:
    """MFU of the quoted plain figures (:data:`QUOTED_PLAIN`) and of this run's fastest optimised step, under each
    parameter count of :data:`FLOP_COUNTS` and against both peak rates: which accounting reproduces the quoted
    MFU from the quoted time, and what the same accounting gives the optimised step."""
    best = {c: r for c in QUOTED_PLAIN if (r := _fastest_optimised(rows, c)) is not None}
    if not best:
        return
    names = list(best)
    print()
    quoted = [
        f"{c} {QUOTED_PLAIN[c]['ms']:.0f} ms/step at batch {QUOTED_PLAIN[c]['batch']}, {QUOTED_PLAIN[c]['mfu']:.0%}"
        for c in names
    ]
    print(f"MFU accounting: the quoted plain figures ({'; '.join(quoted)}) and this run's fastest optimised steps")
    print()
    head = " | ".join(f"plain {c} (quoted {QUOTED_PLAIN[c]['mfu']:.0%}) | optimised {c}" for c in names)
    print(f"| parameters counted | peak rate | {head} |")
    print("|---|---|" + "---|---|" * len(names))
    for count in FLOP_COUNTS:
        for peak_name, peak in ((f"measured {rate / 1e12:.0f} TF/s", rate), ("nominal 989 TF/s", H100_BF16_DENSE)):
            cells = []
            for c in names:
                cfg, n_ne = DiTConfig.preset(c, V, L), best[c]["params_non_embedding"]
                q = QUOTED_PLAIN[c]
                plain = step_flops(cfg, n_ne, q["batch"], count=count) / (q["ms"] / 1e3) / peak
                opt = step_flops(cfg, n_ne, batch, count=count) / (best[c]["ms_step"] / 1e3) / peak
                cells.append(f"{plain:.1%} | {opt:.1%}")
            print(f"| {count} | {peak_name} | " + " | ".join(cells) + " |")


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def _print_tables(rows, evals, rate, device, batch, L) -> None:
    print()
    print(f"Training step, batch {batch} x {L}; MFU = (6 x non-embedding parameters x tokens + attention) against the")
    print(f"measured {rate / 1e12:.3g} TFLOP/s and against 989; 'with head' adds the output head's 6 V D per token.")
    print()
    print(
        "| config | variant | accum | ms/step | tokens/s | MFU (measured) | MFU (989 TF) | MFU with head (measured) "
        "| MFU with head (989 TF) | peak GiB | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['variant']} | {r['accum']} | {_fmt(r.get('ms_step'), '.1f')} | "
            f"{_fmt(r.get('tokens_s'), ',.0f')} | {_fmt(r.get('mfu'), '.1%')} | {_fmt(r.get('mfu_nominal'), '.1%')} | "
            f"{_fmt(r.get('mfu_head'), '.1%')} | {_fmt(r.get('mfu_head_nominal'), '.1%')} | "
            f"{_fmt(r.get('peak_gb'), '.2f')} | {r.get('error', '')} |"
        )
    print()
    print("| config | speed-up (plain ms / best optimised ms) | peak memory ratio (plain / optimised) |")
    print("|---|---|---|")
    for cname in dict.fromkeys(r["config"] for r in rows):
        plain = next((r for r in rows if r["config"] == cname and r["variant"] == "plain" and "ms_step" in r), None)
        best = _fastest_optimised(rows, cname)
        if plain is None or best is None:
            print(f"| {cname} | n/a | n/a |")
            continue
        mem = plain["peak_gb"] / best["peak_gb"] if plain.get("peak_gb") and best.get("peak_gb") else None
        mem_s = f"{mem:.2f}x" if mem is not None else "n/a"
        print(
            f"| {cname} | {plain['ms_step'] / best['ms_step']:.2f}x ({best['variant']}, accum {best['accum']}) "
            f"| {mem_s} |"
        )
    if not evals:
        return
    print()
    print(
        f"Retrieval evaluation at batch {batch}, sequences x reverse steps per second: one denoiser call (bf16 forward "
        "+ softmax), and whole reverse chains (UniformDiffusionLM, float64 posterior steps)"
    )
    print()
    print("| config | denoiser call | reverse chain, ancestral | reverse chain, argmax | note |")
    print("|---|---|---|---|---|")
    for e in evals:
        print(
            f"| {e['config']} | {_fmt(e.get('seq_steps_per_s'), ',.0f')} | "
            f"{_fmt(e.get('reverse_ancestral_seq_steps_per_s'), ',.0f')} | "
            f"{_fmt(e.get('reverse_argmax_seq_steps_per_s'), ',.0f')} | {e.get('error', '')} |"
        )


if __name__ == "__main__":
    main()
