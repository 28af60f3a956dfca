"""Per-kernel times of the fused rotary attention at small's shape (batch 512, 12 heads of 64, 128 tokens), with
each compiled kernel's registers, spills and shared memory, against SDPA's flash kernel forward and backward.

Launches the Triton kernels directly (no operator overhead) for each tile and pipeline depth, so that a slow
configuration can be told from a slow design. CUDA only.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from amtheory.diffusion import attention_kernels as ak
from amtheory.diffusion.model import PRESETS
from amtheory.studies.benchmarks.measure import cuda_ms


def _ms(fn) -> float:
    """Milliseconds per call, 20 calls after 3 warm-up calls (CUDA events)."""
    return cuda_ms(fn, repeats=20, warmup=3)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small")
    p.add_argument("--batch", type=int, default=512)
    a = p.parse_args(argv)
    dev = torch.device("cuda")
    pr = PRESETS[a.config]
    H, D, L, B = pr["n_heads"], pr["d_model"], 128, a.batch
    hd = D // H
    g = torch.Generator(device=dev).manual_seed(0)
    qkv = torch.randn(B, L, 3 * D, device=dev, generator=g).bfloat16()
    do = torch.randn(B, L, D, device=dev, generator=g).bfloat16()
    cos, sin = ak.rotary_tables(L, hd, dev)
    o = torch.empty(B, L, D, device=dev, dtype=torch.bfloat16)
    lse = torch.empty(B, H, L, device=dev)
    dqkv = torch.empty_like(qkv)
    mb = (qkv.numel() + o.numel()) * 2 / 1e6
    print(f"{a.config}: B {B}, H {H}, hd {hd}, L {L}; qkv + out = {mb:.0f} MB (one pass at 4.8 TB/s: "
          f"{mb / 4.8e6 * 1e3:.3f} ms)")  # fmt: skip

    q, k, v = qkv.view(B, L, 3, H, hd).permute(2, 0, 3, 1, 4).unbind(0)  # [B, H, L, hd] views, as the DiT's
    print(f"flash forward: {_ms(lambda: F.scaled_dot_product_attention(q, k, v)):.3f} ms")
    qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
    out = F.scaled_dot_product_attention(qg, kg, vg)
    dot = do.view(B, L, H, hd).transpose(1, 2)
    print(f"flash backward: {_ms(lambda: torch.autograd.grad(out, (qg, kg, vg), dot, retain_graph=True)):.3f} ms")

    def fwd(bm, warps, stages):
        return ak._attn_fwd_kernel[(L // bm, B * H)](
            qkv, cos, sin, o, lse, L, H, D, hd**-0.5, qkv.stride(0), qkv.stride(1), o.stride(0), o.stride(1),
            BLOCK_M=bm, BLOCK_L=L, HALF=hd // 2, PREC="tf32", num_warps=warps, num_stages=stages,
        )  # fmt: skip

    def bwd(bm, warps, stages):
        return ak._attn_bwd_kernel[(B * H,)](
            qkv, cos, sin, o, do, lse, dqkv, L, H, D, hd**-0.5, qkv.stride(0), qkv.stride(1), o.stride(0),
            o.stride(1), BLOCK_M=bm, BLOCK_L=L, HALF=hd // 2, PREC="tf32", num_warps=warps, num_stages=stages,
        )  # fmt: skip

    bwd_tiles = [(16, 4), (16, 8), (32, 4), (32, 8), (64, 4), (64, 8)]
    for name, launch, tiles in (
        ("fwd", fwd, [(32, 4), (32, 8), (64, 4), (64, 8), (128, 8)]),
        ("bwd", bwd, bwd_tiles),
    ):
        for bm, warps in tiles:
            for stages in (1, 3):
                try:
                    kern = launch(bm, warps, stages)
                    ms = _ms(lambda: launch(bm, warps, stages))  # noqa: B023
                    info = f"regs {kern.n_regs}, spills {kern.n_spills}, shared {kern.metadata.shared}"
                    print(f"{name} BLOCK_M {bm} warps {warps} stages {stages}: {ms:.3f} ms ({info})")
                except Exception as e:
                    print(f"{name} BLOCK_M {bm} warps {warps} stages {stages}: {type(e).__name__}")
