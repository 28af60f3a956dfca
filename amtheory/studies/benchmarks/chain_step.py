"""One stochastic step of the reverse chain (``amtheory.diffusion.sampler.steps.chain_update``) at the shape the
memorization study's batched chains use, against the reference draw from the full float64 step distribution (an
inverse-CDF draw from :func:`~amtheory.diffusion.sampler.posterior_step_probs`). Reported per step: milliseconds,
the memory a step allocates on a GPU, and the share of positions whose draw needs a sum over the vocabulary.

    python experiments/bench_chain_step.py --device cpu --rows 32 --out /tmp/out
    python experiments/bench_chain_step.py --device cuda --rows 1920 --out /tmp/out   # 30 models x 64 blocks
"""

from __future__ import annotations

import argparse
import math
import platform

import torch

from amtheory.diffusion.sampler import posterior_step_probs
from amtheory.diffusion.sampler.steps import _step_parts, chain_update
from amtheory.diffusion.schedule import alpha
from amtheory.studies.benchmarks.measure import command_line, device_label, median_time_and_peak, write_record

__all__ = ["bench_chain_step", "main"]


def _full_distribution_draw(log_x, x, t_from, t_to, u):
    p = posterior_step_probs(log_x, x, alpha(t_from), alpha(t_to))
    cdf = p.cumsum(-1)
    idx = torch.searchsorted(cdf, (u.double() * cdf[..., -1]).unsqueeze(-1).contiguous(), right=True).squeeze(-1)
    return idx.clamp_max(p.shape[-1] - 1)


def _model_share(log_x, x, t_from, t_to) -> float:
    """The expected share of positions whose draw falls in the model's part of the step weight."""
    *_, w_z, w_c, w_x = _step_parts(log_x, x, alpha(t_from), alpha(t_to), None, None)
    return float((w_x / (w_z + w_c + w_x)).mean())


def _timed(fn, device: str, repeats: int) -> tuple[float, float | None]:
    """Median milliseconds of ``fn()`` over ``repeats`` runs after one warm-up, and the GiB one call allocates on a
    GPU above what was allocated before it (None off CUDA)."""
    seconds, peak = median_time_and_peak(fn, torch.device(device), warmup=1, repeats=repeats)
    return 1e3 * seconds, None if math.isnan(peak) else peak / 2**30


def bench_chain_step(*, device: str, rows: int, length: int = 64, vocab: int = 8192, n_steps: int = 50,
                     starts=(1.0, 0.5, 0.1), repeats: int = 5) -> list[dict]:  # fmt: skip
    """Per start time t (a step from t to t - 1/n_steps of a global grid): ms per step of both draws, the GPU
    memory each allocates, and the share of positions drawn from the model's part of the step distribution."""
    g = torch.Generator().manual_seed(0)
    logits = (4.0 * torch.randn(rows, length, vocab, generator=g)).to(device)
    log_x = torch.log_softmax(logits, -1)
    del logits
    x = torch.randint(0, vocab, (rows, length), generator=g).to(device)
    u = torch.rand(rows, length, generator=g).to(device)
    out = []
    for t in starts:
        t_from = torch.full((rows,), t, dtype=torch.float64, device=device)
        t_to = t_from - 1.0 / n_steps

        def step(tf=t_from, tt=t_to):
            return chain_update(log_x, x, tf, tt, final="argmax", u=u, source="bench")

        def full(tf=t_from, tt=t_to):
            return _full_distribution_draw(log_x, x, tf, tt, u)

        ms, peak = _timed(step, device, repeats)
        ms_full, peak_full = _timed(full, device, repeats)
        out.append({"t_from": t, "t_to": t - 1.0 / n_steps, "model_share": _model_share(log_x, x, t_from, t_to),
                    "ms": ms, "ms_full_distribution": ms_full, "speedup": ms_full / ms, "peak_gib": peak,
                    "peak_gib_full_distribution": peak_full})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python experiments/bench_chain_step.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", type=int, default=32, help="sequences a step (30 models in a batched chain: 1920)")
    ap.add_argument("--length", type=int, default=64, help="tokens per sequence")
    ap.add_argument("--vocab", type=int, default=8192, help="vocabulary size")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per case (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: torch's own)")
    ap.add_argument("--out", required=True, help="folder for bench_chain_step.txt and .json")
    a = ap.parse_args(argv)
    for name in ("rows", "length", "vocab", "repeats"):
        if getattr(a, name) < 1:
            ap.error(f"--{name}: expected an int >= 1, got {getattr(a, name)}")
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    res = bench_chain_step(device=a.device, rows=a.rows, length=a.length, vocab=a.vocab, repeats=a.repeats)
    command = command_line("bench_chain_step", argv)
    where = device_label(torch.device(a.device), platform.processor() or platform.machine())
    lines = [f"# command: {command}",
             f"device: {a.device} ({where}); torch {torch.__version__}; {torch.get_num_threads()} thread(s); "
             f"{a.rows} x {a.length} tokens, V = {a.vocab}",
             "| step | share drawn from the model | ms | ms, full distribution | speed-up | peak GiB | "
             "peak GiB, full distribution |", "|---|---|---|---|---|---|---|"]  # fmt: skip

    def gib(v):
        return "-" if v is None else f"{v:.2f}"

    lines += [f"| {r['t_from']:.2f} -> {r['t_to']:.2f} | {r['model_share']:.3f} | {r['ms']:.1f} | "
              f"{r['ms_full_distribution']:.1f} | {r['speedup']:.1f}x | {gib(r['peak_gib'])} | "
              f"{gib(r['peak_gib_full_distribution'])} |" for r in res]  # fmt: skip
    print("\n".join(lines))
    write_record(a.out, "bench_chain_step", lines, {"command": command, "rows": res})
    return res
