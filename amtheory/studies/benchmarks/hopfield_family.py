"""The Hopfield family's cells of the memorization study, timed one by one: each backend's recovery and basin
cells (``amtheory.studies.memorization.evaluation.evaluate_cell``) at the stored-set sizes asked for, with the
gpu preset's evaluation settings, as the sweep runs them. Reported per cell: seconds, and the cell's outcome (mean
restored fraction of the changed ordinary tokens and the share restored whole, training and test queries; the
median basin radius per split), so that two runs of different code can be compared on what they compute as well
as on time. With ``--profile``, the kernels of one more recovery cell of each backend at the largest size. With
``--kernels``, first the two operations those cells spend their time in, at the largest size and 128 queries: the
agreement counts and the sums of pattern weights by token (``amtheory.core.token_sums``), each against the form it
replaced (a ``[B, K, L]`` comparison reduced over positions; a scatter over ``[B, L, K]`` into ``[B, L, V]``).

    python experiments/bench_hopfield_family.py --out /tmp/out --profile                 # CUDA, the gpu preset
    python experiments/bench_hopfield_family.py --device cpu --tiny --out /tmp/t         # seconds on a CPU
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from typing import Any

import torch

from amtheory.studies.benchmarks.measure import command_log, device_label, picked, synchronize, write_record
from amtheory.studies.memorization.cells import BACKENDS, DataSpec, EvalSettings, HopfieldCell
from amtheory.studies.memorization.evaluation import evaluate_cell, hopfield_applicability
from amtheory.studies.memorization.presets import GPU_SETTINGS, GPU_SIZES

__all__ = ["bench_hopfield_family", "main"]

#: The code path on a CPU in seconds: the embedded corpus, a few queries.
TINY_SETTINGS = EvalSettings(n_eval=8, ts=(0.1, 0.5), n_steps=10, n_basin=2, basin_trials=2, basin_steps=4,
                             empirical_steps=10, hopfield_batch=4, batch_size=8)  # fmt: skip


def _outcome(df) -> dict[str, float]:
    """What a cell computed, in a few numbers (NaN where the cell did not apply)."""
    out: dict[str, float] = {}
    if "recovered" in df:
        for split in ("train", "test"):
            part = df[df["split"] == split]
            out[f"{split}_recovered"] = float(part["recovered"].mean())
            out[f"{split}_exact"] = float(part["exact"].mean())
    elif "median_radius" in df:
        for split, part in df.groupby("split"):
            out[f"{split}_median_radius"] = float(part["median_radius"].iloc[0])
    return out


def bench_hopfield_family(
    data: DataSpec, sizes: tuple[int, ...], backends: tuple[str, ...], measures: tuple[str, ...],
    settings: EvalSettings, device: torch.device, profile: bool, log,
) -> dict[str, Any]:  # fmt: skip
    """Time each (size, backend, measure) cell once, on draws seeded the same for every run; rows of the record."""
    rows = []
    for n in sizes:
        for backend in backends:
            for measure in measures:
                cell = HopfieldCell(backend, data, n, measure, settings)
                ok, why = hopfield_applicability(backend, data, n, settings)
                row: dict[str, Any] = {"backend": backend, "n_stored": n, "measure": measure, "applicable": ok}
                if not ok:
                    row.update(seconds=math.nan, note=why[:80])
                    rows.append(row)
                    log(f"{backend} {measure} at {n:,} blocks: not applicable")
                    continue
                synchronize(device)
                t0 = time.perf_counter()
                df = evaluate_cell(cell, torch.Generator().manual_seed(0), str(device), root="")
                synchronize(device)
                row["seconds"] = time.perf_counter() - t0
                row.update(_outcome(df))
                rows.append(row)
                shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.startswith(("train_", "test_", "random")))
                log(f"{backend} {measure} at {n:,} blocks: {row['seconds']:.2f} s ({shown})")
    if profile:
        _profile(data, max(sizes), backends, settings, device)
    return {"rows": rows}


def _profile(data: DataSpec, n: int, backends: tuple[str, ...], settings: EvalSettings, device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    for backend in backends:
        if not hopfield_applicability(backend, data, n, settings)[0]:
            continue
        cell = HopfieldCell(backend, data, n, "recovery", settings)
        with profile(activities=acts) as prof:
            evaluate_cell(cell, torch.Generator().manual_seed(0), str(device), root="")
            synchronize(device)
        print(f"--- profile: {backend} recovery at {n:,} blocks, sorted by {key}")
        print(prof.key_averages().table(sort_by=key, row_limit=14, max_name_column_width=70))


def bench_kernels(data: DataSpec, n: int, device: torch.device, log, queries: int = 128) -> dict[str, float]:
    """Milliseconds a call of the agreement counts and of the sums by token, and of the forms they replaced."""
    from amtheory.core.token_sums import TokenSums
    from amtheory.studies.benchmarks.measure import median_time_and_peak
    from amtheory.studies.memorization.data import load_data

    corpus = load_data(data)
    P = corpus.blocks("train", n, data.length).to(device)
    x = P[torch.arange(queries) % n]
    V, (K, L) = corpus.vocab_size, P.shape
    sums = TokenSums(P, V)
    w = torch.rand(queries, K, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)

    def scatter():
        out = torch.zeros(queries, L, V, dtype=torch.float64, device=device)
        for lo in range(0, K, 4096):  # the chunks of 4,096 patterns the denoiser used
            hi = min(lo + 4096, K)
            out.scatter_add_(2, P[lo:hi].T[None].expand(queries, L, hi - lo), w[:, None, lo:hi].expand(-1, L, -1))
        return out

    variants = {
        "agreements, one [B, K] comparison a position": lambda: sums.agreements(x),
        "agreements, [B, K, L] comparison reduced over positions": lambda: torch.cat(
            [(x[:, None, :] == P[lo : lo + 4096][None]).sum(-1) for lo in range(0, K, 4096)], 1
        ),
        "sums by token, sparse product": lambda: sums(w),
        "sums by token, scatter over [B, L, K]": scatter,
    }
    out = {}
    for name, fn in variants.items():
        sec, _ = median_time_and_peak(fn, device, warmup=2, repeats=5)
        out[name] = 1e3 * sec
        log(f"{name} at {n:,} blocks, {queries} queries: {out[name]:.2f} ms")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python experiments/bench_hopfield_family.py",
                                 description=__doc__.splitlines()[0])  # fmt: skip
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the embedded corpus, a few queries (checks the code path)")
    ap.add_argument("--data", default="data/brown-sotu", help="prepared corpus folder (the gpu preset's)")
    ap.add_argument("--sizes", default=None, help="comma list of stored-set sizes (default: the gpu preset's ten)")
    ap.add_argument("--backends", default="empirical,dense_exp,modern", help=f"comma list of {', '.join(BACKENDS)}")
    ap.add_argument("--measures", default="recovery,basins", help="comma list of recovery, basins")
    ap.add_argument("--profile", action="store_true", help="profile one more recovery cell a backend, largest size")
    ap.add_argument("--kernels", action="store_true", help="first time the two operations against their old forms")
    ap.add_argument("--out", required=True, help="folder for bench_hopfield_family.txt and .json")
    a = ap.parse_args(argv)
    try:
        sizes = tuple(int(s) for s in a.sizes.split(",")) if a.sizes else ((4, 16) if a.tiny else GPU_SIZES)
    except ValueError:
        ap.error(f"--sizes: expected a comma list of ints, got {a.sizes!r}")
    if min(sizes) < 1:
        ap.error(f"--sizes: expected sizes >= 1, got {a.sizes!r}")
    backends = picked(ap, "--backends", a.backends, BACKENDS)
    measures = picked(ap, "--measures", a.measures, ("recovery", "basins"))
    device = torch.device(a.device)
    data = DataSpec("embedded", 16, 512) if a.tiny else DataSpec(a.data, 64, 8192)
    settings = TINY_SETTINGS if a.tiny else GPU_SETTINGS
    log, lines, command = command_log("bench_hopfield_family", argv)
    kernels = bench_kernels(data, max(sizes), device, log, queries=8 if a.tiny else 128) if a.kernels else {}
    record = bench_hopfield_family(data, sizes, backends, measures, settings, device, a.profile, log)
    total = sum(r["seconds"] for r in record["rows"] if r["applicable"])
    log(f"all cells: {total:.1f} s")
    record.update(command=command, device=device_label(device, platform.processor() or "cpu"),
                  torch=torch.__version__, total_s=total, kernels_ms=kernels)  # fmt: skip
    log(f"device: {record['device']}; torch {record['torch']}")
    write_record(a.out, "bench_hopfield_family", lines, record)
    return record


if __name__ == "__main__":
    main()
