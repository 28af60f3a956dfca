"""The measurements of the memorization experiment (``amtheory.studies.memorization``), one table each.

Every table has one row per (split, sequence, ...) with the columns ``backend``, ``model_size``, ``train_size``
and ``split`` ("train": the first ``n_eval`` training blocks; "test": held-out blocks; "random": uniform blocks).
Corruptions come from generators named by (data, split, t, number of sequences) only, so the UDDM of every size and
every Hopfield-family memory see the very same corrupted queries; the reverse sampler's own draws come from the
cell's generator.

* ``recovery`` — forward-kernel corruption at ``t`` (each token replaced with probability ``1 - alpha_t`` by a
  uniform draw), then retrieval: for the UDDM and the empirical denoiser ancestral reverse sampling from ``t`` on
  the global grid (``n_steps``; ``empirical_steps``) with the posterior final step
  ``argmax_v x_theta(v) (V alpha_t 1(v = x_t) + 1 - alpha_t)``; for the dense and modern memories synchronous
  deterministic updates to a fixed point. Columns ``recovered`` (share of changed tokens restored), ``broken``
  (share of clean tokens that end wrong), ``exact``, ``n_changed``, ``fraction_changed`` and the token ids ``x0``,
  ``xq``, ``xf`` (Pham et al. 2026's recovery rate, broken rate and exact match), and ``block`` (the query's block,
  which rates cluster by: its row, or with ``fill_train`` the training block a filled split's row repeats). The
  corruption is the forward kernel over every position, special tokens included, because that is the noise the
  reverse chain from ``t`` undoes (the models are trained with it); the rates count ordinary tokens only
  (``amtheory.studies.memorization.data.ordinary_positions``): the ``[CLS]`` / ``[SEP]`` frame of a block is
  restored by any model and would put a floor of about 2 / L under every rate, random blocks included. The UDDM's
  table adds ``entropy_recovered`` and ``entropy_unrecovered``: the mean entropy of ``p_theta(x_0 | x_t = query)``
  at the corruption's ``t`` over the changed ordinary tokens the chain restored, and over those it did not.
* ``basins`` — ``amtheory.core.basins.basin_radius`` per block of the train and test splits: the largest number of
  changed tokens (exact-count corruption anywhere in the block) from which the same block comes back with
  probability at least ``1 - basin_delta``. The UDDM's (and the empirical denoiser's) dynamics for it is the
  argmax reverse chain on a local grid of ``basin_steps`` steps with the posterior final step, started for a
  query with ``r`` changed tokens at the time whose forward kernel changes ``r`` tokens on average,
  ``t(r) = min(1, (r / L) V / ((1 - eps)(V - 1)))`` with ``r = 0`` taken as 1
  (``amtheory.diffusion.schedule.time_for_changed_fraction``; docs/theory.md), unless ``basin_t_start`` fixes one
  start for every radius. Argmax makes the map deterministic, so the success probability reflects the corruption
  alone; a local grid keeps the cost to ``basin_steps`` forward passes per query. The dense and modern memories use
  their synchronous deterministic update. Radii are searched up to half the block (``max_radius = L // 2``, for
  cost); a radius there is censored. Column ``t_start``: "matched" or the fixed start.
* ``fixed_points`` — ``fixed_point_share``: argmax reverse dynamics from ``t = 1`` on the ``n_steps`` grid,
  started at the clean block; ``fixed`` is True when it comes back unchanged.
* ``generation`` — ``n_generate`` samples from uniform noise (ancestral, ``n_steps`` grid, argmax last step);
  ``entropy``: the per-token conditional entropy of ``p_theta(x_0 | x_t = x)`` at ``t = entropy_t`` averaged over
  the block, on train, test and generated blocks; for generated blocks ``longest_span`` (longest token span shared
  with any training block, ``amtheory.studies.memorization.longest_shared_span``) and ``verbatim`` (a whole
  training block reproduced), and the tokens.
* ``nelbo`` — per block of the train and test splits, the continuous-time NELBO per token (nats) averaged over
  ``nelbo_ts`` stratified times ``t_k = t_min + (1 - t_min)(u + k)/n`` (one uniform ``u`` per block); it
  estimates ``E_{t ~ U[t_min, 1]}`` of the training loss, and ``exp(nelbo)`` bounds the perplexity (in the
  compacted vocabulary: not comparable with full-vocabulary perplexities).
* ``kl`` — ``kl_from_memorization``: per-token ``KL(p_empirical || p_theta)`` against the empirical denoiser
  storing the same training blocks, on shared corrupted inputs at ``kl_ts``.
* ``trajectory`` — ``n_generate`` sequences from uniform noise as in ``generation``, with the entropy and the top-two
  gap of ``p_theta(x_0 | x_t)`` at every reverse step and on the samples at ``entropy_t``
  (``amtheory.studies.memorization.trajectory``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from amtheory.core.basins import basin_radius
from amtheory.core.dynamics import Dynamics, Sync, retrieve
from amtheory.core.metrics import retrieval_records
from amtheory.diffusion.sampler import ReverseDiffusion, corrupt_forward, fixed_point_share, generate
from amtheory.diffusion.schedule import time_for_changed_fraction
from amtheory.studies.memorization.analysis import longest_shared_span
from amtheory.studies.memorization.cells import BATCHED_MEASURES, DataSpec, EvalCell, EvalSettings, HopfieldCell
from amtheory.studies.memorization.data import (
    data_label,
    eval_sequences,
    load_data,
    named_generator,
    ordinary_positions,
)
from amtheory.studies.memorization.token_entropy import entropies_from_chains, entropy_by_outcome
from amtheory.studies.memorization.training import checkpoint_dir
from amtheory.studies.memorization.trajectory import uddm_trajectory

__all__ = ["basin_start_times", "corrupted", "evaluate_cell", "hopfield_applicability", "load_uddm", "recovery_chain"]

_BASIN_SPLITS = ("train", "test")


# ------------------------------------------------------------------------------------------------------------ Memories
def load_uddm(root: str | Path, cell: EvalCell, device: str):
    """The trained UDDM of ``cell.train`` (EMA weights) holding its training blocks as reference set."""
    from amtheory.diffusion.backend import UniformDiffusionLM

    path = checkpoint_dir(root, cell.train)
    amp = torch.bfloat16 if str(device).startswith("cuda") else None
    uddm = UniformDiffusionLM.from_checkpoint(
        path, device=device, batch_size=cell.settings.batch_size, autocast_dtype=amp
    )
    corpus = load_data(cell.train.data)
    uddm.store(corpus.blocks("train", cell.train.n_train, cell.train.data.length))
    return uddm


def hopfield_applicability(memory: str, data: DataSpec, n_stored: int, settings: EvalSettings) -> tuple[bool, str]:
    """Whether ``memory`` can store ``n_stored`` blocks of ``data`` within the settings' limits, and why not."""
    V = load_data(data).vocab_size
    L = data.length
    if memory == "classical" and L * V > settings.classical_max_features:
        return False, (
            f"feature dimension L*V = {L * V} > classical_max_features = {settings.classical_max_features}: "
            f"the weight form needs (L V)^2 = {(L * V) ** 2:.3g} couplings, the pattern form K L V features"
        )
    if memory == "modern" and 4 * n_stored * L * V > settings.modern_max_bytes:
        return False, (
            f"one-hot pattern matrix [K, L V] needs 4 K L V = {4 * n_stored * L * V / 2**30:.1f} GiB "
            f"> modern_max_bytes = {settings.modern_max_bytes / 2**30:.1f} GiB"
        )
    return True, ""


