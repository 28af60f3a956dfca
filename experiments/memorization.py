"""Memorization to generalization on real text: UDDMs and the Hopfield family side by side (Pham et al. 2026).

Trains a UDDM per (model size, training-set size), measures every model on its training blocks, held-out blocks
and random blocks, runs the empirical denoiser, the exponential dense memory, the modern Hopfield network and the
classical one (where it applies) on the same corrupted queries, then draws the figures and prints the summary.
Everything is cached per cell: run the same command again to finish an interrupted sweep.

Run: ``python experiments/memorization.py --preset tiny|gpu|large --out results/memorization [--data DIR]
[--device cuda]``. See ``amtheory.studies.memorization.presets`` for the presets and their time budget.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=("tiny", "gpu", "large"), default="tiny")
    p.add_argument("--out", default="results/memorization", help="results folder (tables, checkpoints)")
    p.add_argument("--data", default=None, help="prepared corpus folder (default: the preset's)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--steps", type=int, default=None, help="override the training steps of every model")
    p.add_argument("--sizes", default=None, help="override the training sizes, e.g. 32,512,8192")
    p.add_argument("--workers", default=None, help="None, 'auto' (one process per GPU) or an int")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--figures", default="paper_figures/out", help="folder for the figures ('' to skip them)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)

    from amtheory.studies.memorization import run_experiment, summarize
    from amtheory.studies.memorization.presets import preset

    if a.threads is not None:
        torch.set_num_threads(a.threads)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {device!r} asked for, but torch.cuda.is_available() is False")
    sizes = tuple(int(s) for s in a.sizes.split(",")) if a.sizes else None
    pr = preset(a.preset, data=a.data, steps=a.steps, sizes=sizes)
    workers = None if a.workers is None else (a.workers if a.workers == "auto" else int(a.workers))
    t0 = time.perf_counter()
    print(f"[memorization] preset {pr.name} on {device}: {len(pr.train_cells())} models, sizes {pr.sizes}", flush=True)
    run_experiment(pr, a.out, device=device, progress=not a.no_progress, workers=workers)
    if a.figures:
        from paper_figures.memorization import make_figures

        t1 = time.perf_counter()
        paths = make_figures(a.out, a.figures)
        print(f"[memorization] figures: {time.perf_counter() - t1:.1f} s, {len(paths)} files in {a.figures}")
    summary = summarize(a.out)
    Path(a.out, "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(_report(summary))
    print(f"[memorization] total {time.perf_counter() - t0:.1f} s; tables in {os.path.abspath(a.out)}")
    return summary


def _report(summary: dict) -> str:
    lines = ["recovery of corrupted tokens, train / test (UDDM):"]
    for ms, by_t in summary["recovery"].items():
        for t, by_n in by_t.items():
            cells = "  ".join(f"{n}: {v['train']:.2f}/{v['test']:.2f}" for n, v in by_n.items())
            meet = summary["meeting"][ms].get(t)
            meet_s = f"{meet:.0f}" if meet is not None else "not within the sweep"
            lines.append(f"  {ms} t={t}: {cells}   meet at {meet_s}")
    for ms, e in summary["entropy"].items():
        parts = []
        for k in ("smallest", "largest"):
            v = e[k]
            fmt = {s: ("nan" if v.get(s) is None else f"{v[s]:.3f}") for s in ("train", "test", "generated")}
            parts.append(f"{k} n={v['train_size']}: train {fmt['train']}, test {fmt['test']}, gen {fmt['generated']}")
        lines.append(f"  entropy {ms}: " + "; ".join(parts))
    for ms, pk in summary["perplexity_peak"].items():
        lines.append(f"  test perplexity bound {ms}: peak {pk['perplexity_bound']:.1f} at {pk['train_size']} blocks")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
