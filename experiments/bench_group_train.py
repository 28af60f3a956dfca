"""Group training against one model at a time: aggregate tokens/s, speed-up and MFU of the memorization study's
models (:func:`amtheory.diffusion.group_bench.bench_group_train`).

The gpu preset's shapes (``gpu-small`` 128 x 4 blocks, ``gpu-quick`` 256 x 6 blocks; 64-token blocks, V = 8192,
batch 256), one model at a time with the single trainer's step, then groups of ``--group-sizes`` members. Writes
``bench_group_train.json`` and ``.txt`` (with the command and the machine) into ``--out``.

    python experiments/bench_group_train.py --out /tmp/out                  # CUDA, bf16, compiled
    python experiments/bench_group_train.py --device cpu --tiny --out /tmp/t  # seconds on a CPU (the code path)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from amtheory.diffusion.group_bench import bench_group_train, format_table
from amtheory.diffusion.model import DiTConfig
from amtheory.studies.memorization.presets import preset


def _shapes(tiny: bool) -> tuple[dict[str, DiTConfig], int]:
    if tiny:
        kw = {"vocab_size": 64, "length": 16, "n_heads": 2, "cond_dim": 16, "dropout": 0.0}
        return {"tiny-a": DiTConfig(d_model=16, n_blocks=1, **kw), "tiny-b": DiTConfig(d_model=32, n_blocks=2, **kw)}, 4
    p = preset("gpu")
    shapes = {a.name: a.config(p.data.vocab, p.data.length) for a in p.archs}
    return shapes, p.batch_size


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, batch 4, groups 1-3 (checks the code path)")
    ap.add_argument("--group-sizes", default=None, help="comma list (default 1,4,8,16,32; --tiny: 1,3)")
    ap.add_argument("--shapes", default=None, help="comma list of shape names to run (default: all)")
    ap.add_argument(
        "--precision", choices=("bf16", "fp32"), default="bf16",
        help="bf16 autocast (default) or float32 (TF32 matmuls on CUDA, as the gpu preset trains)",
    )  # fmt: skip
    ap.add_argument("--no-compile", action="store_true", help="eager blocks (default on CUDA: compiled)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20; --tiny: 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; --tiny: 1)")
    ap.add_argument("--group-chunk-rows", type=int, default=65536, help="rows of logits per loss chunk, all members")
    ap.add_argument("--budget-s", type=float, default=240.0, help="skip measurements that would start after this")
    ap.add_argument("--out", required=True, help="folder for bench_group_train.json and .txt")
    a = ap.parse_args(argv)

    device = torch.device(a.device)
    shapes, batch = _shapes(a.tiny)
    if a.shapes:
        wanted = a.shapes.split(",")
        unknown = sorted(set(wanted) - set(shapes))
        if unknown:
            ap.error(f"--shapes: expected names among {sorted(shapes)}, got {unknown}")
        shapes = {n: shapes[n] for n in wanted}
    sizes = tuple(int(s) for s in (a.group_sizes or ("1,3" if a.tiny else "1,4,8,16,32")).split(","))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    bf16 = a.precision == "bf16" and device.type == "cuda"  # a CPU run stays float32
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    command = "python experiments/bench_group_train.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    log(f"# command: {command}")
    record = bench_group_train(
        shapes, sizes, device=device, batch_size=batch,
        data_sizes=(8, 32, 64) if a.tiny else (32, 256, 2048, 16384, 53167),
        bf16=bf16, compile=device.type == "cuda" and not a.no_compile,
        chunk_rows=64 if a.tiny else 16384, group_chunk_rows=a.group_chunk_rows,
        steps=a.steps or (2 if a.tiny else 20), warmup=a.warmup or (1 if a.tiny else 5),
        matmul_n=256 if a.tiny else 8192, budget_s=a.budget_s, log=log,
    )  # fmt: skip
    record["command"] = command
    precision = "bf16 autocast" if bf16 else "float32"
    log(f"device: {record['device']}; torch {record['torch']}; host {record['host']}; batch {batch}; {precision}")
    table = format_table(record)
    log(table)
    (out / "bench_group_train.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "bench_group_train.txt").write_text("\n".join(lines) + "\n")
    return record


if __name__ == "__main__":
    main()
