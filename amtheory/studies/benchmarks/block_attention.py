"""The attention of one DiT block at the training benchmark's shapes, forward + backward: fused kernels and SDPA.

For each preset (tiny: 8 heads of 32, small: 12 heads of 64; 128 tokens) and batch (the benchmark's 512, and
256 for a micro-batch of small), times the block's whole attention map, packed ``qkv [B, L, 3 D]`` in, rotary
positions applied, ``[B, L, D]`` out, forward and backward in bf16 with CUDA events:

- ``fused``: :func:`amtheory.diffusion.attention_kernels.rotary_attention` (the DiT's default on CUDA);
- ``sdpa-<kernel>``: the rotary positions in torch and ``scaled_dot_product_attention`` restricted to one of its
  kernels (flash, memory-efficient, cuDNN, math), eager;
- ``compiled sdpa-flash``: the same under ``torch.compile`` with the flash kernel, as the trainer's compiled
  blocks ran it before the fused kernels.

Prints milliseconds per block call, the per-step total (times the blocks, and the micro-batches to make 512
sequences) and the largest difference from a float32 evaluation (relative to the largest entry, output and
gradient); ``--json`` writes the rows and the fused kernels' tiles (chosen with
:mod:`amtheory.studies.benchmarks.attention_probe`). CUDA only.
"""

from __future__ import annotations

import argparse
import json

import torch

from amtheory.core.benchmarking import timed
from amtheory.diffusion import attention_kernels as ak
from amtheory.diffusion.model import PRESETS
from amtheory.studies.benchmarks.measure import error_text, write_json

BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")


def _inputs(batch: int, heads: int, length: int, hd: int, device: torch.device, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    qkv = torch.randn(batch, length, 3 * heads * hd, device=device, generator=g)
    do = torch.randn(batch, length, heads * hd, device=device, generator=g)
    cos, sin = ak.rotary_tables(length, hd, device)
    return qkv, do, cos, sin


def _fwd_bwd(fn, qkv, do, backward: bool = True):
    x = qkv.detach().requires_grad_(backward)
    o = fn(x)
    if not backward:
        return o.detach(), None
    o.backward(do)
    return o.detach(), x.grad


def time_ms(fn, qkv, do, n: int = 20, backward: bool = True) -> float:
    """Milliseconds per call of the map (forward, and backward unless ``backward=False``), after 3 warm-up calls."""
    return timed(lambda: _fwd_bwd(fn, qkv, do, backward), "cuda", repeats=n, warmup=3) * 1e3


def max_rel_err(got, ref) -> float:
    return max(float((a.float() - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in zip(got, ref))


def variants(cos, sin, heads) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(backend):
        def fn(qkv):
            with sdpa_kernel([getattr(SDPBackend, backend)]):
                return ak.reference_rotary_attention(qkv, cos, sin, heads)

        return fn

    compiled = torch.compile(ak.reference_rotary_attention, dynamic=False)

    def compiled_flash(qkv):
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            return compiled(qkv, cos, sin, heads)

    out = {"fused": lambda qkv: ak.rotary_attention(qkv, cos, sin, heads)}
    out.update({f"sdpa-{b.split('_')[0].lower()}": sdpa(b) for b in BACKENDS})
    out["compiled sdpa-flash"] = compiled_flash
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="tiny,small")
    p.add_argument("--batches", default="512,256")
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    dev = torch.device("cuda")
    rows: list[dict] = []
    print(f"device: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}")
    cfgs = a.configs.split(",")
    tiles = dict(ak.TILES)
    for cname in cfgs:
        pr = PRESETS[cname]
        heads, hd, nb = pr["n_heads"], pr["d_model"] // pr["n_heads"], pr["n_blocks"]
        for batch in (int(b) for b in a.batches.split(",")):
            qkv, do, cos, sin = _inputs(batch, heads, a.length, hd, dev)
            ref = _fwd_bwd(lambda x, c=cos, s=sin, h=heads: ak.reference_rotary_attention(x, c, s, h), qkv, do)
            qb, dob = qkv.bfloat16(), do.bfloat16()
            for name, fn in variants(cos, sin, heads).items():
                row = {"config": cname, "batch": batch, "heads": heads, "head_dim": hd, "variant": name}
                try:
                    row["max_rel_err"] = max_rel_err(_fwd_bwd(fn, qb, dob), ref)
                    row["ms_fwd"] = time_ms(fn, qb, dob, backward=False)
                    row["ms_block"] = time_ms(fn, qb, dob)
                    row["ms_step"] = row["ms_block"] * nb * (512 // batch)
                except Exception as e:  # a kernel this torch or GPU lacks
                    row["error"] = error_text(e, 100)
                rows.append(row)
                print(json.dumps(row))
    print("\n| config | batch | variant | fwd ms/block | fwd+bwd ms/block | per step (ms) | max rel. error |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['config']} | {r['batch']} | {r['variant']} | {r['error']} | | | |")
        else:
            print(
                f"| {r['config']} | {r['batch']} | {r['variant']} | {r['ms_fwd']:.3f} | {r['ms_block']:.3f} | "
                f"{r['ms_step']:.2f} | {r['max_rel_err']:.1e} |"
            )
    if a.json:
        write_json(a.json, {"tiles": tiles, "rows": rows}, indent=2)
    return rows