def _hopfield_memory(cell: HopfieldCell, device: str):
    from amtheory.backends.classical import ClassicalHopfield
    from amtheory.backends.dense import DenseAM
    from amtheory.backends.modern import ModernHopfield
    from amtheory.diffusion.empirical import EmpiricalDenoiser

    s = cell.settings
    corpus = load_data(cell.data)
    stored = corpus.blocks("train", cell.n_stored, cell.data.length).to(device)
    mem = {
        # Scatter chunks of 4,096 patterns: a few launches per reverse step where the set is below one per token.
        "empirical": lambda: EmpiricalDenoiser(batch_size=min(s.batch_size, 128), chunk_size=4096),
        "dense_exp": lambda: DenseAM("exp", beta=s.dense_beta),
        "modern": lambda: ModernHopfield(beta=s.modern_beta),
        "classical": lambda: ClassicalHopfield("hebbian"),
    }[cell.memory]()
    return mem.store(stored, vocab_size=corpus.vocab_size)


# ------------------------------------------------------------------------------------------------------- Shared pieces
def corrupted(data: DataSpec, split: str, t: float, x: torch.Tensor, V: int):
    """The forward-kernel corruption of ``x`` at ``t``, the same for every memory measured on these blocks."""
    g = named_generator("corrupt", data_label(data), split, repr(float(t)), x.shape[0])
    return corrupt_forward(x, float(t), V, g)


