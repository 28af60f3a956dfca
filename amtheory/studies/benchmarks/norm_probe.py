"""Forward and backward times of the fused residual update + modulated LayerNorm at the paper's shapes (batch 512,
128 tokens; tiny's width 256 and small's 768, dropout 0.1), for several launch settings, against the same map as
torch operations compiled by inductor (what the DiT's compiled blocks ran before), with the bandwidth each reaches.

Bytes counted per element of the stream: forward reads x (4) and o (2) and writes x_new (4) and h (2); backward
reads both incoming gradients (4 + 2), x_new (4) and o (2) and writes the gradients of x (4) and o (2). The
compiled torch map moves more (the dropout mask, the stream between its kernels); its bandwidth is quoted on the
same count, so the two rates compare as times. CUDA only.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from amtheory.diffusion import norm_kernels as nk
from amtheory.diffusion.model import PRESETS
from amtheory.studies.benchmarks.measure import cuda_ms

FWD_BYTES, BWD_BYTES = 12, 18


def _ms(fn) -> float:
    """Milliseconds per call, 50 calls after 5 warm-up calls (CUDA events)."""
    return cuda_ms(fn, repeats=50, warmup=5)


def _torch_map(x, o, gate, w, shift, scale, p: float):
    """The DiT's torch path of one residual update and norm under bf16 autocast (dropout on the bf16 branch)."""
    xn = x + gate[:, None] * torch.nn.functional.dropout(o, p, training=True)
    h = torch.nn.functional.layer_norm(xn, (xn.shape[-1],)) * w
    return xn, (h * (1.0 + scale[:, None]) + shift[:, None]).bfloat16()


def _host_us(fn, n: int = 300) -> float:
    """Microseconds per call of ``fn`` on a shape whose kernels take a few microseconds: the host's cost of a
    call (Python, dispatch, launches), as the wall time of ``n`` calls with one synchronisation at the end."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e6


def _host_costs(compiled, dev: torch.device) -> None:
    """Host cost per call of the fused operator and of the compiled torch map, forward and forward + backward."""
    B, L, D = 2, 8, 64
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(B, L, D, device=dev, generator=g).requires_grad_(True)
    o = torch.randn(B, L, D, device=dev, generator=g).bfloat16().requires_grad_(True)
    gate, shift, scale = (torch.randn(B, D, device=dev, generator=g).bfloat16().requires_grad_(True) for _ in range(3))
    w = torch.randn(D, device=dev, generator=g).requires_grad_(True)
    args = (x, o, gate, w, shift, scale)
    seed = torch.tensor([1], device=dev)
    gxn, gh = torch.randn(B, L, D, device=dev), torch.randn(B, L, D, device=dev).bfloat16()
    fused = torch.compile(lambda *a: nk.add_norm(*a, p=0.1, seed=seed), dynamic=False)

    def both(fn):
        return lambda: torch.autograd.grad(fn(*args), args, (gxn, gh))

    print(f"\nhost cost per call (B {B} x L {L} x D {D}: kernels of a few microseconds), microseconds:")
    print("| path | forward (no grad) | forward + backward |")
    print("|---|---|---|")
    for label, fn in (
        ("fused operator, eager", lambda *a: nk.add_norm(*a, p=0.1, seed=seed)),
        ("fused operator inside torch.compile", fused),
        ("inductor (torch ops)", lambda *a: compiled(*a, 0.1)),
    ):
        with torch.no_grad():
            t_f = _host_us(lambda fn=fn: fn(*args))
        print(f"| {label} | {t_f:.1f} | {_host_us(both(fn)):.1f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="tiny,small")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--no-sweep", action="store_true", help="time the default launch settings only")
    a = ap.parse_args(argv)
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}; dropout {a.p}")
    compiled = torch.compile(_torch_map, dynamic=False)
    default = {k: dict(v) for k, v in nk.TILES.items()}
    _host_costs(compiled, dev)
    for cname in a.configs.split(","):
        _probe(PRESETS[cname]["d_model"], cname, a.batch, a.p, compiled, dev, sweep=not a.no_sweep)
        for k, v in default.items():
            nk.TILES[k].clear()
            nk.TILES[k].update(v)


def _probe(D: int, cname: str, B: int, p: float, compiled, dev: torch.device, sweep: bool = True) -> None:
    L = 128
    n = B * L * D
    g = torch.Generator(device=dev).manual_seed(0)

    def r(*shape, dtype=torch.float32):
        return torch.randn(*shape, device=dev, generator=g).to(dtype).requires_grad_(True)

    x, o = r(B, L, D), r(B, L, D, dtype=torch.bfloat16)
    gate, shift, scale = (r(B, D, dtype=torch.bfloat16) for _ in range(3))
    w = r(D)
    gxn, gh = torch.randn(B, L, D, device=dev), torch.randn(B, L, D, device=dev).bfloat16()
    seed = torch.tensor([1], device=dev)
    args = (x, o, gate, w, shift, scale)
    print(f"\n{cname}: B {B} x L {L} x D {D}")
    print("| path | settings | forward ms | forward GB/s | backward ms | backward GB/s |")
    print("|---|---|---|---|---|---|")

    def report(label, settings, fwd):
        t_f = _ms(fwd)
        outs = fwd()
        t_b = _ms(lambda: torch.autograd.grad(outs, args, (gxn, gh), retain_graph=True))
        print(f"| {label} | {settings} | {t_f:.3f} | {FWD_BYTES * n / t_f / 1e6:,.0f} | {t_b:.3f} | "
              f"{BWD_BYTES * n / t_b / 1e6:,.0f} |")  # fmt: skip

    report("inductor (torch ops)", "default", lambda: compiled(*args, p))
    report("fused, no dropout", "default", lambda: nk.add_norm(*args))
    if not sweep:
        report("fused", "default", lambda: nk.add_norm(*args, p=p, seed=seed))
        return
    for tile_f, warps_f, tile_b, warps_b, programs in itertools.product(
        (2048, 4096, 8192), (4, 8), (2048, 4096), (4, 8), (1024, 2048)
    ):
        if (tile_f, warps_f) != (4096, 8) and (tile_b, warps_b, programs) != (4096, 8, 2048):
            continue  # vary one phase at a time around the defaults
        nk.TILES["fwd"].update(TILE=tile_f, num_warps=warps_f)
        nk.TILES["bwd"].update(TILE=tile_b, num_warps=warps_b, PROGRAMS=programs)
        report("fused", f"fwd {tile_f}/{warps_f}w, bwd {tile_b}/{warps_b}w/{programs}p",
               lambda: nk.add_norm(*args, p=p, seed=seed))  # fmt: skip
