"""Host cost of lockstep measurement (:func:`amtheory.diffusion.lockstep.run_in_lockstep`): G members each run an
ancestral reverse chain of ``steps`` steps from t = 1 on a few blocks; reported per shared forward pass (round) and
per member and round. With a small network and few rows the time is the host's (threads, checks, kernel launches),
which bounds how many models one lockstep group can serve per second.

    python experiments/bench_lockstep.py --device cpu --out /tmp/out
    python experiments/bench_lockstep.py --device cuda --out /tmp/out
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.group_eval import GroupDenoiser
from amtheory.diffusion.group_train import initial_state
from amtheory.diffusion.lockstep import run_in_lockstep
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.sampler import ReverseDiffusion
from amtheory.studies.benchmarks.measure import command_line, device_label, write_record

__all__ = ["bench_lockstep", "main"]


def bench_lockstep(group_sizes, *, device: str, steps: int = 50, rows: int = 4) -> list[dict]:
    """Wall time per round and per member-round of ``steps``-step chains for each group size."""
    V, L = 16, 8
    cfg = DiTConfig(vocab_size=V, length=L, d_model=8, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0)
    stored = torch.randint(0, V, (rows, L), generator=torch.Generator().manual_seed(0)).to(device)

    def task(network, g: int):
        uddm = UniformDiffusionLM(network, vocab_size=V, batch_size=rows).store(stored)
        x = torch.randint(0, V, (rows, L), generator=torch.Generator().manual_seed(g)).to(device)
        chain = ReverseDiffusion(t_start=1.0, n_steps=steps, sampler="ancestral", final="posterior", grid="global")
        return chain.run(uddm, x, generator=torch.Generator().manual_seed(g)).states

    out = []
    for G in group_sizes:
        d = GroupDenoiser.from_states(cfg, [initial_state(cfg, s) for s in range(G)], device=device)
        run_in_lockstep(d, [lambda n, g=g: task(n, g) for g in range(G)])  # warm-up
        stats: dict = {}
        t0 = time.perf_counter()
        run_in_lockstep(d, [lambda n, g=g: task(n, g) for g in range(G)], stats=stats)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        out.append({"G": G, "rounds": stats["rounds"], "ms_per_round": 1e3 * wall / stats["rounds"],
                    "ms_per_member_round": 1e3 * wall / stats["rounds"] / G})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python experiments/bench_lockstep.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--group-sizes", default="1,4,16,30", help="comma list of group sizes")
    ap.add_argument("--steps", type=int, default=50, help="reverse steps per chain")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", required=True, help="folder for bench_lockstep.txt and .json")
    a = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in a.group_sizes.split(",")]
    except ValueError:
        ap.error(f"--group-sizes: expected a comma list of ints such as 1,4,16, got {a.group_sizes!r}")
    if not sizes or min(sizes) < 1:
        ap.error(f"--group-sizes: expected ints >= 1, got {a.group_sizes!r}")
    torch.set_num_threads(a.threads)
    rows = bench_lockstep(sizes, device=a.device, steps=a.steps)
    command = command_line("bench_lockstep", argv)
    where = device_label(torch.device(a.device), platform.processor() or platform.machine())
    lines = [f"# command: {command}", f"device: {a.device} ({where}); torch {torch.__version__}; {a.threads} thread(s)",
             "| G | rounds | ms per round | ms per member and round |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['G']} | {r['rounds']} | {r['ms_per_round']:.2f} | {r['ms_per_member_round']:.2f} |" for r in rows]
    print("\n".join(lines))
    write_record(a.out, "bench_lockstep", lines, {"command": command, "rows": rows})
    return rows