def _run(memory, xq: torch.Tensor, dyn, max_steps: int, generator, chunk: int | None) -> torch.Tensor:
    if chunk is None:
        return retrieve(memory, xq, update=dyn, max_steps=max_steps, generator=generator).states
    parts = [
        retrieve(memory, xq[i : i + chunk], update=dyn, max_steps=max_steps, generator=generator).states
        for i in range(0, xq.shape[0], chunk)
    ]
    return torch.cat(parts)


def _recovery(
    memory, data, sets, settings, generator, device, dyn_for_t, max_steps, chunk, finals=None, *, n_train: int
) -> pd.DataFrame:
    """The recovery table; ``finals``: the chains' end states by (split, t) where the caller ran them. ``block``
    names each query's block: its row, except in a training split filled from ``n_train`` blocks, whose row ``i``
    queries block ``i mod n_train``."""
    V = memory.vocab_size_
    frames = []
    for split, x in sets.items():
        for t in settings.ts:
            c = corrupted(data, split, t, x, V)
            if finals is not None:
                xf = finals[(split, float(t))].cpu()
            else:
                xf = _run(memory, c.states.to(device), dyn_for_t(t), max_steps, generator, chunk).cpu()
            rec = retrieval_records(x, c.states, xf, vocab_size=V, counted=ordinary_positions(data, x))
            df = pd.DataFrame({k: v.cpu().numpy() for k, v in rec.items()})
            df.insert(0, "sequence", np.arange(x.shape[0]))
            rows = np.arange(x.shape[0])
            df.insert(1, "block", rows % min(n_train, x.shape[0]) if split == "train" else rows)
            df.insert(0, "t", float(t))
            df.insert(0, "split", split)
            df["x0"] = list(x.numpy())
            df["xq"] = list(c.states.numpy())
            df["xf"] = list(xf.numpy())
            frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["applicable"] = True
    out["reason"] = ""
    return out


def _basins(memory, sets, settings, generator, dyn, max_steps, chunk) -> pd.DataFrame:
    frames = []
    for split in _BASIN_SPLITS:
        x = sets[split][: settings.n_basin].to(memory.device)
        per_radius = dyn if callable(dyn) and not isinstance(dyn, Dynamics) else None
        res = basin_radius(
            memory, x, delta=settings.basin_delta, n_trials=settings.basin_trials,
            update="sync" if per_radius else dyn, dynamics_for_radius=per_radius, max_steps=max_steps,
            generator=generator, n_boot=200, batch_size=chunk, max_radius=x.shape[1] // 2,
        )  # fmt: skip
        df = res.to_frame()
        if per_radius is not None:
            df["t_start"] = "matched"
        df.insert(0, "split", split)
        df["median_radius"] = res.median
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["applicable"] = True
    out["reason"] = ""
    return out


def basin_start_times(radii: torch.Tensor, length: int, vocab_size: int) -> tuple[float, ...]:
    """The reverse chain's start per query of the basin radius: the time matched to ``max(r, 1)`` changed tokens
    out of ``length`` (see the module docstring)."""
    frac = radii.detach().cpu().double().clamp(min=1.0) / float(length)
    return tuple(float(v) for v in time_for_changed_fraction(frac.clamp(max=1.0), vocab_size))


def _basin_dynamics(settings: EvalSettings, length: int, vocab_size: int):
    """The basin radius's reverse chain: one ``ReverseDiffusion`` from ``basin_t_start``, or (None) a function of
    the queries' radii that starts each query at its matched time."""

    def chain(t_start) -> ReverseDiffusion:
        return ReverseDiffusion(
            t_start=t_start, n_steps=settings.basin_steps, sampler="argmax", final="posterior", grid="local",
            batch_size=settings.batch_size,
        )  # fmt: skip

    if settings.basin_t_start is not None:
        return chain(settings.basin_t_start)
    return lambda radii: chain(basin_start_times(radii, length, vocab_size))


