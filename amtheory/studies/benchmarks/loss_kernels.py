"""The UDDM's chunked NELBO on the GPU: the Triton row kernels against the compiled (inductor) loss kernel, at the
training shapes (V = 30,522; D = 256 for "tiny", 768 for "small").

For each ``(rows, D)``: agreement of the two paths (loss, and the gradients with respect to ``h``, ``W`` and ``b``,
as the largest difference relative to the largest entry); with ``--sweep``, a sweep of the row kernels' tiles
(kept as the defaults of the run and written to ``--json``); the time of each kernel with its memory rate; the
rates of the head's three GEMMs (logits, gradient with respect to ``h``, to ``W``) over the padded vocabulary
(30,592 columns) and the unpadded one (30,522: bf16 rows not 16-byte aligned); and one forward + backward of
:func:`amtheory.diffusion.loss.chunked_nelbo` for each path. CUDA only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from amtheory.diffusion import loss_kernels
from amtheory.diffusion.loss import PAD_LOGIT, TRITON_ROWS, chunked_nelbo, pad_vocab
from amtheory.diffusion.model import mm_f32
from amtheory.diffusion.train_step import compiled_loss_kernel
from amtheory.studies.benchmarks.measure import cuda_ms, write_json


def _ms(fn, n_warm: int = 2, n: int = 5) -> float:
    return cuda_ms(fn, repeats=n, warmup=n_warm)


def _problem(rows: int, D: int, V: int, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    h = torch.randn(rows, D, device="cuda", generator=g).requires_grad_()
    # Logits of standard deviation about 3, as in a model that has learnt something.
    W = (torch.randn(V, D, device="cuda", generator=g) * 3 / D**0.5).requires_grad_()
    b = (torch.randn(V, device="cuda", generator=g) * 0.5).requires_grad_()
    x0 = torch.randint(0, V, (1, rows), device="cuda", generator=g)
    keep = torch.rand(1, rows, device="cuda", generator=g) < 0.5
    xt = torch.where(keep, x0, torch.randint(0, V, (1, rows), device="cuda", generator=g))
    a = torch.rand(1, device="cuda", generator=g) * 0.98 + 0.01
    return h, W, b, x0, xt, a, -torch.ones(1, device="cuda")


def _run(prob, kernel, chunk_rows: int):
    h, W, b, x0, xt, a, ap = prob
    for t in (h, W, b):
        t.grad = None
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = chunked_nelbo(h[None], W, x0, xt, a, ap, head_bias=b, chunk_rows=chunk_rows, kernel=kernel, check=False)
    loss.backward()
    return loss.detach(), h.grad, W.grad, b.grad


def _rel(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x.float() - y.float()).abs().max() / y.float().abs().max().clamp_min(1e-30))


def _sweep(fn, which: str, budget_s: float) -> dict:
    """Time ``fn(tiles)`` over a grid (the default first) until ``budget_s`` is spent; print every time and keep
    the best as default."""
    grid = [loss_kernels.tiles_for(which)]
    for br, bc, nw in itertools.product((1, 2, 4), (2048, 1024, 4096), (8, 4, 16)):
        t = {"BLOCK_R": br, "BLOCK_C": bc, "num_warps": nw}
        if t not in grid:
            grid.append(t)
    t0, best, tried = time.perf_counter(), None, []
    for t in grid:
        if time.perf_counter() - t0 > budget_s:
            break
        ms = _ms(lambda t=t: fn(t), 1, 3)
        tried.append(f"{t['BLOCK_R']}x{t['BLOCK_C']}/{t['num_warps']}w {ms:.2f}")
        if best is None or ms < best[0]:
            best = (ms, t)
    print(f"  {which}: best of {len(tried)} tiles {best[1]} ({best[0]:.2f} ms)", flush=True)
    print(f"    rows x columns / warps, ms: {', '.join(tried)}", flush=True)
    loss_kernels.GPU_TILES[which] = best[1]
    return best[1]


def _measure(rows: int, D: int, V: int, sweep_s: float | None, compiled) -> dict:
    VP = pad_vocab(V)
    prob = _problem(rows, D, V)
    row = {"rows": rows, "D": D, "V": V}
    ref = _run(prob, compiled, min(rows, 16384))
    ref = [t.clone() for t in ref]
    new = _run(prob, TRITON_ROWS, min(rows, 16384))
    row.update({f"rel_diff_{k}": _rel(x, y) for k, x, y in zip(("loss", "h", "W", "b"), new, ref)})
    h, W, b, x0, xt, al, _ = prob
    hcat = torch.cat([h.detach().bfloat16(), torch.ones(rows, 8, dtype=torch.bfloat16, device="cuda")], 1)
    Wb = torch.zeros(VP, D + 8, dtype=torch.bfloat16, device="cuda")
    Wb[:V, :D] = W.detach()
    Wb[:V, D] = b.detach()
    Wb[V:, D] = PAD_LOGIT
    K = (V * al / (1 - al)).expand(rows).contiguous()
    x0r, xtr = x0[0], xt[0]
    z = mm_f32(hcat, Wb.t())
    coef = torch.randn(rows, 6, device="cuda") * 1e-3
    if sweep_s is not None:
        row["tiles_row_stats"] = _sweep(lambda t: loss_kernels.row_stats(z, x0r, xtr, K, t), "row_stats", sweep_s)
        row["tiles_row_grad"] = _sweep(
            lambda t: loss_kernels.row_logit_grad(z, x0r, xtr, coef, torch.bfloat16, t), "row_grad", sweep_s
        )
    row["ms_row_stats"] = _ms(lambda: loss_kernels.row_stats(z, x0r, xtr, K))
    row["ms_row_grad"] = _ms(lambda: loss_kernels.row_logit_grad(z, x0r, xtr, coef, torch.bfloat16))
    row["gbs_row_stats"] = z.numel() * 4 / row["ms_row_stats"] / 1e6
    row["gbs_row_grad"] = z.numel() * 6 / row["ms_row_grad"] / 1e6
    gc = loss_kernels.row_logit_grad(z, x0r, xtr, coef, torch.bfloat16)
    gu, Wu = gc[:, :V].contiguous(), Wb[:V].contiguous()
    flop = 2 * rows * V * D
    for name, fn in (
        ("logits", lambda: mm_f32(hcat, Wb.t())),
        ("dh", lambda: mm_f32(gc, Wb[:, :D])),
        ("dW", lambda: mm_f32(gc.t(), hcat)),
        ("logits_unpadded", lambda: mm_f32(hcat, Wu.t())),
        ("dh_unpadded", lambda: mm_f32(gu, Wu[:, :D])),
        ("dW_unpadded", lambda: mm_f32(gu.t(), hcat)),
    ):
        row[f"tflops_gemm_{name}"] = flop / _ms(fn) / 1e9
    for name, kernel, chunk in (
        ("compiled_chunk16384", compiled, 16384),
        ("triton_chunk16384", TRITON_ROWS, 16384),
        ("triton_chunk32768", TRITON_ROWS, 32768),
    ):
        if chunk <= rows:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            row[f"ms_{name}"] = _ms(lambda kernel=kernel, chunk=chunk: _run(prob, kernel, chunk))
            row[f"extra_gb_{name}"] = (torch.cuda.max_memory_allocated() - base) / 2**30
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    t0 = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="32768,65536", help="rows per call; tiles are swept at the first")
    p.add_argument("--d", default="256,768")
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--sweep", action="store_true", help="try a grid of tiles for each kernel and keep the best")
    p.add_argument("--sweep-budget-s", type=float, default=30.0, help="seconds of tile sweep per kernel")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    print(
        f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {loss_kernels.triton.__version__}"
    )
    compiled = compiled_loss_kernel()
    out = []
    for i, (D, rows) in enumerate(
        itertools.product([int(x) for x in a.d.split(",")], [int(x) for x in a.rows.split(",")])
    ):
        row = _measure(rows, D, a.vocab, a.sweep_budget_s if (a.sweep and i == 0) else None, compiled)
        print(json.dumps(row), flush=True)
        out.append(row)
        torch.cuda.empty_cache()
    print()
    print(
        "| rows | D | triton vs compiled: loss / grad h / W / b | row stats ms (GB/s) | row grad ms (GB/s) "
        "| GEMM logits / dh / dW TF/s, padded | unpadded | loss + grad ms: compiled, chunk 16384 "
        "| triton, 16384 | triton, 32768 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in out:
        diff = " / ".join(f"{r[f'rel_diff_{k}']:.0e}" for k in ("loss", "h", "W", "b"))
        gemm = [f"{r[f'tflops_gemm_{k}']:.0f}" for k in ("logits", "dh", "dW")]
        gemm_u = [f"{r[f'tflops_gemm_{k}_unpadded']:.0f}" for k in ("logits", "dh", "dW")]
        times = [
            f"{r.get(f'ms_{k}', float('nan')):.2f}"
            for k in ("compiled_chunk16384", "triton_chunk16384", "triton_chunk32768")
        ]
        print(
            f"| {r['rows']} | {r['D']} | {diff} | {r['ms_row_stats']:.2f} ({r['gbs_row_stats']:.0f}) | "
            f"{r['ms_row_grad']:.2f} ({r['gbs_row_grad']:.0f}) | {' / '.join(gemm)} | {' / '.join(gemm_u)} | "
            + " | ".join(times)
            + " |"
        )
    print("(GB/s: row stats counts one float32 read of the logits, row grad a read and a bf16 write)")
    if a.json:
        write_json(a.json, {"device": torch.cuda.get_device_name(), "rows": out, "tiles": loss_kernels.GPU_TILES})
    print(f"total {time.perf_counter() - t0:.0f} s")
    return out
