"""Measuring the memorization study's trained models in groups: the models of one shape (one architecture on one
data spec; any training size, seed and step budget) are measured together. The reverse chains of the recovery and
fixed-point measurements, the recovery queries' entropies, the samples of "generation" and their entropies, the
test NELBO and the recorded trajectory of "trajectory" (``BATCHED_MEASURES``) run for all members at once
(:func:`~amtheory.diffusion.group_eval.group_reverse_chain`: network and chain updates batched, one generator per
member); every other measurement of :mod:`amtheory.studies.memorization.evaluation`, and the tables of all of
them, run in lockstep
(:func:`amtheory.diffusion.lockstep.run_in_lockstep`: the code written for one model, its network calls shared).
Each member's tables are the ones :func:`~amtheory.studies.memorization.evaluation.evaluate_cell` writes for it
alone (same generators, same draws in the same order; its logits up to float rounding of the batched products).
A group runs one measurement at a time, its batched work and then its tables, written cell by cell as each
finishes, so a run cut short keeps the measurements it finished (a group of 30 takes minutes on a GPU)."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from amtheory.core._checks import check_int
from amtheory.studies.memorization.cells import BATCHED_MEASURES, MEASURES, EvalCell, EvalSettings, TrainCell
from amtheory.studies.memorization.training import checkpoint_dir

__all__ = ["COMPILED_MEASURES", "evaluate_models_in_groups"]

#: The batched work that a compiled preset runs with compiled blocks: the recovery chains and their entropies, whose
#: forward passes take one shape ``[members, batch_size // 2, L]`` where every member has ``n_eval`` queries a split
#: (``fill_train``): one static graph. The NELBO's rows (each block at ``nelbo_ts`` times) come in as many shapes as
#: training sizes below ``n_eval`` (a graph each, seconds to compile, for work of a few seconds).
COMPILED_MEASURES = ("recovery",)


def _pending(tc: TrainCell, settings: EvalSettings, out: Path, measures: Sequence[str]) -> list[EvalCell]:
    from amtheory.core.sweep import pending_cells

    return [c for m in MEASURES if m in measures for c in pending_cells([EvalCell(tc, m, settings)], out / m)]


def _batched_chains(
    denoiser, part: list[tuple[TrainCell, list[EvalCell]]], settings: EvalSettings, seconds: dict[str, float],
    block_fn=None,
) -> list[dict]:  # fmt: skip
    """The batched work of the pending cells of ``BATCHED_MEASURES`` of the group's members, run for all of them at
    once with one generator per member, seeded as the sweep runner seeds that member's cell and drawn in the order
    the cell's own measurement draws, so that their host work is shared too: the reverse chains of "recovery" and
    "fixed_points" (:func:`~amtheory.diffusion.group_eval.group_reverse_chain`), the recovery queries' per-token
    entropies (keyed ``("entropy", split, t)``), the samples of "generation" (``"generated"``) with the entropies
    of every split (``("entropy", split)``), the test NELBO of "nelbo" (by split,
    :func:`~amtheory.diffusion.group_eval.group_stratified_nelbo`) and the per-sequence rows of "trajectory"
    (:func:`~amtheory.diffusion.trajectory.group_prediction_trajectory`). Members whose evaluation blocks differ in
    number are run in subgroups; those of ``COMPILED_MEASURES`` with the blocks ``block_fn`` (None: eager). Returns
    per member ``{measure: outcomes}`` for
    :func:`~amtheory.studies.memorization.evaluation.evaluate_cell`; the wall time of each measurement's batched
    work goes to ``seconds["batched <measure>"]``."""
    import torch

    from amtheory.core.sweep import derive_seed
    from amtheory.diffusion.group_eval import (
        GroupDenoiser,
        group_fixed_points,
        group_generate,
        group_reverse_chain,
        group_stratified_nelbo,
    )
    from amtheory.diffusion.trajectory import group_prediction_trajectory
    from amtheory.studies.memorization.data import eval_sequences
    from amtheory.studies.memorization.evaluation import corrupted, recovery_chain
    from amtheory.studies.memorization.trajectory import frame_positions

    s, V, dev = settings, denoiser.vocab_size, denoiser.device
    out: list[dict] = [{} for _ in part]
    subsets: dict[tuple[tuple[int, ...], bool], GroupDenoiser] = {}

    def sub(members: tuple[int, ...], compiled: bool = False) -> GroupDenoiser:
        if (members, compiled) not in subsets:
            subsets[members, compiled] = denoiser.subgroup(members, batch_size=max(1, s.batch_size // 2),
                                                           block_fn=block_fn if compiled else None)  # fmt: skip
        return subsets[members, compiled]

    for measure in BATCHED_MEASURES:
        todo = [i for i, (_, cells) in enumerate(part) if any(c.measure == measure for c in cells)]
        if len(todo) < 2:
            continue
        t0 = time.perf_counter()
        gens = {i: torch.Generator().manual_seed(derive_seed(0, EvalCell(part[i][0], measure, s))) for i in todo}
        if measure == "trajectory":  # the samples' own trajectory: no evaluation blocks, every member at once
            d = sub(tuple(todo))
            tables = group_prediction_trajectory(
                d, s.n_generate, n_steps=s.n_steps, t_end=s.entropy_t, positions=frame_positions(d.config.length),
                generators=[gens[i] for i in todo],
            )  # fmt: skip
            for i, table in zip(todo, tables):
                out[i][measure] = table
            seconds[f"batched {measure}"] = time.perf_counter() - t0
            continue
        fill = s.fill_train and measure == "recovery"
        sets = {i: eval_sequences(part[i][0].data, part[i][0].n_train, s.n_eval, fill_train=fill) for i in todo}
        for i in todo:
            out[i][measure] = {}
        # The NELBO and the generation's entropies take train, then test blocks, as their cells do.
        for split in ("train", "test") if measure in ("nelbo", "generation") else sets[todo[0]]:
            by_size: dict[int, list[int]] = {}
            for i in todo:
                by_size.setdefault(int(sets[i][split].shape[0]), []).append(i)
            for members in by_size.values():
                d = sub(tuple(members), measure in COMPILED_MEASURES)
                if measure == "generation":  # the samples first (the cell's draws), then every split's entropy
                    if split == "train":
                        samples = group_generate(d, s.n_generate, n_steps=s.n_steps,
                                                 generators=[gens[i] for i in members])  # fmt: skip
                        h = d.entropy(samples, s.entropy_t).cpu()
                        for j, i in enumerate(members):
                            out[i][measure]["generated"] = samples[j].cpu()
                            out[i][measure][("entropy", "generated")] = h[j]
                    x = torch.stack([sets[i][split] for i in members]).to(dev)
                    h = d.entropy(x, s.entropy_t).cpu()
                    for j, i in enumerate(members):
                        out[i][measure][("entropy", split)] = h[j]
                    continue
                if measure == "nelbo":
                    x = torch.stack([sets[i][split] for i in members]).to(dev)
                    nel = group_stratified_nelbo(d, x, s.nelbo_ts, [gens[i] for i in members])
                    for j, i in enumerate(members):
                        out[i][measure][split] = nel[j]
                    continue
                if measure == "fixed_points":
                    x = torch.stack([sets[i][split] for i in members]).to(dev)
                    flags = group_fixed_points(d, x, n_steps=s.n_steps).cpu()
                    for j, i in enumerate(members):
                        out[i][measure][split] = flags[j]
                    continue
                for t in s.ts:
                    data = part[members[0]][0].data
                    q = torch.stack([corrupted(data, split, t, sets[i][split], V).states for i in members]).to(dev)
                    # Half the single chain's rows a pass (G models' log-probabilities at once): a chain's result
                    # does not depend on its chunking (one draw per step for all rows).
                    dyn = dataclasses.replace(recovery_chain(s, t), batch_size=max(1, s.batch_size // 2))
                    ends = group_reverse_chain(d, dyn, q, generators=[gens[i] for i in members])
                    # The recovery table's per-token entropy of the prediction on the queries, for all members in
                    # the same batched passes (it draws nothing), instead of one lockstep pass per member's batch.
                    h = d.entropy(q, float(t)).cpu()
                    for j, i in enumerate(members):
                        out[i][measure][(split, float(t))] = ends[j].cpu()
                        out[i][measure][("entropy", split, float(t))] = h[j]
        seconds[f"batched {measure}"] = time.perf_counter() - t0
    return out


def _member_task(cells: list[EvalCell], meta: dict, out: Path, device: str, chains: dict):
    """The work of one member: its pending cells, in ``MEASURES`` order, each written by the sweep runner."""
    from amtheory.core.sweep import run_cell
    from amtheory.diffusion.backend import UniformDiffusionLM
    from amtheory.studies.memorization.data import load_data
    from amtheory.studies.memorization.evaluation import evaluate_cell

    def task(network) -> int:
        if not cells:  # nothing of this measurement left for this member
            return 0
        tc = cells[0].train
        corpus = load_data(tc.data)
        uddm = UniformDiffusionLM(network, vocab_size=corpus.vocab_size, use_ema=True,
                                  batch_size=cells[0].settings.batch_size)  # fmt: skip
        uddm.record_checkpoint(meta, checkpoint_dir(out, tc)).store(corpus.blocks("train", tc.n_train, tc.data.length))
        for cell in cells:
            fn = functools.partial(evaluate_cell, root=str(out), uddm=uddm, chains=chains.get(cell.measure))
            run_cell(cell, fn, out / cell.measure, device=device)
        return len(cells)

    return task


def evaluate_models_in_groups(
    train_cells: list[TrainCell], settings: EvalSettings, out_dir: str | Path, device: str, *, group_size: int,
    measures: Sequence[str] | Callable[[TrainCell], Sequence[str]] = MEASURES, compile: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Write every pending measurement (``MEASURES``) of the trained models ``train_cells`` into ``out_dir``, the
    models of one shape in groups of at most ``group_size`` measured in lockstep (see the module docstring); only
    those of ``measures`` when given: names, or a function from a model to its names (``Preset.measures_of``).
    ``compile``: the blocks of the batched work of ``COMPILED_MEASURES`` under ``torch.compile`` with static shapes
    (:func:`~amtheory.diffusion.group_model.compiled_block`; one graph, compiled at its first forward pass). On an
    H100 that made gpu-quick's recovery chain step 1.73x faster (26.6 to 15.3 ms), gpu-small's 1.25x and
    gpu-micro's no faster, while dynamic shapes gained nothing, their generated kernels slower
    (``benchmarks/h100_bench_group_chain.txt``). The rest stays eager: its subgroups, batches and lockstep passes
    come in many shapes, each a graph of its own.
    Returns ``models``, ``cells``, ``rounds`` (the shared forward passes) and ``seconds``: the wall time of each
    stage summed over the groups (``load``; ``batched <measure>`` for the work batched over the members; each
    measurement's lockstep phase by its name). Each group prints a line with the same split."""
    import torch

    from amtheory.diffusion.checkpoint import load_model
    from amtheory.diffusion.group_eval import GroupDenoiser
    from amtheory.diffusion.group_model import compiled_block
    from amtheory.diffusion.lockstep import run_in_lockstep

    check_int("group_size", group_size, minimum=1)
    if not isinstance(compile, bool):
        raise TypeError(f"compile: expected a bool, got {type(compile).__name__}")

    def names(tc: TrainCell | None) -> Sequence[str]:
        got = measures(tc) if callable(measures) else measures
        if isinstance(got, str) or not isinstance(got, Sequence) or any(m not in MEASURES for m in got):
            raise ValueError(f"measures: expected names from {MEASURES}, got {got!r}")
        return got

    if not callable(measures):
        names(None)

    if not isinstance(settings, EvalSettings):
        raise TypeError(f"settings: expected an EvalSettings, got {type(settings).__name__}")
    out = Path(out_dir)
    shapes: dict[Any, list[tuple[TrainCell, list[EvalCell]]]] = {}
    for tc in train_cells:
        if not isinstance(tc, TrainCell):
            raise TypeError(f"train_cells: expected TrainCell items, got {type(tc).__name__}")
        todo = _pending(tc, settings, out, names(tc))
        if todo:
            shapes.setdefault((tc.arch, tc.data), []).append((tc, todo))
    for m in MEASURES:
        (out / m).mkdir(parents=True, exist_ok=True)
    amp = torch.bfloat16 if str(device).startswith("cuda") else None
    block_fn = compiled_block(dynamic=False) if compile else None
    done: dict[str, Any] = {"models": 0, "cells": 0, "rounds": 0, "seconds": {}}
    for members in shapes.values():
        for i in range(0, len(members), group_size):
            part = members[i : i + group_size]
            t0 = time.perf_counter()
            loaded = [load_model(checkpoint_dir(out, tc), ema=True, device="cpu") for tc, _ in part]
            denoiser = GroupDenoiser.from_states(
                loaded[0][1], [m.state_dict() for m, _, _ in loaded], device=device, autocast_dtype=amp
            )
            seconds = {"load": time.perf_counter() - t0}
            passes: dict[str, int] = {}
            for m in MEASURES:  # one measurement at a time, so that a cut run keeps those it finished
                part_m = [(tc, [c for c in cells if c.measure == m]) for tc, cells in part]
                if not any(cells for _, cells in part_m):
                    continue
                chains = _batched_chains(denoiser, part_m, settings, seconds, block_fn)
                tasks = [_member_task(cells, meta, out, device, ch) for (_, cells), (_, _, meta), ch in
                         zip(part_m, loaded, chains)]  # fmt: skip
                stats: dict = {}
                t1 = time.perf_counter()
                done["cells"] += sum(run_in_lockstep(denoiser, tasks, stats=stats))
                seconds[m], passes[m] = time.perf_counter() - t1, stats["rounds"]
                done["rounds"] += stats["rounds"]
            done["models"] += len(part)
            for k, v in seconds.items():
                done["seconds"][k] = done["seconds"].get(k, 0.0) + v
            del denoiser
            if str(device).startswith("cuda"):
                # Hand the group's cached blocks back to the card: the preset's parts share it side by side, and
                # one ran out of memory beside 54 GiB the other two held (h100_memorization_gpu.log at 3f5d0fe).
                torch.cuda.empty_cache()
            # One line per group, so that a long measurement stage shows how far it got, and where its time went.
            split = ", ".join(f"{k} {v:.1f}" + (f" ({passes[k]} passes)" if k in passes else "")
                              for k, v in seconds.items())  # fmt: skip
            print(f"[memorization] measured {len(part)} {part[0][0].arch.name} models in one group: "
                  f"{time.perf_counter() - t0:.1f} s, {sum(len(c) for _, c in part)} cells, {sum(passes.values())} "
                  f"lockstep passes (s: {split})", flush=True)  # fmt: skip
    return done