# --------------------------------------------------------------------------------------------------- UDDM measurements
def recovery_chain(settings: EvalSettings, t: float) -> ReverseDiffusion:
    """The UDDM's recovery chain from a corruption at ``t``: ancestral steps on the global grid, posterior final
    step."""
    return ReverseDiffusion(t_start=t, n_steps=settings.n_steps, sampler="ancestral", final="posterior",
                            grid="global", batch_size=settings.batch_size)  # fmt: skip


def _uddm_recovery(uddm, cell, sets, generator, device, finals=None):
    s = cell.settings
    df = _recovery(uddm, cell.train.data, sets, s, generator, device, lambda t: recovery_chain(s, t), 0, None, finals,
                   n_train=cell.train.n_train)  # fmt: skip
    entropies = entropies_from_chains(finals, list(sets), s.ts)
    return entropy_by_outcome(uddm, df, cell.train.data, device, max(1, s.batch_size // 2), entropies=entropies)


def _uddm_fixed_points(uddm, cell, sets, generator, device, fixed_by_split=None):
    frames = []
    for split, x in sets.items():
        if fixed_by_split is not None:
            fixed = fixed_by_split[split].cpu().numpy()
        else:
            fixed = fixed_point_share(uddm, x.to(device), n_steps=cell.settings.n_steps).cpu().numpy()
        frames.append(pd.DataFrame({"split": split, "sequence": np.arange(x.shape[0]), "fixed": fixed}))
    return pd.concat(frames, ignore_index=True)


def _uddm_generation(uddm, cell, sets, generator, device, batched=None):
    """``batched``: a group's samples and entropies by split where it ran them for its members at once."""
    s = cell.settings
    gen = batched["generated"] if batched else generate(uddm, s.n_generate, n_steps=s.n_steps, generator=generator)
    gen = gen.cpu()
    span, L, frames = longest_shared_span(gen, uddm.patterns_.cpu()), gen.shape[1], []
    for split, x in (("train", sets["train"]), ("test", sets["test"]), ("generated", gen)):
        xd, step = x.to(device), max(1, s.batch_size // 2)
        h = batched[("entropy", split)] if batched else torch.cat(
            [uddm.entropy(xd[i : i + step], t=s.entropy_t) for i in range(0, xd.shape[0], step)]).cpu()  # fmt: skip
        df = pd.DataFrame(
            {
                "split": split,
                "sequence": np.arange(x.shape[0]),
                "entropy": h.double().mean(-1).numpy(),
                "entropy_median": h.double().median(-1).values.numpy(),
            }
        )
        if split == "generated":
            df["longest_span"] = span
            df["verbatim"] = span >= L
            df["tokens"] = list(x.numpy())
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _uddm_nelbo(uddm, cell, sets, generator, device, by_split=None):
    from amtheory.diffusion.group_eval import stratified_nelbo_draws
    from amtheory.diffusion.loss import nelbo_per_token
    from amtheory.diffusion.schedule import alpha, alpha_prime

    s = cell.settings
    k = s.nelbo_ts
    V = uddm.vocab_size_
    frames = []
    for split in ("train", "test"):
        x = sets[split]
        B = x.shape[0]
        if by_split is not None:  # a group's members measured at once (group_stratified_nelbo, the same draws)
            frames.append(pd.DataFrame({"split": split, "sequence": np.arange(B), "nelbo": by_split[split].numpy()}))
            continue
        x0, xt, t = stratified_nelbo_draws(x, k, V, generator)  # the draws of group_stratified_nelbo's members
        per_row = []
        step = max(1, s.batch_size)
        for i in range(0, x0.shape[0], step):
            tt = t[i : i + step].to(device)
            lp = uddm.log_posterior(xt[i : i + step].to(device), tt)
            loss = nelbo_per_token(
                lp.float(), x0[i : i + step].to(device), xt[i : i + step].to(device), alpha(tt).float(),
                alpha_prime(tt).float(),
            )  # fmt: skip
            per_row.append(loss.double().mean(-1).cpu())
        nel = torch.cat(per_row).view(B, k).mean(-1).numpy()
        frames.append(pd.DataFrame({"split": split, "sequence": np.arange(B), "nelbo": nel}))
    return pd.concat(frames, ignore_index=True)


def _uddm_kl(uddm, cell, sets, generator, device):
    from amtheory.diffusion.distance import kl_from_memorization
    from amtheory.diffusion.empirical import EmpiricalDenoiser

    s = cell.settings
    emp = EmpiricalDenoiser().store(uddm.patterns_, vocab_size=uddm.vocab_size_)
    frames = []
    for split in ("train", "test"):
        df = kl_from_memorization(
            uddm, emp, sets[split].to(emp.device), ts=s.kl_ts, generator=generator, batch_size=min(s.batch_size, 128)
        )
        df.insert(0, "split", split)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


_UDDM_MEASURES = {
    "recovery": _uddm_recovery,
    "fixed_points": _uddm_fixed_points,
    "generation": _uddm_generation,
    "nelbo": _uddm_nelbo,
    "kl": _uddm_kl,
    "trajectory": uddm_trajectory,
}


# --------------------------------------------------------------------------------------------------- The cell function
def evaluate_cell(
    cell: EvalCell | HopfieldCell, generator: torch.Generator, device: str, *, root: str, uddm=None, chains=None
) -> pd.DataFrame:
    """Run one measurement cell (a ``run_sweep`` cell function; ``root`` is the results folder holding the
    checkpoints). Returns the tidy table described in the module docstring. ``uddm``: the trained model of an
    ``EvalCell``, holding its training blocks, when the caller has it (a member of a lockstep group,
    ``amtheory.studies.memorization.group_evaluation``); None loads it from its checkpoint. ``chains``: the
    outcomes of a "recovery" or "fixed_points" cell's chains where the caller ran them with this cell's draws."""
    if isinstance(cell, EvalCell):
        s = cell.settings
        if uddm is None:
            uddm = load_uddm(root, cell, device)
        sets = eval_sequences(cell.train.data, cell.train.n_train, s.n_eval,
                              fill_train=s.fill_train and cell.measure == "recovery")  # fmt: skip
        if cell.measure == "basins":
            dyn = _basin_dynamics(s, cell.train.data.length, uddm.vocab_size_)
            df = _basins(uddm, sets, s, generator, dyn, 0, None)
        elif chains is not None and cell.measure in BATCHED_MEASURES:
            df = _UDDM_MEASURES[cell.measure](uddm, cell, sets, generator, device, chains)
        else:
            df = _UDDM_MEASURES[cell.measure](uddm, cell, sets, generator, device)
        df.insert(0, "train_size", cell.train.n_train)
        df.insert(0, "model_size", cell.train.arch.name)
        df.insert(0, "backend", "uddm")
        return df
    if isinstance(cell, HopfieldCell):
        s = cell.settings
        ok, why = hopfield_applicability(cell.memory, cell.data, cell.n_stored, s)
        if not ok:
            df = pd.DataFrame({"split": [""], "applicable": [False], "reason": [why]})
        else:
            mem = _hopfield_memory(cell, device)
            sets = eval_sequences(cell.data, cell.n_stored, s.n_eval,
                                  fill_train=s.fill_train and cell.measure == "recovery")  # fmt: skip
            if cell.memory == "empirical":
                chunk = None

                def dyn_for_t(t):
                    return ReverseDiffusion(
                        t_start=t, n_steps=s.empirical_steps, sampler="ancestral", final="posterior", grid="global",
                        batch_size=min(s.batch_size, 128),
                    )  # fmt: skip

                basin_dyn: Any = _basin_dynamics(s, cell.data.length, mem.vocab_size_)
            else:
                chunk = s.hopfield_batch

                def dyn_for_t(t):
                    return Sync()

                basin_dyn = Sync()
            if cell.measure == "recovery":
                df = _recovery(mem, cell.data, sets, s, generator, device, dyn_for_t, s.hopfield_max_iter, chunk,
                               n_train=cell.n_stored)  # fmt: skip
            else:
                df = _basins(mem, sets, s, generator, basin_dyn, s.hopfield_max_iter, chunk)
        df.insert(0, "train_size", cell.n_stored)
        df.insert(0, "model_size", "")
        df.insert(0, "backend", cell.memory)
        return df
    raise TypeError(f"cell: expected an EvalCell or a HopfieldCell, got {type(cell).__name__}")
